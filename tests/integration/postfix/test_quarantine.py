"""Bursts the shipped policy must quarantine into Postfix's hold queue.

Each test builds its own private Postfix + smtp-sink + redis + floodgate (harness.py)
and asserts on what reached the sink and what sits in the hold queue.
Thresholds come from conf/floodgate.yaml:
  rcpts_per_msg (>50, +10), rcpts_per_msg_high (>150, +20),
  same_content_rcpts_per_client (content_recipients > 100 in 10m, +20); quarantine at 20.
"""

import unittest

from harness import FloodgateTestCase, make_message, rcpt_list, send_on

k_sender = "webform@hosting.example"


class BulkRecipientMessage(FloodgateTestCase):
    def test_200_recipient_message_is_held_and_not_delivered(self):
        world = self.make_world()
        rcpts = rcpt_list(200, "friend")
        qid = world.send("10.1.1.1", k_sender, rcpts,
                         make_message(k_sender, rcpts, "Look at this", "Tell a friend: cheap pills\n"))
        world.wait_settled()

        held = world.held_recipients()
        self.assertEqual(len(held), 1, f"hold queue: got {len(held)} messages, want 1")
        self.assertEqual(sorted(held[0]), sorted(rcpts), "held message lost recipients")
        self.assertEqual(world.postfix.held()[0]["queue_id"], qid)
        self.assertEqual(world.sink.count(), 0, "got mail at the sink, want none")
        verdict = world.verdict_for(qid)
        self.assertIsNotNone(verdict, f"no floodgate log line names queue id {qid}")
        self.assertIn("quarantine", verdict)
        self.assert_alive(world)


class SameContentBurst(FloodgateTestCase):
    def test_130_identical_messages_first_100_delivered_rest_held(self):
        world = self.make_world()
        rcpts = rcpt_list(130, "victim")
        body = "Congratulations! You have won a prize. Claim it at http://prize.example/claim\n"
        s = world.connect("10.1.1.2", "web01.hosting.example")
        try:
            for r in rcpts:
                send_on(s, k_sender, [r], make_message(k_sender, [r], "You won", body))
        finally:
            s.quit()
        world.wait_settled(expect_sink=100)

        delivered = sorted(r for m in world.sink.messages() for r in m.rcpts)
        held = sorted(r for rs in world.held_recipients() for r in rs)
        self.assertEqual(len(delivered), 100, f"delivered: got {len(delivered)}, want 100")
        self.assertEqual(len(held), 30, f"held: got {len(held)}, want 30")
        # Order matters: the first 100 go out, the 101st on are held.
        self.assertEqual(delivered, sorted(rcpts[:100]))
        self.assertEqual(held, sorted(rcpts[100:]))
        self.assert_alive(world)


class TwoDaemonsShareRedis(FloodgateTestCase):
    def test_counts_from_both_daemons_add_up_to_one_limit(self):
        # Two smtpd listeners in one Postfix, each calling its own floodgate; both
        # floodgates use the same Redis, so the client's content count is shared.
        world = self.make_world(floodgates=2)
        rcpts = rcpt_list(130, "victim")
        body = "Your mailbox is full. Verify your account at http://phish.example/login\n"
        for listener, chunk in ((0, rcpts[:65]), (1, rcpts[65:])):
            s = world.connect("10.1.1.3", "web02.hosting.example", listener=listener)
            try:
                for r in chunk:
                    send_on(s, k_sender, [r], make_message(k_sender, [r], "Mailbox full", body))
            finally:
                s.quit()
        world.wait_settled(expect_sink=100)

        delivered = world.sink.count()
        held = len(world.postfix.held())
        self.assertEqual(delivered, 100, f"delivered: got {delivered}, want 100 "
                                         "(are the daemons sharing counters?)")
        self.assertEqual(held, 30, f"held: got {held}, want 30")
        for i, fg in enumerate(world.floodgates):
            self.assertTrue(fg.verdict_lines(), f"floodgate{i} logged no verdicts: "
                                                f"did listener {i} call it?")
        self.assert_alive(world)


class LocalSubmission(FloodgateTestCase):
    """sendmail(1) -> postdrop -> pickup -> cleanup, which calls non_smtpd_milters.
    Postfix presents such mail to the milter as client localhost[127.0.0.1]."""

    def test_sendmail_200_recipients_is_held(self):
        world = self.make_world()
        rcpts = rcpt_list(200, "friend")
        world.postfix.sendmail("www-data@web01.hosting.example", rcpts,
                               make_message("www-data@web01.hosting.example", rcpts,
                                            "Tell a friend", "Cheap watches, click here\n",
                                            {"X-PHP-Originating-Script": "33:mailafriend.php"}))
        world.wait_settled()
        held = world.held_recipients()
        self.assertEqual(len(held), 1, f"hold queue: got {len(held)} messages, want 1")
        self.assertEqual(len(held[0]), 200)
        self.assertEqual(world.sink.count(), 0, "got mail at the sink, want none")
        qid = world.postfix.held()[0]["queue_id"]
        verdict = world.verdict_for(qid)
        self.assertIsNotNone(verdict, f"no floodgate log line names queue id {qid}")
        self.assertIn("quarantine", verdict)
        self.assert_alive(world)

    def test_sendmail_ordinary_message_is_delivered(self):
        world = self.make_world()
        world.postfix.sendmail("root@web01.hosting.example", ["admin@ops.example"],
                               make_message("root@web01.hosting.example", ["admin@ops.example"],
                                            "cron report", "Backup finished without errors.\n"))
        world.wait_settled(expect_sink=1)
        msgs = world.sink.messages()
        self.assertEqual(len(msgs), 1)
        self.assertEqual(msgs[0].rcpts, ["admin@ops.example"])
        self.assertEqual(msgs[0].floodgate_headers(), {})
        self.assertEqual(world.postfix.held(), [])


if __name__ == "__main__":
    unittest.main()
