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


if __name__ == "__main__":
    unittest.main()
