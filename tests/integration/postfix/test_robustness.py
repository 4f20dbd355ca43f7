"""The daemon under bad input and degraded dependencies.

Postfix runs with milter_default_action = tempfail, so a daemon that crashes, hangs
or errors out shows up as a 4xx reply to DATA (smtplib.SMTPDataError here).
"""

import smtplib
import unittest

from harness import FloodgateTestCase, make_message, rcpt_list, send_on

k_sender = "user@office.example"


def malformed_messages() -> dict[str, bytes]:
    hdr = (b"From: user@office.example\r\nTo: friend@partner.example\r\n"
           b"Subject: test\r\nMessage-ID: <%s@harness.test>\r\n")
    twenty_mb_line = b"Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod.\r\n"
    return {
        "empty_message": b"",
        "headers_only_no_body": hdr % b"hdronly",
        "headers_and_empty_body": hdr % b"emptybody" + b"\r\n",
        "no_headers_at_all": b"Just some text, no header section at all.\r\nSecond line.\r\n",
        "multipart_without_boundary_parameter":
            hdr % b"noboundary" + b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed\r\n\r\n"
            b"--x\r\nContent-Type: text/plain\r\n\r\nhello\r\n--x--\r\n",
        "multipart_boundary_never_appears":
            hdr % b"lostboundary" + b"MIME-Version: 1.0\r\n"
            b"Content-Type: multipart/mixed; boundary=\"never-used\"\r\n\r\n"
            b"--other\r\nContent-Type: text/plain\r\n\r\nhello\r\n",
        "bad_base64_and_unterminated_multipart":
            hdr % b"badb64" + b"MIME-Version: 1.0\r\n"
            b"Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n"
            b"--b1\r\nContent-Type: text/plain; charset=utf-8\r\n"
            b"Content-Transfer-Encoding: base64\r\n\r\n"
            b"@@@###!!! not base64 at all ===\r\nSGVsbG8=garbage=\r\nQQ\r\n"
            b"--b1\r\nContent-Type: text/html\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
            b"<p>broken =ZZ qp =\r\n",
        "nested_multipart_1000_deep":
            hdr % b"deep" + b"MIME-Version: 1.0\r\n"
            + b"".join(b"Content-Type: multipart/mixed; boundary=\"d%d\"\r\n\r\n--d%d\r\n" % (i, i)
                       for i in range(1000))
            + b"Content-Type: text/plain\r\n\r\nbottom\r\n",
        "8bit_garbage_and_long_header":
            hdr % b"garbage" + b"X-Long: " + b"a" * 20000 + b"\r\n"
            b"Content-Type: text/plain; charset=\"\xff\xfe\"\r\n\r\n" + bytes(range(1, 256)) * 40
            + b"\r\n",
        "body_20_mb": hdr % b"big" + b"Content-Type: text/plain\r\n\r\n"
            + twenty_mb_line * (20 * 1024 * 1024 // len(twenty_mb_line) + 1),
    }


class MalformedMessages(FloodgateTestCase):
    def test_each_malformed_message_gets_a_verdict_and_the_daemon_survives(self):
        world = self.make_world()
        qids = {}
        failures = []
        for i, (name, raw) in enumerate(malformed_messages().items()):
            try:
                qids[name] = world.send(f"10.4.0.{i + 1}", k_sender, ["friend@partner.example"], raw)
            except (smtplib.SMTPException, OSError) as e:
                failures.append(f"{name}: {e!r}")
            self.assertTrue(world.floodgates[0].alive(), f"floodgate died on {name}")
        self.assertEqual(failures, [], "messages refused (milter_default_action tempfail?)")
        world.wait_settled(expect_sink=0)

        held = {m["queue_id"] for m in world.postfix.held()}
        delivered_ids = set()
        for m in world.sink.messages():
            # Postfix's own Received header names the queue id: "... id QID for/;"
            received = " ".join(world_received(m))
            delivered_ids |= {q for q in qids.values() if f"id {q}" in received}
        for name, qid in qids.items():
            self.assertTrue(qid in held or qid in delivered_ids,
                            f"{name} ({qid}): neither delivered nor held")
            self.assertIsNotNone(world.verdict_for(qid), f"{name} ({qid}): no verdict logged")
        # smtp-sink stores LF line ends, so the 20 MiB (CRLF) body is ~20.7 MB on disk.
        big = [m for m in world.sink.messages() if m.size > 20_000_000]
        self.assertEqual(len(big), 1 if qids["body_20_mb"] not in held else 0)
        self.assert_alive(world)


def world_received(m) -> list[str]:
    return [" ".join(str(v).split()) for v in m.headers.get_all("Received", [])]


class RedisDownAtStart(FloodgateTestCase):
    """No Redis at all: floodgate must fall back to its in-process counters (on_failure:
    local) and still apply every rule."""

    def test_ordinary_message_is_delivered(self):
        world = self.make_world(redis=False)
        world.send("10.1.1.5", k_sender, ["friend@partner.example"],
                   make_message(k_sender, ["friend@partner.example"], "hi", "See you at noon.\n"))
        world.wait_settled(expect_sink=1)
        msgs = world.sink.messages()
        self.assertEqual(len(msgs), 1)
        self.assertEqual(msgs[0].floodgate_headers(), {})
        self.assert_alive(world)

    def test_200_recipient_message_is_still_held(self):
        world = self.make_world(redis=False)
        rcpts = rcpt_list(200, "friend")
        world.send("10.1.1.6", k_sender, rcpts,
                   make_message(k_sender, rcpts, "Look", "Tell a friend: cheap pills\n"))
        world.wait_settled()
        self.assertEqual(len(world.postfix.held()), 1, "hold queue: want 1 message")
        self.assertEqual(world.sink.count(), 0)
        self.assert_alive(world)

    def test_same_content_burst_is_counted_locally(self):
        world = self.make_world(redis=False)
        body = "Congratulations! You have won a prize.\n"
        s = world.connect("10.1.1.7")
        try:
            for r in rcpt_list(110, "victim"):
                send_on(s, k_sender, [r], make_message(k_sender, [r], "You won", body))
        finally:
            s.quit()
        world.wait_settled(expect_sink=100)
        self.assertEqual(world.sink.count(), 100)
        self.assertEqual(len(world.postfix.held()), 10)
        self.assert_alive(world)


if __name__ == "__main__":
    unittest.main()
