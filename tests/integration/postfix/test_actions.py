"""The other verdicts through a real Postfix: reject and tempfail replies reach the
SMTP client, and recipients Postfix refused are reported to (and counted by) the milter.

Reject/tempfail use a copy of the shipped config whose quarantine band is replaced;
everything else is the shipped policy.
"""

import os
import smtplib
import tempfile
import unittest

from harness import FloodgateTestCase, floodgate_config, make_message, rcpt_list

k_sender = "webform@hosting.example"


def config_with_actions(actions_block: str) -> str:
    """Writes the shipped config with its `actions:` band block replaced; returns the path."""
    with open(floodgate_config()) as f:
        text = f.read()
    shipped_block = "actions:\n  tag: 5\n  quarantine: 20\n"
    if shipped_block not in text:
        raise AssertionError("conf/floodgate.yaml no longer has the actions block this test edits")
    handle, path = tempfile.mkstemp(prefix="floodgate-actions-", suffix=".yaml")
    with os.fdopen(handle, "w") as f:
        f.write(text.replace(shipped_block, actions_block))
    return path


class RejectAndTempfailReplies(FloodgateTestCase):
    def send_200_recipients(self, world) -> smtplib.SMTPDataError:
        rcpts = rcpt_list(200, "friend")
        with self.assertRaises(smtplib.SMTPDataError) as caught:
            world.send("10.1.1.1", k_sender, rcpts,
                       make_message(k_sender, rcpts, "Look", "Tell a friend: cheap pills\n"))
        world.wait_settled()
        self.assertEqual(world.sink.count(), 0, "got mail at the sink, want none")
        self.assertEqual(world.postfix.held(), [], "got held mail, want none")
        self.assert_alive(world)
        return caught.exception

    def test_reject_band_gives_the_client_the_configured_5xx_reply(self):
        config = config_with_actions("actions:\n  tag: 5\n  reject: 20\n")
        self.addCleanup(os.unlink, config)
        error = self.send_200_recipients(self.make_world(config=config))
        self.assertEqual(error.smtp_code, 550, f"got {error.smtp_code} {error.smtp_error!r}, want 550")
        self.assertIn(b"5.7.1 Message refused by outbound policy", error.smtp_error)

    def test_tempfail_band_gives_the_client_the_configured_4xx_reply(self):
        config = config_with_actions("actions:\n  tag: 5\n  tempfail: 20\n")
        self.addCleanup(os.unlink, config)
        error = self.send_200_recipients(self.make_world(config=config))
        self.assertEqual(error.smtp_code, 451, f"got {error.smtp_code} {error.smtp_error!r}, want 451")
        self.assertIn(b"4.7.1 Too much mail from this source, try again later", error.smtp_error)


class RecipientsRefusedByPostfix(FloodgateTestCase):
    def test_refused_recipients_reach_the_milter_and_are_counted(self):
        # Postfix refuses every recipient at ghosts.example; the milter asked to
        # hear about refused recipients, and the shipped rule tags a message
        # with more than 20 of them.
        world = self.make_world(extra_main={
            "smtpd_recipient_restrictions": "check_recipient_access inline:{ {ghosts.example=550 5.1.1 no such user} }",
            # smtpd hangs up after 20 errors by default; this message needs 21.
            "smtpd_hard_error_limit": "100",
        })
        good = "friend@friends.example"
        ghosts = rcpt_list(21, "guess", domain="ghosts.example")
        s = world.connect("10.1.1.5")
        try:
            self.assertEqual(s.mail(k_sender)[0], 250)
            self.assertEqual(s.rcpt(good)[0], 250)
            for ghost in ghosts:
                code, _ = s.rcpt(ghost)
                self.assertEqual(code, 550, f"RCPT {ghost}: got {code}, want 550")
            code, resp = s.data(make_message(k_sender, [good], "Hello", "Just one real friend\n"))
            self.assertEqual(code, 250, resp)
        finally:
            s.quit()
        world.wait_settled(expect_sink=1)

        messages = world.sink.messages()
        self.assertEqual(len(messages), 1)
        self.assertEqual(messages[0].rcpts, [good])
        headers = messages[0].floodgate_headers()
        self.assertEqual(headers.get("X-Floodgate-Score"), "10", headers)
        self.assertEqual(headers.get("X-Floodgate-Reasons"), "rejected_rcpts_per_client=21>20 (+10)", headers)


if __name__ == "__main__":
    unittest.main()
