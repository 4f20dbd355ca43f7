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


def shipped_config_with(old: str, new: str) -> str:
    """Writes the shipped config with one passage replaced; returns the path."""
    with open(floodgate_config()) as f:
        text = f.read()
    if old not in text:
        raise AssertionError(f"conf/floodgate.yaml no longer has the passage this test edits: {old!r}")
    handle, path = tempfile.mkstemp(prefix="floodgate-test-", suffix=".yaml")
    with os.fdopen(handle, "w") as f:
        f.write(text.replace(old, new))
    return path


def config_with_actions(actions_block: str) -> str:
    return shipped_config_with("actions:\n  tag: 5\n  quarantine: 20\n", actions_block)


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


class LocalSubmissionScope(FloodgateTestCase):
    """Mail from sendmail(1) is recognised as local submission by itself, not only
    because 127.0.0.1 happens to be in the outbound networks: with loopback taken out
    of client_networks, `local_submission` alone decides."""

    k_loopback_line = "    - 127.0.0.0/8\n"

    def send_200_by_sendmail(self, world):
        rcpts = rcpt_list(200, "friend")
        world.postfix.sendmail("www-data@web01.hosting.example", rcpts,
                               make_message("www-data@web01.hosting.example", rcpts,
                                            "Tell a friend", "Cheap watches, click here\n"))
        world.wait_settled()

    def test_local_submission_is_outbound_without_loopback_in_client_networks(self):
        config = shipped_config_with(self.k_loopback_line, "")
        self.addCleanup(os.unlink, config)
        world = self.make_world(config=config)
        self.send_200_by_sendmail(world)
        self.assertEqual(len(world.postfix.held()), 1, "want the 200-recipient message held")
        self.assertEqual(world.sink.count(), 0)

    def test_local_submission_off_leaves_sendmail_mail_out_of_scope(self):
        config = shipped_config_with(self.k_loopback_line + "    - ::1/128\n", "")
        self.addCleanup(os.unlink, config)
        with open(config) as f:
            text = f.read()
        with open(config, "w") as f:
            f.write(text.replace("  local_submission: true\n", "  local_submission: false\n"))
        world = self.make_world(config=config)
        self.send_200_by_sendmail(world)
        self.assertEqual(world.postfix.held(), [], "want no held mail: not outbound")
        self.assertEqual(world.sink.count(), 1)
        self.assertTrue(any("scope=not-outbound" in line for line in world.floodgates[0].verdict_lines()),
                        world.floodgates[0].log_text())


if __name__ == "__main__":
    unittest.main()
