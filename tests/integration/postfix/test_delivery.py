"""Mail the shipped policy must let through: ordinary outbound mail untouched, a
60-recipient message tagged, inbound mail never scored."""

import random
import unittest

from harness import FloodgateTestCase, distinct_text, make_message, rcpt_list, send_on


class OrdinaryMail(FloodgateTestCase):
    def test_40_distinct_messages_from_4_clients_are_delivered_untouched(self):
        world = self.make_world()
        rng = random.Random(20260101)
        want = {}  # subject -> recipients
        for c in range(4):
            client = f"10.2.0.{c + 1}"
            sender = f"user{c}@office.example"
            s = world.connect(client, f"pc{c}.office.example")
            try:
                for m in range(10):
                    rcpts = [f"contact{c}-{m}-{k}@partner{k}.example"
                             for k in range(rng.randint(1, 5))]
                    subject = f"Notes {c}-{m}"
                    send_on(s, sender, rcpts,
                            make_message(sender, rcpts, subject, distinct_text(rng)))
                    want[subject] = sorted(rcpts)
            finally:
                s.quit()
        world.wait_settled(expect_sink=40)

        msgs = world.sink.messages()
        self.assertEqual(len(msgs), 40, f"delivered: got {len(msgs)}, want 40")
        got = {m.header("Subject"): sorted(m.rcpts) for m in msgs}
        self.assertEqual(got, want)
        for m in msgs:
            self.assertEqual(m.floodgate_headers(), {},
                             f"{m.header('Subject')}: unexpected X-Floodgate headers")
        self.assertEqual(world.postfix.held(), [])
        self.assert_alive(world)


class SixtyRecipients(FloodgateTestCase):
    def test_60_recipient_message_is_delivered_tagged(self):
        world = self.make_world()
        sender = "newsletter@club.example"
        rcpts = rcpt_list(60, "member", "members.example")
        world.send("10.1.1.4", sender, rcpts,
                   make_message(sender, rcpts, "Club meeting", "The meeting moves to Friday.\n"))
        world.wait_settled(expect_sink=1)

        msgs = world.sink.messages()
        self.assertEqual(len(msgs), 1, f"delivered: got {len(msgs)} messages, want 1")
        self.assertEqual(sorted(msgs[0].rcpts), sorted(rcpts))
        self.assertEqual(msgs[0].header("X-Floodgate-Score"), "10")
        reasons = msgs[0].header("X-Floodgate-Reasons") or ""
        self.assertIn("rcpts_per_msg=60>50 (+10)", reasons)
        self.assertNotIn("rcpts_per_msg_high", reasons)
        self.assertEqual(world.postfix.held(), [])
        self.assert_alive(world)


class InboundMail(FloodgateTestCase):
    def test_inbound_200_recipients_is_delivered_untouched(self):
        world = self.make_world()
        sender = "announce@lists.example"
        rcpts = rcpt_list(200, "staff", "ourcompany.example")
        world.send("203.0.113.5", sender, rcpts,
                   make_message(sender, rcpts, "Announcement", "Inbound list traffic.\n"),
                   client_name="mx.lists.example")
        world.wait_settled(expect_sink=1)

        msgs = world.sink.messages()
        self.assertEqual(len(msgs), 1, f"delivered: got {len(msgs)} messages, want 1")
        self.assertEqual(len(msgs[0].rcpts), 200)
        self.assertEqual(msgs[0].floodgate_headers(), {})
        self.assertEqual(world.postfix.held(), [])
        self.assert_alive(world)


if __name__ == "__main__":
    unittest.main()
