"""A recording milter: what exactly does Postfix send a milter?

SUMMARY
    MilterProbe listens on a loopback port, speaks just enough of the milter protocol
    (version 6) to accept everything, and records each connection's events: the
    CONNECT packet (host name, family, port, address), every macro packet (with the
    command it precedes), HELO, MAIL, RCPT and header names. Used by
    test_postfix_facts.py to pin down how Postfix presents SMTP clients and local
    submissions (sendmail(1) -> pickup -> cleanup -> non_smtpd_milters) to a milter.

    Run directly to print what one sendmail(1) submission and one XCLIENT SMTP session
    look like:   sudo PYTHONDONTWRITEBYTECODE=1 /usr/bin/python3 milter_probe.py

LIMITS
    Test-only; answers CONTINUE to everything, asks for no protocol steps to be skipped.
"""

from __future__ import annotations

import socket
import struct
import threading

k_cmd_names = {b"O": "optneg", b"D": "macro", b"C": "connect", b"H": "helo", b"M": "mail",
               b"R": "rcpt", b"T": "data", b"L": "header", b"N": "eoh", b"B": "body",
               b"E": "eom", b"A": "abort", b"Q": "quit", b"K": "quit_nc", b"U": "unknown"}
k_no_reply = {b"D", b"A", b"Q", b"K"}


def _recv_exact(conn: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = conn.recv(n - len(buf))
        if not chunk:
            raise EOFError
        buf += chunk
    return buf


def _send(conn: socket.socket, cmd: bytes, data: bytes = b""):
    conn.sendall(struct.pack("!I", len(data) + 1) + cmd + data)


def _cstrings(data: bytes) -> list[str]:
    return [p.decode("utf-8", "replace") for p in data.split(b"\0")[:-1]] if data else []


class MilterProbe:
    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.connections: list[list[tuple]] = []  # one event list per milter connection
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def postfix_spec(self) -> str:
        return f"inet:127.0.0.1:{self.port}"

    def close(self):
        self._stop.set()
        self._thread.join(timeout=5)
        self.sock.close()

    def _serve(self):
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except (socket.timeout, OSError):
                continue
            events: list[tuple] = []
            with self._lock:
                self.connections.append(events)
            threading.Thread(target=self._session, args=(conn, events), daemon=True).start()

    def _session(self, conn: socket.socket, events: list[tuple]):
        conn.settimeout(30)
        try:
            while True:
                (length,) = struct.unpack("!I", _recv_exact(conn, 4))
                packet = _recv_exact(conn, length)
                cmd, data = packet[:1], packet[1:]
                name = k_cmd_names.get(cmd, repr(cmd))
                if cmd == b"O":
                    version, actions, protocol = struct.unpack("!III", data[:12])
                    events.append(("optneg", version, hex(actions), hex(protocol)))
                    _send(conn, b"O", struct.pack("!III", 6, 0, 0))
                    continue
                if cmd == b"D":
                    parts = _cstrings(data[1:])
                    events.append(("macro", k_cmd_names.get(data[:1], repr(data[:1])),
                                   dict(zip(parts[0::2], parts[1::2]))))
                elif cmd == b"C":
                    host, rest = data.split(b"\0", 1)
                    family = rest[:1].decode()
                    port = struct.unpack("!H", rest[1:3])[0] if family in "46" and len(rest) >= 3 else None
                    addr = rest[3:].rstrip(b"\0").decode() if family in "46" else rest[1:].rstrip(b"\0").decode()
                    events.append(("connect", host.decode(), family, port, addr))
                elif cmd in (b"H", b"M", b"R"):
                    events.append((name, _cstrings(data)))
                elif cmd == b"L":
                    events.append(("header", _cstrings(data)[0] if data else ""))
                else:
                    events.append((name,))
                if cmd in (b"Q", b"K"):
                    if cmd == b"Q":
                        return
                    continue
                if cmd not in k_no_reply:
                    _send(conn, b"c")  # SMFIR_CONTINUE
        except (EOFError, OSError, struct.error):
            return
        finally:
            conn.close()


if __name__ == "__main__":
    import pprint
    import harness

    probe = MilterProbe()
    try:
        with harness.PostfixWorld(floodgates=0, other_milter=probe.postfix_spec) as world:
            probe.connections.clear()  # drop smtpd's connection from the start-up probe
            world.postfix.sendmail("www-data@web.example", ["a@x.example"],
                                   b"Subject: local\r\n\r\nhello\r\n")
            world.wait_settled(expect_sink=1)
            print("=== sendmail(1) submission (non_smtpd_milters):")
            pprint.pprint(probe.connections, width=110)
            probe.connections.clear()
            world.send("10.1.2.3", "u@office.example", ["b@x.example"],
                       b"Subject: smtp\r\n\r\nhello\r\n", client_name="host.example")
            world.wait_settled(expect_sink=2)
            print("=== SMTP session with XCLIENT ADDR=10.1.2.3 NAME=host.example:")
            pprint.pprint(probe.connections, width=110)
    finally:
        probe.close()
