"""Containment behind a real Sendmail (issue 8): a web form's burst is frozen at its
threshold and quarantined from then on, while another sender on the same host is
untouched. The form, its rule and its threshold are the Postfix tests'
(tests/integration/postfix/test_containment.py); Sendmail has no XCLIENT, so both
senders connect from 127.0.0.1 and the form is told apart by its
X-PHP-Originating-Script header, as the php_script identity does. The form sends
25 messages of 3 recipients: past its threshold (30), but below the shipped
same-content rule per client (100 recipients), which would freeze 127.0.0.1 and
with it the other sender (as it should: one host, one content, 100 recipients).

With containment.queue_clearing hold (shipped) and quarantine.mta sendmail, the form's
messages accepted before the freeze and still in Sendmail's queue are quarantined there
(sendmail -Q), with the incident in the reason, and the incident records it per queue
id; the other sender's queued message is left alone.

The same burst submitted as PHP's mail() does it, with `sendmail -t -i` through
Debian's mail submission program (FEATURE(`msp'), relaying over SMTP to the daemon),
is frozen the same way: local submission passes through the milter too.

A stolen password is told apart the same way by its SMTP AUTH user: Sendmail sends
{auth_authen} at MAIL FROM, the sasl_user identity reads it, and the same per-source
rule counted per SASL user freezes that account only; another account on the same
host keeps sending. With containment.refuse_at mail_from and a tempfail freeze, the
frozen account is refused at MAIL FROM itself (Sendmail passes the milter's 451 on
to the client), before any recipient or body."""

import json
import os
import random
import re
import smtplib
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from sendmail_harness import SendmailTestCase  # noqa: E402
from harness import distinct_text, make_message, rcpt_list, wait_for  # noqa: E402
from test_containment import (  # noqa: E402  (its helpers, not its test cases)
    containment_config,
    form_message,
    freeze_lines,
    k_form_rule,
    k_form_script,
    k_form_sender,
    k_form_text,
    k_form_threshold,
    k_freeze_propagation,
)
from test_incidents import with_edits  # noqa: E402

# A worker round (200 ms), three Sendmail runs, with room for a loaded CI machine.
k_clearing_settle = 20.0
k_other_sender = "alice@office.example"
k_other_script = "33:password-reset.php"  # same web server, another script
k_stolen_account = ("newsletter", "correct horse battery")
k_other_account = ("accounts", "staple")
k_user_rule = "burst_rcpts_per_user"  # a name the shipped rules do not use
k_form_messages = 25
k_other_messages = 15


def queue_id_of(reply: str) -> str:
    return re.search(r"(\w{14}) Message accepted", reply).group(1)


class BurstTestCase(SendmailTestCase):
    def assert_burst_stopped_and_other_untouched(self, world, burst_ids: list[str], burst_tag: str,
                                                 other_ids: list[str], other_tag: str) -> str:
        """Waits until every message was delivered (Sendmail logged it sent and done)
        or spooled (Floodgate's quarantine; Sendmail discarded it), then checks what
        a contained burst looks like: every message of the other source (X-Test-Seq
        OTHER_TAG-i) arrived; of the burst's (BURST_TAG-i), those before its first
        stopped one, at most k_form_threshold recipients, and the rest is in the
        spool; one freeze. Returns the freeze's log line."""
        def finished() -> bool:
            spooled = {e["queue_id"] for e in world.quarantine_list()}
            return set(burst_ids + other_ids) <= world.sendmail.delivered_queue_ids() | spooled
        wait_for(finished, 90, "every message delivered or spooled")

        seqs = [m.header("X-Test-Seq") or "" for m in world.sink.messages()]
        delivered_other = sorted(int(s.removeprefix(f"{other_tag}-")) for s in seqs if s.startswith(f"{other_tag}-"))
        delivered_burst = sorted(int(s.removeprefix(f"{burst_tag}-")) for s in seqs if s.startswith(f"{burst_tag}-"))
        self.assertEqual(delivered_other, list(range(len(other_ids))), "the other source's mail must all arrive")
        first_stopped = len(delivered_burst)
        self.assertGreater(first_stopped, 0, "the burst's mail before the threshold must arrive")
        self.assertEqual(delivered_burst, list(range(first_stopped)),
                         "only the burst's messages before the first stopped one may arrive")
        burst_rcpts = {r for m in world.sink.messages()
                       if (m.header("X-Test-Seq") or "").startswith(f"{burst_tag}-") for r in m.rcpts}
        self.assertLessEqual(len(burst_rcpts), k_form_threshold)
        spooled = {e["queue_id"] for e in world.quarantine_list()}
        self.assertEqual(sorted(set(burst_ids[first_stopped:]) - spooled), [],
                         f"{burst_tag}-{first_stopped}..{burst_tag}-{len(burst_ids) - 1} should be in the spool")
        self.assertEqual(sorted(spooled & set(other_ids)), [], "the other source's mail is in the spool")
        freezes = freeze_lines(world.floodgate.log_text())
        self.assertEqual(len(freezes), 1, f"one freeze, of the burst's source: {freezes}")
        return freezes[0]


class WebFormFrozen(BurstTestCase):
    def test_web_form_is_frozen_after_threshold_and_other_sender_is_untouched(self):
        config = containment_config("quarantine")
        self.addCleanup(os.unlink, config)
        world = self.make_world(config=config, quarantine_mode="spool")
        rng = random.Random(4)
        form_ids: list[str] = []
        other_ids: list[str] = []
        for seq in range(k_form_messages):
            rcpts = rcpt_list(3, f"r{seq:03d}-", "people.example")
            code, reply = world.send(k_form_sender, rcpts, form_message(seq, rcpts))
            self.assertEqual(code, 250, reply)
            form_ids.append(queue_id_of(reply))
            while len(other_ids) < (seq + 1) * k_other_messages // k_form_messages:
                i = len(other_ids)
                rcpts = [f"colleague{i}@partner.example", f"boss{i}@partner.example"]
                code, reply = world.send(k_other_sender, rcpts,
                                         make_message(k_other_sender, rcpts, f"Notes {i}", distinct_text(rng),
                                                      {"X-Test-Seq": f"other-{i}"}))
                self.assertEqual(code, 250, reply)
                other_ids.append(queue_id_of(reply))

        freeze = self.assert_burst_stopped_and_other_untouched(world, form_ids, "form", other_ids, "other")
        self.assertEqual(len(other_ids), k_other_messages)
        self.assertIn(f"header:x-php-originating-script={k_form_script}", freeze)
        self.assertIn("client_address=127.0.0.1", freeze)


class QueueClearingInSendmailsQuarantine(SendmailTestCase):
    def test_queued_messages_of_the_frozen_form_are_quarantined_in_sendmails_queue_and_the_incident_lists_them(self):
        config = containment_config("quarantine")
        self.addCleanup(os.unlink, config)
        # Nothing listens where Sendmail relays: what it accepts stays queued, deferred.
        world = self.make_world(config=config, quarantine_mode="spool", relay_refused=True)
        rcpts = ["bob@partner.example"]
        code, reply = world.send(k_other_sender, rcpts,
                                 make_message(k_other_sender, rcpts, "Notes", "Ordinary mail.\n"))
        self.assertEqual(code, 250, reply)
        other = queue_id_of(reply)
        form_ids = []
        for seq in range(k_form_threshold // 3 + 5):
            rcpts = rcpt_list(3, f"r{seq:03d}-", "people.example")
            code, reply = world.send(k_form_sender, rcpts, form_message(seq, rcpts))
            self.assertEqual(code, 250, reply)
            form_ids.append(queue_id_of(reply))
            if freeze_lines(world.floodgate.log_text()):
                break
        # The message that froze the form went to Floodgate's spool; the earlier ones
        # were accepted and wait in Sendmail's queue.
        spooled = {e["queue_id"] for e in world.quarantine_list()}
        slipped = [q for q in form_ids if q not in spooled]
        self.assertGreater(len(slipped), 0, "no form message was accepted before the freeze")

        def all_quarantined():
            quarantined = world.sendmail.queue(quarantined=True)
            return quarantined if all(q in quarantined for q in slipped) else None
        try:
            quarantined = wait_for(all_quarantined, k_clearing_settle, "the slipped messages quarantined",
                                   interval=0.5)
        except TimeoutError:
            self.fail(f"slipped {slipped}: want all in Sendmail's quarantine, it has "
                      f"{world.sendmail.queue(quarantined=True)}")
        self.assertNotIn(other, quarantined, "the other sender's queued message was quarantined")
        self.assertIn(other, world.sendmail.queue(), "the other sender's message left the queue")

        listing = json.loads(world.floodgatectl("incidents", "--json").stdout)
        self.assertEqual(len(listing), 1, listing)
        incident_id = listing[0]["id"]
        for queue_id in slipped:
            self.assertEqual(quarantined[queue_id], f"floodgate: source frozen, incident {incident_id}")

        def incident_with_actions():
            incident = json.loads(world.floodgatectl("incident", incident_id, "--json").stdout)
            done = all(q.get("queue_action") for q in incident["queue_ids"] if q["outcome"] == "slipped")
            return incident if done else None
        incident = wait_for(incident_with_actions, k_clearing_settle, "the incident's queue actions",
                            interval=0.5)
        self.assertEqual(incident["queue_clearing"], "hold")
        actions = {q["queue_id"]: q.get("queue_action") for q in incident["queue_ids"] if q["outcome"] == "slipped"}
        self.assertEqual(actions, {q: "held" for q in slipped})
        self.assertRegex(world.floodgate.log_text(),
                         rf"incident slipped .*slipped={len(slipped)} queue_clearing=held:{len(slipped)}")

        # Released the way the incident report says: Sendmail's own options.
        released = world.sendmail.command("-qQ", "-Q", f"-qI{slipped[0]}")
        self.assertEqual(released.returncode, 0, released.stdout + released.stderr)
        self.assertNotIn(slipped[0], world.sendmail.queue(quarantined=True))
        self.assertIn(slipped[0], world.sendmail.queue())
        self.assertTrue(world.floodgate.alive())



class WebFormThroughLocalSubmission(BurstTestCase):
    def test_web_form_burst_submitted_with_sendmail_t_is_frozen_and_another_script_is_untouched(self):
        config = containment_config("quarantine")
        self.addCleanup(os.unlink, config)
        world = self.make_world(config=config, quarantine_mode="spool")
        rng = random.Random(5)
        form_ids, other_ids = [], []
        for seq in range(k_form_messages):
            rcpts = rcpt_list(3, f"r{seq:03d}-", "people.example")
            # As PHP's mail() hands it over: the recipients in To:, the script in its header.
            form_ids.append(world.sendmail.submit(
                make_message(k_form_sender, rcpts, "A gift from a friend",
                             k_form_text.format(name=f"Friend {seq}"),
                             {"To": ", ".join(rcpts), "X-PHP-Originating-Script": k_form_script,
                              "X-Test-Seq": f"form-{seq}"}),
                k_form_sender))
            if seq % 3 == 0:
                i = len(other_ids)
                rcpt = f"member{i}@club.example"
                other_ids.append(world.sendmail.submit(
                    make_message(k_form_sender, [rcpt], f"Your password reset {i}", distinct_text(rng),
                                 {"X-PHP-Originating-Script": k_other_script, "X-Test-Seq": f"other-{i}"}),
                    k_form_sender))

        freeze = self.assert_burst_stopped_and_other_untouched(world, form_ids, "form", other_ids, "other")
        self.assertIn(f"header:x-php-originating-script={k_form_script}", freeze)

def per_user_containment_config() -> str:
    """containment_config()'s form rule, counted per SASL user instead of per PHP
    script (same threshold); returns the path of the copy."""
    return with_edits(containment_config("quarantine"), [
        (f"name: {k_form_rule}, signal: distinct_recipients, identity: php_script,",
         f"name: {k_user_rule}, signal: distinct_recipients, identity: sasl_user,"),
        (f"    - {k_form_rule}\n", f"    - {k_user_rule}\n")])


class StolenPasswordFrozen(BurstTestCase):
    def test_account_sending_a_burst_is_frozen_by_its_sasl_user_and_another_account_is_untouched(self):
        config = per_user_containment_config()
        self.addCleanup(os.unlink, config)
        world = self.make_world(config=config, quarantine_mode="spool",
                                sasl_users=dict([k_stolen_account, k_other_account]))
        rng = random.Random(7)
        burst_ids, other_ids = [], []
        for seq in range(k_form_messages):
            rcpts = rcpt_list(3, f"r{seq:03d}-", "people.example")
            code, reply = world.send("newsletter@shop.example", rcpts,
                                     make_message("newsletter@shop.example", rcpts, "A gift from a friend",
                                                  k_form_text.format(name=f"Friend {seq}"),
                                                  {"X-Test-Seq": f"burst-{seq}"}),
                                     auth=k_stolen_account)
            self.assertEqual(code, 250, reply)
            burst_ids.append(queue_id_of(reply))
            if seq % 2 == 0:
                i = len(other_ids)
                rcpts = [f"customer{i}@partner.example"]
                code, reply = world.send("accounts@shop.example", rcpts,
                                         make_message("accounts@shop.example", rcpts, f"Invoice {i}",
                                                      distinct_text(rng), {"X-Test-Seq": f"other-{i}"}),
                                         auth=k_other_account)
                self.assertEqual(code, 250, reply)
                other_ids.append(queue_id_of(reply))

        freeze = self.assert_burst_stopped_and_other_untouched(world, burst_ids, "burst", other_ids, "other")
        self.assertIn(f"sasl_user={k_stolen_account[0]}", freeze)
        self.assertIn(f"rule={k_user_rule}", freeze)
        # The verdict lines name each message's SASL user, as Sendmail sent it.
        verdicts = world.floodgate.verdict_lines()
        for queue_id, user in ((burst_ids[0], k_stolen_account[0]), (other_ids[-1], k_other_account[0])):
            line = next((v for v in verdicts if f"qid={queue_id} " in v), "")
            self.assertIn(f" sasl_user={user} ", line, f"verdict of {queue_id}")



class StolenPasswordRefusedAtMailFrom(SendmailTestCase):
    def test_frozen_account_gets_451_at_mail_from_and_another_account_is_delivered(self):
        config = with_edits(containment_config("tempfail"), [("  refuse_at: data\n", "  refuse_at: mail_from\n")])
        self.addCleanup(os.unlink, config)
        world = self.make_world(config=config, sasl_users=dict([k_stolen_account, k_other_account]))
        frozen_at = time.monotonic()
        proc = world.floodgatectl("freeze", f"sasl={k_stolen_account[0]}")
        self.assertEqual(proc.returncode, 0, proc.stdout + proc.stderr)
        time.sleep(max(0.0, frozen_at + k_freeze_propagation - time.monotonic()))

        with smtplib.SMTP("127.0.0.1", world.sendmail.port, "client.example", timeout=60) as s:
            s.ehlo()
            s.login(*k_stolen_account)
            code, reply = s.mail("newsletter@shop.example")
            self.assertEqual(code, 451, f"MAIL FROM of the frozen account: got {code} {reply!r}, want 451")
            self.assertIn(b"4.7.1", reply)
        rcpts = ["customer@partner.example"]
        code, reply = world.send("accounts@shop.example", rcpts,
                                 make_message("accounts@shop.example", rcpts, "Invoice", "Your invoice.\n",
                                              {"X-Test-Seq": "other-account"}),
                                 auth=k_other_account)
        self.assertEqual(code, 250, reply)
        world.wait_delivered(1)
        self.assertEqual([m.header("X-Test-Seq") for m in world.sink.messages()], ["other-account"])
        self.assertRegex(world.floodgate.log_text(),
                         rf"action=tempfail .*sasl_user={k_stolen_account[0]} .*frozen\(manual\).* stage=mail")
        self.assertTrue(world.floodgate.alive())


if __name__ == "__main__":
    unittest.main()
