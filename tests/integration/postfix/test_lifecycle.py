"""The daemon's life through a real Postfix: SIGHUP reloads the config, SIGTERM drains.

Reload: a valid file applies to messages that start after it, a message already
past DATA keeps the config it started with, and a broken file is refused whole
(error logged, the running config stays, the next valid reload still works).

Shutdown: after SIGTERM a message past DATA still gets its verdict and is
delivered, a message that reaches DATA afterwards is tempfailed (its client keeps
it), and the wait for messages in flight is bounded by milter.shutdown_timeout
(then libmilter stops, and the MTA applies milter_default_action to whatever
was left).

The config under test is the shipped one; "strict" lowers rcpts_per_msg so that a
10-recipient message scores 20 and is quarantined (the world's hold queue), where
the shipped policy delivers it untouched.
"""

import grp
import os
import pwd
import signal
import smtplib
import socket
import tempfile
import time

from harness import FloodgateTestCase, floodgate_config, make_message, rcpt_list
from processes import wait_for

k_sender = "webform@hosting.example"
k_client = "10.20.0.1"
k_shipped_rule = "  - name: rcpts_per_msg\n    signal: recipients_per_message\n    threshold: 50\n    points: 10\n"
k_strict_rule = "  - name: rcpts_per_msg\n    signal: recipients_per_message\n    threshold: 5\n    points: 20\n"


def read(path: str) -> str:
    with open(path, encoding="utf-8") as f:
        return f.read()


def write(path: str, text: str):
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def open_message_past_data(world, tag: str) -> smtplib.SMTP:
    """A session whose message has had its DATA answered by the milter (354 means
    Postfix got the milter's DATA reply) and whose body is not sent yet."""
    rcpts = rcpt_list(10, tag)
    s = world.connect(k_client)
    code, resp = s.mail(k_sender)
    assert code == 250, (code, resp)
    for rcpt in rcpts:
        code, resp = s.rcpt(rcpt)
        assert code == 250, (code, resp)
    s.putcmd("data")
    code, resp = s.getreply()
    assert code == 354, (code, resp)
    return s


def finish_message(s: smtplib.SMTP, tag: str) -> tuple[int, bytes]:
    body = make_message(k_sender, rcpt_list(10, tag), f"in flight {tag}", "Hello there\n")
    s.send(body + b"\r\n.\r\n")
    return s.getreply()


def send_ten(world, tag: str) -> str:
    rcpts = rcpt_list(10, tag)
    return world.send(k_client, k_sender, rcpts, make_message(k_sender, rcpts, f"ten {tag}", "Hello\n"))


class ConfigReload(FloodgateTestCase):
    def setUp(self):
        self.world = self.make_world()
        self.floodgate = self.world.floodgates[0]
        self.shipped = read(self.world.config_path)
        self.assertIn(k_shipped_rule, self.shipped, "the shipped rcpts_per_msg rule changed; update this test")

    def reload_and_wait(self, expected_line: str):
        before = self.floodgate.log_text().count(expected_line)
        self.floodgate.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: self.floodgate.log_text().count(expected_line) > before, 10,
                 f"floodgate to log {expected_line!r}")

    def held_subjects(self) -> list[str]:
        return [m.get("subject", "") for m in self.world.postfix.held()]

    def delivered_subjects(self) -> list[str]:
        return [m.header("Subject") for m in self.world.sink.messages()]

    def test_valid_reload_applies_to_new_messages_and_the_message_in_flight_keeps_the_old_config(self):
        world = self.world
        send_ten(world, "before")
        in_flight = open_message_past_data(world, "inflight")

        write(world.config_path, self.shipped.replace(k_shipped_rule, k_strict_rule))
        self.reload_and_wait("reload: ")
        self.assertIn("applied to new messages", self.floodgate.log_text())

        code, resp = finish_message(in_flight, "inflight")
        self.assertEqual(code, 250, resp)
        in_flight.quit()
        send_ten(world, "after")
        world.wait_settled(expect_sink=2)

        delivered = self.delivered_subjects()
        self.assertIn("ten before", delivered)
        self.assertIn("in flight inflight", delivered,
                      "the message past DATA at the reload must keep the config it started with")
        self.assertNotIn("ten after", delivered, "the reloaded (strict) config must apply to the next message")
        after_verdicts = [l for l in self.floodgate.verdict_lines() if "action=quarantine" in l]
        self.assertEqual(len(after_verdicts), 1, "\n".join(self.floodgate.verdict_lines()))
        self.assertIn("rcpts_per_msg", after_verdicts[0])
        self.assert_alive(world)

    def test_invalid_reload_is_refused_and_the_running_config_stays(self):
        world = self.world
        pid = self.floodgate.pid
        write(world.config_path, self.shipped.replace(k_shipped_rule, k_strict_rule) + "\nrules: [unclosed\n")
        self.reload_and_wait("reload refused: ")
        log = self.floodgate.log_text()
        self.assertIn("the running configuration stays", log)
        self.assertRegex(log, r"reload refused: .*floodgate\.yaml:\d+")

        send_ten(world, "refused")
        world.wait_settled(expect_sink=1)
        self.assertIn("ten refused", self.delivered_subjects(),
                      "after a refused reload the shipped policy must still be the one applied")
        self.assertEqual(self.floodgate.pid, pid)
        self.assert_alive(world)

        # A later valid file is taken: refusing one did not wedge reloading.
        write(world.config_path, self.shipped.replace(k_shipped_rule, k_strict_rule))
        self.reload_and_wait("applied to new messages")
        send_ten(world, "strict")
        world.wait_settled(expect_sink=1)
        self.assertNotIn("ten strict", self.delivered_subjects())
        self.assertEqual(sum("action=quarantine" in l for l in self.floodgate.verdict_lines()), 1)

    def test_only_the_main_thread_can_receive_sighup_sigterm_and_sigint(self):
        # A process-directed signal goes to any thread that does not block it (a
        # thread in sigwait() counts): libmilter's signal thread would stop the
        # milter on SIGHUP. Every thread but the main one must block all three.
        pid = self.floodgate.proc.pid
        wanted = (1 << (signal.SIGHUP - 1)) | (1 << (signal.SIGTERM - 1)) | (1 << (signal.SIGINT - 1))
        open_to_them = []
        for tid in sorted(os.listdir(f"/proc/{pid}/task")):
            with open(f"/proc/{pid}/task/{tid}/status") as f:
                status = dict(line.split(":\t", 1) for line in f.read().splitlines() if ":\t" in line)
            blocked = int(status["SigBlk"], 16)
            if int(tid) != pid and blocked & wanted != wanted:
                with open(f"/proc/{pid}/task/{tid}/wchan") as f:
                    open_to_them.append(f"thread {tid} ({status['Name'].strip()}, in {f.read()}) "
                                        f"blocks {blocked:#x}")
        self.assertEqual(open_to_them, [], "threads other than the main one may receive SIGHUP/SIGTERM/SIGINT")

    def test_a_burst_of_sighups_leaves_the_daemon_serving(self):
        # libmilter's own signal thread stops the milter on SIGHUP; every one
        # of these must reach floodgate's handler instead.
        for _ in range(200):
            self.floodgate.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: "applied to new messages" in self.floodgate.log_text(), 10, "a reload")
        time.sleep(0.5)  # any stop libmilter would make takes effect by now
        self.assert_alive(self.world)
        send_ten(self.world, "still")
        self.world.wait_settled(expect_sink=1)
        self.assertNotIn("stopping", self.floodgate.log_text())


class GracefulShutdown(FloodgateTestCase):
    def test_sigterm_lets_the_message_past_data_finish_and_tempfails_the_next_at_data(self):
        world = self.make_world()
        floodgate = world.floodgates[0]
        in_flight = open_message_past_data(world, "inflight")
        # A second client has its envelope in but has not reached DATA.
        waiting = world.connect("10.20.0.2")
        self.assertEqual(waiting.mail(k_sender)[0], 250)
        self.assertEqual(waiting.rcpt("friend@friends.example")[0], 250)

        floodgate.proc.send_signal(signal.SIGTERM)
        wait_for(lambda: "waiting up to 30s for 1 message(s) in flight" in floodgate.log_text(), 10,
                 "floodgate to start draining with one message in flight")

        waiting.putcmd("data")
        code, resp = waiting.getreply()
        self.assertEqual(code, 451, resp)
        self.assertIn(b"4.3.2", resp)
        waiting.close()

        code, resp = finish_message(in_flight, "inflight")
        self.assertEqual(code, 250, resp)
        in_flight.quit()
        floodgate.proc.wait(timeout=30)
        self.assertEqual(floodgate.proc.returncode, 0)
        log = floodgate.log_text()
        self.assertIn("stopping: no message in flight", log)
        self.assertIn("floodgate stopped", log)
        world.wait_settled(expect_sink=1)
        self.assertEqual([m.header("Subject") for m in world.sink.messages()], ["in flight inflight"])

    def test_the_wait_for_messages_in_flight_is_bounded_by_shutdown_timeout(self):
        text = read(floodgate_config())
        self.assertIn("\n  shutdown_timeout: 30s\n", text)
        handle, path = tempfile.mkstemp(prefix="floodgate-test-", suffix=".yaml")
        self.addCleanup(os.unlink, path)
        with os.fdopen(handle, "w") as f:
            f.write(text.replace("\n  shutdown_timeout: 30s\n", "\n  shutdown_timeout: 2s\n", 1))
        world = self.make_world(config=path)
        floodgate = world.floodgates[0]
        # A client that gets a message past DATA and then never sends its body.
        stuck = MilterClient(floodgate.port)
        self.addCleanup(stuck.close)
        stuck.start_message_past_data()

        started = time.monotonic()
        floodgate.proc.send_signal(signal.SIGTERM)
        floodgate.proc.wait(timeout=30)
        elapsed = time.monotonic() - started
        log = floodgate.log_text()
        self.assertIn("waiting up to 2s for 1 message(s) in flight", log)
        self.assertIn("1 message(s) still in flight after 2s", log)
        self.assertEqual(floodgate.proc.returncode, 0)
        self.assertGreaterEqual(elapsed, 2.0)
        self.assertLess(elapsed, 10.0, "libmilter's own stop plus the 2 s bound")


class MilterClient:
    """Just enough of the MTA side of the milter protocol (version 6) to open a
    connection and get one message past DATA, then leave it hanging."""

    def __init__(self, port: int):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)

    def _send(self, command: bytes, data: bytes = b""):
        packet = command + data
        self.sock.sendall(len(packet).to_bytes(4, "big") + packet)

    def _reply(self) -> bytes:
        def exactly(n: int) -> bytes:
            out = b""
            while len(out) < n:
                chunk = self.sock.recv(n - len(out))
                if not chunk:
                    raise ConnectionError("milter closed the connection")
                out += chunk
            return out
        length = int.from_bytes(exactly(4), "big")
        return exactly(length)

    def start_message_past_data(self):
        # OPTNEG: version 6, all actions, no protocol steps skipped by us.
        self._send(b"O", (6).to_bytes(4, "big") + (0x1FF).to_bytes(4, "big") + (0x1FFFFF).to_bytes(4, "big"))
        negotiated = self._reply()
        assert negotiated[:1] == b"O", negotiated
        steps = int.from_bytes(negotiated[9:13], "big")
        no_reply = lambda flag: steps & flag  # noqa: E731  SMFIP_NR_* of each stage
        self._send(b"C", b"client.example\0" + b"4" + (25).to_bytes(2, "big") + b"10.20.0.3\0")
        if not no_reply(0x1000):  # SMFIP_NR_CONN
            self._reply()
        self._send(b"M", b"<webform@hosting.example>\0")
        if not no_reply(0x4000):  # SMFIP_NR_MAIL
            self._reply()
        self._send(b"R", b"<friend@friends.example>\0")
        if not no_reply(0x8000):  # SMFIP_NR_RCPT
            self._reply()
        self._send(b"T")  # DATA: floodgate always answers it
        answer = self._reply()
        assert answer[:1] == b"c", answer

    def close(self):
        self.sock.close()


class PrivilegeDrop(FloodgateTestCase):
    """Started as root with milter.user, floodgate opens its unix socket, gives it
    the configured group and mode, and runs as that user; Postfix (user postfix,
    group postfix) still reaches it and mail is filtered as before."""

    def test_runs_as_the_configured_user_with_a_socket_postfix_can_reach(self):
        text = read(floodgate_config())
        self.assertIn("  # user: floodgate\n", text)
        handle, path = tempfile.mkstemp(prefix="floodgate-test-", suffix=".yaml")
        self.addCleanup(os.unlink, path)
        os.chmod(path, 0o644)
        with os.fdopen(handle, "w") as f:
            f.write(text.replace("  # user: floodgate\n",
                                 '  user: "nobody:nogroup"\n  socket_group: postfix\n  socket_mode: "0660"\n', 1))
        world = self.make_world(config=path, milter_transport="unix")
        floodgate = world.floodgates[0]

        status = floodgate.proc_status()
        nobody, nogroup = pwd.getpwnam("nobody").pw_uid, grp.getgrnam("nogroup").gr_gid
        self.assertEqual(status["Uid"].split(), [str(nobody)] * 4, "real, effective, saved and fs uid")
        self.assertEqual(status["Gid"].split(), [str(nogroup)] * 4)
        # initgroups(3) lists the primary group again; root's own groups must be gone.
        self.assertTrue(set(status["Groups"].split()) <= {str(nogroup)}, status["Groups"])
        self.assertIn(f"running as uid={nobody} gid={nogroup}", floodgate.log_text())

        socket_status = os.stat(floodgate.path)
        self.assertEqual(socket_status.st_mode & 0o7777, 0o660)
        self.assertEqual(socket_status.st_gid, grp.getgrnam("postfix").gr_gid)
        self.assertEqual(socket_status.st_uid, nobody)

        # Through Postfix: filtered exactly as under root.
        send_ten(world, "ordinary")
        bulk = rcpt_list(200, "bulk")
        world.send(k_client, k_sender, bulk, make_message(k_sender, bulk, "bulk", "Cheap pills\n"))
        world.wait_settled(expect_sink=1)
        self.assertEqual([m.header("Subject") for m in world.sink.messages()], ["ten ordinary"])
        self.assertEqual(len(world.postfix.held()), 1)

        # A reload reads the config as that user.
        floodgate.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: "applied to new messages" in floodgate.log_text(), 10, "the reload as nobody")
