"""What Postfix tells a milter, pinned down with a recording milter (milter_probe.py).

floodgate recognises a local submission (sendmail(1) -> pickup -> cleanup ->
non_smtpd_milters) by the CONNECT Postfix fakes for it: host "localhost", address
127.0.0.1, port 0. These tests fail if a Postfix upgrade changes that, or the way an
XCLIENT session is presented, before floodgate silently misclassifies mail.
"""

import unittest

from harness import FloodgateTestCase
from milter_probe import MilterProbe


def events_of(connection, kind):
    return [e for e in connection if e[0] == kind]


def macros_before(connection, command):
    merged = {}
    for e in connection:
        if e[0] == "macro" and e[1] == command:
            merged.update(e[2])
    return merged


class MilterSeesLocalSubmission(FloodgateTestCase):
    def setUp(self):
        self.probe = MilterProbe()
        self.addCleanup(self.probe.close)

    def test_sendmail_is_presented_as_localhost_127_0_0_1_port_0(self):
        world = self.make_world(floodgates=0, other_milter=self.probe.postfix_spec)
        world.postfix.sendmail("www-data@web.example", ["a@x.example"],
                               b"Subject: local\r\n\r\nhello\r\n")
        world.wait_settled(expect_sink=1)
        local = [c for c in self.probe.connections
                 if any(e[0] == "mail" for e in c) and events_of(c, "connect")]
        self.assertEqual(len(local), 1, f"milter connections with a MAIL: got {len(local)}, want 1")
        c = local[0]
        self.assertEqual(events_of(c, "connect"), [("connect", "localhost", "4", 0, "127.0.0.1")])
        self.assertEqual(events_of(c, "helo"), [("helo", ["localhost"])])
        # The queue id already exists at MAIL for pickup mail (unlike smtpd mail).
        self.assertIn("i", macros_before(c, "mail"))
        # {daemon_name} is milter_macro_daemon_name (default $myhostname), not the
        # master.cf service name: it cannot tell pickup from smtpd by default.
        self.assertEqual(macros_before(c, "connect").get("{daemon_name}"), "relay.floodgate.test")
        self.assertNotIn("{auth_authen}", macros_before(c, "mail"))

    def test_xclient_session_is_presented_with_the_xclient_address(self):
        world = self.make_world(floodgates=0, other_milter=self.probe.postfix_spec)
        world.send("10.1.2.3", "u@office.example", ["b@x.example"],
                   b"Subject: smtp\r\n\r\nhello\r\n", client_name="host.example")
        world.wait_settled(expect_sink=1)
        with_mail = [c for c in self.probe.connections if any(e[0] == "mail" for e in c)]
        self.assertEqual(len(with_mail), 1)
        c = with_mail[0]
        connect = events_of(c, "connect")
        self.assertEqual(len(connect), 1)
        self.assertEqual((connect[0][1], connect[0][4]), ("host.example", "10.1.2.3"))
        self.assertNotEqual(connect[0][3], 0, "an SMTP client has a non-zero port")
        # smtpd_delay_open_until_valid_rcpt: no queue id before DATA.
        self.assertNotIn("i", macros_before(c, "mail"))
        self.assertIn("i", macros_before(c, "data"))


if __name__ == "__main__":
    unittest.main()
