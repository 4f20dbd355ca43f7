"""Floodgate behind a real Sendmail (issue 8): mail passes, and the verdict names
Sendmail's queue id. Run by ctest (tests/integration/sendmail/CMakeLists.txt)."""

import os
import re
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from sendmail_harness import SendmailTestCase  # noqa: E402
from harness import make_message, rcpt_list  # noqa: E402  (on sys.path through sendmail_harness)
from test_actions import config_with_actions, shipped_config_with  # noqa: E402  (the Postfix tests' config edits)


class OrdinaryMail(SendmailTestCase):
    def test_ordinary_message_is_delivered_and_its_verdict_names_sendmails_queue_id(self):
        world = self.make_world()
        rcpts = ["ann@friends.example", "bob@friends.example", "cy@friends.example"]
        code, reply = world.send("alice@example.org", rcpts,
                                 make_message("alice@example.org", rcpts, "lunch", "See you at noon.\n"))
        self.assertEqual(code, 250, reply)
        # "2.0.0 6AS05870028628 Message accepted for delivery"
        queue_id = re.search(r"(\w{14}) Message accepted", reply)
        self.assertIsNotNone(queue_id, reply)
        world.wait_delivered(1)
        delivered = world.sink.messages()
        self.assertEqual(len(delivered), 1)
        self.assertEqual(sorted(delivered[0].rcpts), rcpts)
        self.assertEqual(delivered[0].header("Subject"), "lunch")
        verdict = world.verdict_for(queue_id.group(1))
        self.assertIsNotNone(verdict, f"no verdict line with qid={queue_id.group(1)}:\n"
                                      + "\n".join(world.floodgate.verdict_lines()))
        self.assertIn("action=accept", verdict)
        self.assertIn("rcpts=3", verdict)
        self.assertIn("client=127.0.0.1", verdict)
        # Sendmail hands the envelope sender over in angle brackets, as Postfix does.
        self.assertIn(" sender=alice@example.org ", verdict)


class SixtyRecipients(SendmailTestCase):
    def test_60_recipient_message_is_delivered_with_floodgates_headers(self):
        world = self.make_world()
        sender = "newsletter@club.example"
        rcpts = rcpt_list(60, "member", "members.example")
        code, reply = world.send(sender, rcpts,
                                 make_message(sender, rcpts, "Club meeting", "The meeting moves to Friday.\n"))
        self.assertEqual(code, 250, reply)
        world.wait_delivered(1)
        delivered = world.sink.messages()
        self.assertEqual(len(delivered), 1)
        self.assertEqual(sorted(delivered[0].rcpts), sorted(rcpts))
        # Added by Sendmail at the milter's request (SMFIF_ADDHDRS).
        self.assertEqual(delivered[0].header("X-Floodgate-Score"), "10")
        reasons = delivered[0].header("X-Floodgate-Reasons") or ""
        self.assertIn("rcpts_per_msg=60>50 (+10)", reasons)
        self.assertNotIn("rcpts_per_msg_high", reasons)


class MissingQueueIdMacro(SendmailTestCase):
    def test_mta_without_queue_id_macro_gets_one_warning_naming_it_and_mail_still_flows(self):
        # Sendmail's default list without `i`, as an admin's own list might be.
        world = self.make_world(extra_mc="define(`confMILTER_MACROS_ENVFROM', "
                                         "`{auth_authen}, {mail_mailer}, {mail_addr}')dnl\n")
        for i in range(2):
            rcpts = [f"friend{i}@friends.example"]
            code, reply = world.send("alice@example.org", rcpts,
                                     make_message("alice@example.org", rcpts, f"note {i}", "Hello.\n"))
            self.assertEqual(code, 250, reply)
        world.wait_delivered(2)
        log = world.floodgate.log_text()
        warnings = [line for line in log.splitlines() if "macro={i} missing" in line]
        self.assertEqual(len(warnings), 1, log)
        self.assertIn("confMILTER_MACROS_ENVFROM", warnings[0])
        self.assertIn("warning", warnings[0])
        verdicts = [line for line in log.splitlines() if " action=accept" in line]
        self.assertEqual(len(verdicts), 2, log)
        self.assertTrue(all("qid=- " in line for line in verdicts), verdicts)


class RejectAndTempfailReplies(SendmailTestCase):
    def send_200_recipients(self, world) -> tuple[int, str]:
        """The reply to the end of a 200-recipient message."""
        sender = "webform@hosting.example"
        rcpts = rcpt_list(200, "friend")
        code, reply = world.send(sender, rcpts, make_message(sender, rcpts, "Look", "Tell a friend: cheap pills\n"))
        time.sleep(1)  # a delivery, were there one, would have reached the sink by now
        self.assertEqual(world.sink.count(), 0, "got mail at the sink, want none")
        self.assertTrue(world.floodgate.alive())
        return code, reply

    def test_reject_band_gives_the_client_the_configured_5xx_reply_through_sendmail(self):
        config = config_with_actions("actions:\n  tag: 5\n  reject: 20\n")
        self.addCleanup(os.unlink, config)
        code, reply = self.send_200_recipients(self.make_world(config=config))
        self.assertEqual(code, 550, reply)
        self.assertIn("5.7.1 Message refused by outbound policy", reply)

    def test_tempfail_band_gives_the_client_the_configured_4xx_reply_through_sendmail(self):
        config = config_with_actions("actions:\n  tag: 5\n  tempfail: 20\n")
        self.addCleanup(os.unlink, config)
        code, reply = self.send_200_recipients(self.make_world(config=config))
        self.assertEqual(code, 451, reply)
        self.assertIn("4.7.1 Too much mail from this source, try again later", reply)


class DaemonNameMakesMailOutbound(SendmailTestCase):
    def config_outbound_by_daemon_name(self, daemon_name: str) -> str:
        """The shipped config with loopback out of client_networks, so mail from
        127.0.0.1 is outbound only when Sendmail's {daemon_name} says so."""
        path = shipped_config_with(
            "    - 127.0.0.0/8\n    - ::1/128\n", "")
        with open(path, encoding="utf-8") as f:
            text = f.read()
        with open(path, "w", encoding="utf-8") as f:
            f.write(text.replace("  local_submission: true\n",
                                 "  local_submission: true\n  macros:\n    - macro: daemon_name\n"
                                 f"      values: [{daemon_name}]\n", 1))
        self.addCleanup(os.unlink, path)
        return path

    def test_outbound_macros_read_sendmails_daemon_name(self):
        sender = "form@hosting.example"
        rcpts = rcpt_list(200, "bulk", domain="friends.example")
        # The harness's daemon is Name=MTA: outbound, so the 200 recipients are
        # quarantined in the spool.
        world = self.make_world(config=self.config_outbound_by_daemon_name("MTA"))
        code, reply = world.send(sender, rcpts, make_message(sender, rcpts, "Offer", "Buy now.\n"))
        self.assertEqual(code, 250, reply)
        queue_id = re.search(r"(\w{14}) Message accepted", reply).group(1)
        self.assertIn("action=quarantine", world.verdict_for(queue_id) or "")
        self.assertIn("scope=outbound", world.verdict_for(queue_id))
        self.assertEqual([e["queue_id"] for e in world.quarantine_list()], [queue_id])
        world.close()
        # Another daemon name: not outbound, delivered untouched.
        world = self.make_world(config=self.config_outbound_by_daemon_name("submission"))
        code, reply = world.send(sender, rcpts, make_message(sender, rcpts, "Offer", "Buy now.\n"))
        self.assertEqual(code, 250, reply)
        world.wait_delivered(1)
        delivered = world.sink.messages()
        self.assertEqual(sorted(r for m in delivered for r in m.rcpts), sorted(rcpts))
        self.assertTrue(all(m.floodgate_headers() == {} for m in delivered))
        self.assertEqual(world.quarantine_list(), [])


if __name__ == "__main__":
    unittest.main()
