"""The trace of a freeze through a real Postfix (issue 4): the incident a freeze opens,
the queue clearing it does, the notifications it sends, and `floodgatectl top`.

The web-form source and its containment rule are test_containment's: one client address
and one PHP script header, "Dear <name>" with the name changed, 3 new recipients per
message, frozen when the script passes 30 distinct recipients in 10 minutes.

What is promised (conf/floodgate.yaml `containment:`, containment/incident.hpp):
- every freeze opens an incident that counts every message of the source: those it got
  through before the freeze ("slipped": the daemon remembers what it accepted in the
  last incidents.lookback) and those stopped after it, with first/last seen, recipients,
  a recipient sample, subjects, queue ids and the source's identity;
- with queue_clearing hold, the slipped messages still in the local queue are put on
  hold (postsuper -h) and the incident says so per queue id;
- the postmaster gets a report mail through the release target, and a command gets the
  incident as JSON on stdin, run without a shell; notifications are rate-limited per
  source (notify.min_interval);
- the daemons aggregate per-source activity for `floodgatectl top`.
"""

import calendar
import email
import email.policy
import glob
import json
import os
import re
import tempfile
import textwrap
import time
import unittest

from harness import make_message, rcpt_list, wait_for
from test_containment import (ContainmentTestCase, containment_config, freeze_lines, k_form_client,
                              k_form_client_name, k_form_rule, k_form_script, k_form_sender,
                              k_form_source, k_form_threshold)

# A worker round (200 ms) and an activity flush (1 s), with room for a loaded CI machine.
k_worker_settle = 10.0


def iso_to_epoch(text: str) -> float:
    return calendar.timegm(time.strptime(text.replace("Z", ""), "%Y-%m-%dT%H:%M:%S"))


def with_edits(path: str, edits: list[tuple[str, str]]) -> str:
    with open(path, encoding="utf-8") as f:
        text = f.read()
    for old, new in edits:
        if text.count(old) != 1:
            raise AssertionError(f"{path}: want {old!r} once, found it {text.count(old)} times")
        text = text.replace(old, new)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return path


class IncidentTestCase(ContainmentTestCase):
    def ctl_json(self, world, *args: str):
        proc = world.floodgatectl(*args, "--json")
        self.assert_ctl(proc, 0, " ".join(args) + " --json")
        try:
            return json.loads(proc.stdout)
        except json.JSONDecodeError as e:
            self.fail(f"floodgatectl {' '.join(args)} --json: not JSON ({e}): {proc.stdout!r}")

    def the_incident(self, world, want=lambda incident: True) -> dict:
        """The one incident listed, once `want(incident)` holds (the worker records
        every 200 ms)."""
        def ready():
            listing = self.ctl_json(world, "incidents")
            if len(listing) == 1 and want(self.ctl_json(world, "incident", listing[0]["id"])):
                return listing
            return None
        try:
            listing = wait_for(ready, k_worker_settle, "the incident to be complete")
        except TimeoutError:
            self.fail("floodgatectl incidents: want one complete incident, got "
                      + json.dumps(self.ctl_json(world, "incidents"), indent=1)[:4000])
        return self.ctl_json(world, "incident", listing[0]["id"])

    def make_form_world(self, edits: list[tuple[str, str]] = (), **kw):
        config = containment_config()
        self.addCleanup(os.unlink, config)
        with_edits(config, list(edits))
        return self.make_world(config=config, quarantine_mode="spool", **kw)


class IncidentTrace(IncidentTestCase):
    def test_incident_shows_first_last_seen_counts_and_recipients_matching_what_was_sent(self):
        world = self.make_form_world()
        started = time.time()
        sent_rcpts: set[str] = set()
        queue_ids: list[str] = []
        # Until the freeze, then 6 more: all stopped.
        for seq in range(k_form_threshold // 3 + 5):
            rcpts = rcpt_list(3, f"r{seq:03d}-", "people.example")
            sent_rcpts.update(rcpts)
            queue_ids.append(self.send_form(world, seq, rcpts))
            if freeze_lines(world.floodgates[0].log_text()):
                break
        for seq in range(len(queue_ids), len(queue_ids) + 6):
            rcpts = rcpt_list(3, f"r{seq:03d}-", "people.example")
            sent_rcpts.update(rcpts)
            queue_ids.append(self.send_form(world, seq, rcpts))
        finished = time.time()
        total = len(queue_ids)
        world.wait_settled()
        delivered = len([s for s in self.sink_seqs(world) if s.startswith("form-")])
        self.assertGreater(delivered, 0, "nothing of the web form was delivered before the freeze")

        incident = self.the_incident(world, lambda i: i.get("messages") == total)
        self.assertEqual(incident["source"].lower(), k_form_source)
        self.assertEqual(incident["rule"], k_form_rule)
        self.assertRegex(incident["reason"], rf"^{k_form_rule}=\d+>{k_form_threshold} \(\+20\)$")
        self.assertEqual(incident["action"], "quarantine")
        self.assertEqual(incident["state"], "open")
        counts = {k: incident[k] for k in ("messages", "recipients", "slipped", "quarantined",
                                           "tempfailed", "rejected")}
        self.assertEqual(counts, {"messages": total, "recipients": 3 * total, "slipped": delivered,
                                  "quarantined": total - delivered, "tempfailed": 0, "rejected": 0},
                         f"incident counts: got {counts}; sent {total} messages of 3 recipients, "
                         f"{delivered} delivered before the freeze")
        first, last = iso_to_epoch(incident["first_seen"]), iso_to_epoch(incident["last_seen"])
        self.assertTrue(started - 1 <= first <= started + 5,
                        f"first_seen {incident['first_seen']}: want within the first send ({started:.0f})")
        self.assertTrue(finished - 5 <= last <= finished + 1,
                        f"last_seen {incident['last_seen']}: want the last send ({finished:.0f})")
        sample = incident["recipient_sample"]
        self.assertEqual(len(sample), 20, f"recipient sample: got {len(sample)}, want 20 (the default)")
        self.assertTrue(set(sample) <= sent_rcpts, f"recipient sample has addresses never sent to: "
                        f"{sorted(set(sample) - sent_rcpts)}")
        self.assertEqual([(d["text"], d["count"]) for d in incident["recipient_domains"]],
                         [("people.example", 3 * total)])
        self.assertEqual([(s["text"], s["count"]) for s in incident["subjects"]],
                         [("A gift from a friend", total)])
        listed = [q["queue_id"] for q in incident["queue_ids"]]
        self.assertEqual(sorted(listed), sorted(queue_ids), "incident queue ids: want every message's")
        outcomes = {q["queue_id"]: q["outcome"] for q in incident["queue_ids"]}
        self.assertEqual([outcomes[q] for q in queue_ids],
                         ["slipped"] * delivered + ["quarantined"] * (total - delivered))
        identity = incident["identity"]
        self.assertEqual(identity.get("client_address"), k_form_client)
        self.assertEqual(identity.get("client_name"), k_form_client_name)
        self.assertEqual(identity.get("sender"), k_form_sender)
        self.assertEqual(identity.get("header:x-php-originating-script"), k_form_script)

        # frozen lists the freeze with its incident's counts.
        [frozen] = self.frozen(world)
        self.assertEqual(frozen["incident"], incident["id"])
        self.assertEqual(frozen["counts"], {k: counts[k] for k in frozen["counts"]})

        # The person's view says the same.
        proc = world.floodgatectl("incident", incident["id"])
        self.assert_ctl(proc, 0, "incident ID")
        for want in (incident["id"], f"messages {total}", f"slipped {delivered}", "A gift from a friend",
                     k_form_client, queue_ids[0], queue_ids[-1]):
            self.assertIn(want, proc.stdout, f"floodgatectl incident {incident['id']}:\n{proc.stdout}")

        # Open until unfrozen; kept afterwards.
        self.assertEqual([i["id"] for i in self.ctl_json(world, "incidents", "--open")], [incident["id"]])
        self.assert_ctl(world.floodgatectl("unfreeze", f"client={k_form_client}",
                                           f"header:X-PHP-Originating-Script={k_form_script}"),
                        0, "unfreeze")
        self.assertEqual(self.ctl_json(world, "incidents", "--open"), [])
        after = self.ctl_json(world, "incident", incident["id"])
        self.assertEqual(after["state"], "unfrozen")
        self.assertEqual(after["messages"], total)
        self.assert_alive(world)


class QueueClearingHold(IncidentTestCase):
    def test_deferred_messages_of_the_frozen_source_end_up_on_hold_and_the_incident_lists_them(self):
        # The next hop refuses every connection: accepted mail stays deferred.
        world = self.make_form_world(extra_main={"relayhost": "[127.0.0.1]:9"})
        other = world.send("10.4.4.4", "alice@office.example", ["bob@partner.example"],
                           make_message("alice@office.example", ["bob@partner.example"], "Notes",
                                        "Ordinary mail.\n"), client_name="desk.office.example")
        queue_ids = []
        for seq in range(k_form_threshold // 3 + 5):
            queue_ids.append(self.send_form(world, seq, rcpt_list(3, f"r{seq:03d}-")))
            if freeze_lines(world.floodgates[0].log_text()):
                break
        # The message that froze the source went to the spool: the earlier ones were
        # accepted and wait in Postfix's queue.
        spooled = {e["queue_id"] for e in world.quarantine_list()}
        slipped = [q for q in queue_ids if q not in spooled]
        self.assertGreater(len(slipped), 0, "no web-form message was accepted before the freeze")

        def all_held():
            queue = {m["queue_id"]: m["queue_name"] for m in world.postfix.queue()}
            return queue if all(queue.get(q) == "hold" for q in slipped) else None
        try:
            queue = wait_for(all_held, k_worker_settle, "the slipped messages on hold")
        except TimeoutError:
            self.fail(f"slipped {slipped}: want all on hold, queue is "
                      f"{ {m['queue_id']: m['queue_name'] for m in world.postfix.queue()} }")
        self.assertNotEqual(queue.get(other), "hold", "the other client's deferred message was held")
        self.assertEqual(queue.get(other), "deferred")

        incident = self.the_incident(
            world, lambda i: all(q.get("queue_action") for q in i["queue_ids"] if q["outcome"] == "slipped"))
        self.assertEqual(incident["queue_clearing"], "hold")
        actions = {q["queue_id"]: q.get("queue_action") for q in incident["queue_ids"] if q["outcome"] == "slipped"}
        self.assertEqual(actions, {q: "held" for q in slipped})
        self.assertEqual(incident["slipped"], len(slipped))
        log = world.floodgates[0].log_text()
        self.assertRegex(log, rf"incident slipped .*slipped={len(slipped)} queue_clearing=held:{len(slipped)}")
        self.assert_alive(world)


k_notify_script = textwrap.dedent("""\
    import json, os, sys
    out = sys.argv[1]
    data = sys.stdin.buffer.read()
    name = os.environ.get("FLOODGATE_EVENT", "none") + "-" + str(len(os.listdir(out)))
    with open(os.path.join(out, name + ".json"), "wb") as f:
        f.write(data)
    with open(os.path.join(out, name + ".argv"), "w") as f:
        json.dump({"argv": sys.argv[2:], "incident": os.environ.get("FLOODGATE_INCIDENT")}, f)
    """)


class Notifications(IncidentTestCase):
    def test_report_mail_and_command_on_freeze_and_unfreeze_with_a_hostile_subject(self):
        work = tempfile.mkdtemp(prefix="floodgate-notify-")
        os.chmod(work, 0o755)
        out = os.path.join(work, "out")
        os.makedirs(out)
        script = os.path.join(work, "notify.py")
        with open(script, "w") as f:
            f.write(k_notify_script)
        pwned = os.path.join(work, "pwned")
        world = self.make_form_world(edits=[
            ("    mail_to: [postmaster@localhost]\n", "    mail_to: [postmaster@ops.example]\n"),
            ("    # command: [/usr/local/bin/floodgate-page, --channel, mail-ops]\n",
             f"    command: [/usr/bin/python3, {script}, {out}, --fixed-word]\n"),
        ])
        hostile = (f"Gift $(touch {pwned}) `touch {pwned}` ; touch {pwned} | cat '\" "
                   f"\r\n\tBcc: victim@evil.example")
        for seq in range(k_form_threshold // 3 + 5):
            rcpts = rcpt_list(3, f"r{seq:03d}-")
            message = make_message(k_form_sender, rcpts, hostile, f"Dear friend {seq},\nan offer.\n",
                                   {"X-PHP-Originating-Script": k_form_script, "X-Test-Seq": f"form-{seq}"})
            world.send(k_form_client, k_form_sender, rcpts, message, client_name=k_form_client_name)
            if freeze_lines(world.floodgates[0].log_text()):
                break

        def reports(event: str):
            found = [m for m in world.sink.messages()
                     if (m.header("Subject") or "").startswith(f"[floodgate] {event}:")]
            return found or None
        try:
            mail = wait_for(lambda: reports("frozen"), 30, "the freeze report mail at the sink")[0]
        except TimeoutError:
            self.fail("no '[floodgate] frozen:' mail at the sink; sink has "
                      f"{[m.header('Subject') for m in world.sink.messages()]}")
        self.assertEqual(mail.rcpts, ["postmaster@ops.example"])
        self.assertIn("floodgate@localhost", mail.mail_args)
        with open(mail.path, "rb") as f:
            raw = f.read()
        head, _, body = raw.partition(b"\n\n")
        report = email.message_from_bytes(raw, policy=email.policy.compat32)
        self.assertIsNone(report.get("Bcc"), "an injected Bcc header in the report mail")
        self.assertNotIn(b"\nBcc:", head)
        incident_id = self.ctl_json(world, "incidents")[0]["id"]
        self.assertIn(incident_id.encode(), body)
        self.assertIn(k_form_client.encode(), body)

        wait_for(lambda: glob.glob(os.path.join(out, "freeze-*.json")), k_worker_settle, "the command's JSON")
        with open(glob.glob(os.path.join(out, "freeze-*.json"))[0], "rb") as f:
            sent = json.loads(f.read())
        with open(glob.glob(os.path.join(out, "freeze-*.argv"))[0]) as f:
            argv = json.load(f)
        self.assertEqual(sent["event"], "freeze")
        self.assertEqual(sent["id"], incident_id)
        self.assertEqual(argv, {"argv": ["--fixed-word"], "incident": incident_id})
        subjects = [s["text"] for s in sent["subjects"]]
        self.assertEqual(len(subjects), 1, f"subjects in the JSON: {subjects}")
        self.assertIn(f"$(touch {pwned})", subjects[0])
        self.assertIn("Bcc: victim@evil.example", subjects[0])
        self.assertFalse(os.path.exists(pwned), "a shell ran part of the subject")

        # Unfrozen by ops: floodgatectl closes the incident and tells.
        self.assert_ctl(world.floodgatectl("unfreeze", f"client={k_form_client}",
                                           f"header:X-PHP-Originating-Script={k_form_script}"),
                        0, "unfreeze")
        wait_for(lambda: reports("unfrozen"), 30, "the unfreeze report mail at the sink")
        wait_for(lambda: glob.glob(os.path.join(out, "unfreeze-*.json")), k_worker_settle,
                 "the command's JSON for the unfreeze")
        # Frozen again by hand at once: within notify.min_interval (15m), not told again.
        self.assert_ctl(world.floodgatectl("freeze", f"client={k_form_client}",
                                           f"header:X-PHP-Originating-Script={k_form_script}"),
                        0, "freeze")
        time.sleep(2)
        self.assertEqual(len(reports("frozen")), 1, "a second freeze report within min_interval")
        self.assertEqual(len(glob.glob(os.path.join(out, "freeze-*.json"))), 1)
        newest = self.ctl_json(world, "incidents")[0]
        self.assertNotEqual(newest["id"], incident_id, "the manual freeze opened no incident of its own")
        self.assertEqual(self.ctl_json(world, "incident", newest["id"])["notifications_suppressed"], 1)
        self.assertFalse(os.path.exists(pwned), "a shell ran part of the subject")
        self.assert_alive(world)


class Top(IncidentTestCase):
    def test_top_ranks_the_sources_sending_most_from_live_counters(self):
        world = self.make_form_world()
        plan = {"10.7.0.1": (6, 2), "10.7.0.2": (3, 5), "10.7.0.3": (1, 1)}  # messages, recipients each
        for client, (messages, recipients) in plan.items():
            for i in range(messages):
                rcpts = [f"u{j}@dest.example" for j in range(recipients)]  # the same ones each time
                world.send(client, f"user@{client}.example", rcpts,
                           make_message(f"user@{client}.example", rcpts, f"Hello {i}", f"Text {client} {i}\n"))

        def top(by: str):
            rows = [r for r in self.ctl_json(world, "top", "--by", by, "--identity", "client")]
            return [(r["source"], r["messages"], r["recipients"], r["unique_recipients"]) for r in rows]
        want_by_messages = [("client_address=10.7.0.1", 6, 12, 2), ("client_address=10.7.0.2", 3, 15, 5),
                            ("client_address=10.7.0.3", 1, 1, 1)]
        try:
            wait_for(lambda: top("messages") == want_by_messages, k_worker_settle, "top to show the three clients")
        except TimeoutError:
            self.fail(f"top --by messages: got {top('messages')}, want {want_by_messages}")
        self.assertEqual([r[0] for r in top("recipients")],
                         ["client_address=10.7.0.2", "client_address=10.7.0.1", "client_address=10.7.0.3"])
        self.assertEqual([r[0] for r in top("unique-recipients")],
                         ["client_address=10.7.0.2", "client_address=10.7.0.1", "client_address=10.7.0.3"])
        proc = world.floodgatectl("top", "--limit", "1", "--identity", "client")
        self.assert_ctl(proc, 0, "top --limit 1")
        self.assertIn("10.7.0.1", proc.stdout)
        self.assertNotIn("10.7.0.2", proc.stdout)


if __name__ == "__main__":
    unittest.main()
