"""Floodgate's spool quarantine behind a real Sendmail (issue 8): a 200-recipient
message is kept in Floodgate's spool and not delivered, and floodgatectl release
sends it on, untouched, through Sendmail's milter-less release port."""

import os
import re
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from sendmail_harness import SendmailTestCase  # noqa: E402
from harness import make_message, rcpt_list  # noqa: E402  (on sys.path through sendmail_harness)


class BulkRecipients(SendmailTestCase):
    def test_200_recipient_message_is_spooled_not_delivered_then_released_to_the_sink(self):
        world = self.make_world(quarantine_mode="spool")
        sender = "form@hosting.example"
        rcpts = rcpt_list(200, "bulk", domain="friends.example")
        message = make_message(sender, rcpts, "Great offer", "Buy now.\n")
        code, reply = world.send(sender, rcpts, message)
        # Spooled, then discarded: the client is told the message was taken.
        self.assertEqual(code, 250, reply)
        queue_id = re.search(r"(\w{14}) Message accepted", reply).group(1)
        verdict = world.verdict_for(queue_id)
        self.assertIsNotNone(verdict, "\n".join(world.floodgate.verdict_lines()))
        self.assertIn("action=quarantine", verdict)
        self.assertIn("rcpts=200", verdict)

        entries = world.quarantine_list()
        self.assertEqual([e["queue_id"] for e in entries], [queue_id])
        time.sleep(1)  # a delivery, were there one, would have reached the sink by now
        self.assertEqual(world.sink.count(), 0, "a quarantined message reached the sink")
        self.assertTrue(f"{queue_id}: milter=floodgate, discard" in world.sendmail.log_text(),
                        "Sendmail did not log the milter's discard")

        released = world.floodgatectl("release", entries[0]["id"])
        self.assertEqual(released.returncode, 0, released.stdout + released.stderr)
        # Sendmail's relay mailer sends 100 recipients per transaction: two at the sink.
        world.wait_delivered(1)
        delivered = world.sink.messages()
        self.assertEqual(sorted(r for m in delivered for r in m.rcpts), sorted(rcpts))
        for m in delivered:
            self.assertEqual(m.header("Subject"), "Great offer")
            self.assertEqual(m.floodgate_headers(), {}, "a released message must not be re-scored")
        self.assertEqual(world.quarantine_list(), [])
        verdicts = [line for line in world.floodgate.verdict_lines() if " qid=" in line and " action=" in line]
        self.assertEqual(verdicts, [verdict], "the released message went through the milter again")


class HoldInSendmailsQuarantine(SendmailTestCase):
    def test_200_recipient_message_is_held_in_sendmails_quarantine_then_released_by_floodgatectl(self):
        world = self.make_world(quarantine_mode="hold")
        sender = "form@hosting.example"
        rcpts = rcpt_list(200, "bulk", domain="friends.example")
        code, reply = world.send(sender, rcpts, make_message(sender, rcpts, "Great offer", "Buy now.\n"))
        self.assertEqual(code, 250, reply)
        queue_id = re.search(r"(\w{14}) Message accepted", reply).group(1)
        self.assertIn("action=quarantine", world.verdict_for(queue_id) or "")

        # In Sendmail's queue, quarantined (mailq -qQ), not delivered.
        held = world.sendmail.command("-bp", "-qQ")
        self.assertIn(queue_id, held.stdout, held.stdout + held.stderr)
        time.sleep(1)
        self.assertEqual(world.sink.count(), 0, "a quarantined message reached the sink")
        entries = world.quarantine_list()
        self.assertEqual([(e["queue_id"], e["mode"]) for e in entries], [(queue_id, "hold")])

        released = world.floodgatectl("release", entries[0]["id"])
        self.assertEqual(released.returncode, 0, released.stdout + released.stderr)
        self.assertIn("from Sendmail's quarantine", released.stdout)
        world.wait_delivered(1)
        delivered = world.sink.messages()
        self.assertEqual(sorted(r for m in delivered for r in m.rcpts), sorted(rcpts))
        self.assertEqual(world.quarantine_list(), [])
        after = world.sendmail.command("-bp", "-qQ")
        self.assertNotIn(queue_id, after.stdout)

        # A held message someone released by hand: floodgatectl says it is not in
        # Sendmail's quarantine (the release itself would say nothing) and keeps
        # the entry.
        code, reply = world.send(sender, rcpts, make_message(sender, rcpts, "Great offer", "Buy again.\n"))
        second = re.search(r"(\w{14}) Message accepted", reply).group(1)
        lifted = world.sendmail.command("-qQ", "-Q", f"-qI{second}")
        self.assertEqual(lifted.returncode, 0, lifted.stdout + lifted.stderr)
        entry = [e for e in world.quarantine_list() if e["queue_id"] == second][0]
        refused = world.floodgatectl("release", entry["id"])
        self.assertEqual(refused.returncode, 1, refused.stdout + refused.stderr)
        self.assertIn(f"queue id {second} is not in Sendmail's quarantine", refused.stderr)
        self.assertEqual([e["queue_id"] for e in world.quarantine_list()], [second])


if __name__ == "__main__":
    unittest.main()
