"""Processes the Postfix harness starts and waits for: redis-server, smtp-sink,
floodgate daemons, plus the small helpers to pick ports and wait with deadlines.

Split from harness.py (which builds the whole world around them); see its
docstring for the picture. Every wait has a deadline; every process is stopped
by its stop() and logs to a file in the test's temporary directory.
"""

from __future__ import annotations

import email.parser
import email.policy
import glob
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass

k_postfix_bin = "/usr/sbin/postfix"
k_postqueue_bin = "/usr/sbin/postqueue"
k_postsuper_bin = "/usr/sbin/postsuper"
k_sendmail_bin = "/usr/sbin/sendmail"
k_smtp_sink_bin = "/usr/sbin/smtp-sink"
k_redis_bin = shutil.which("redis-server") or "/usr/bin/redis-server"

k_start_timeout = 20.0   # a daemon must be listening within this
# ctest kills a test after its TIMEOUT (300 s) with SIGKILL, which would orphan the
# Postfix master and the daemons; the watchdog tears everything down before that.
k_process_deadline = float(os.environ.get("FG_DEADLINE", "270"))
k_settle_timeout = 90.0  # the queue must drain within this
k_command_timeout = 60.0 # any helper command


# Listener ports are drawn below the kernel's ephemeral range. A port the kernel
# hands out (bind to port 0) is one it also gives the outgoing connections of
# every test running in parallel, and twice a port found free that way was a
# client's before Postfix's master could bind it ("bind 127.0.0.1 port N:
# Address already in use"). Below the range only another test's draw can take it.
k_listener_ports_low = 20000


def ephemeral_port_range() -> tuple[int, int]:
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low, high = (int(v) for v in f.read().split())
            return low, high
    except (OSError, ValueError):
        return 32768, 60999  # Linux's default


k_random_ports = random.Random()  # not the tests' seeded random: any seed would repeat across processes


def free_port() -> int:
    """A loopback TCP port nobody listens on right now, outside the ephemeral range
    when there is room below it (racy by nature: see k_listener_ports_low)."""
    low, _ = ephemeral_port_range()
    if low - 1 > k_listener_ports_low:
        for _ in range(100):
            port = k_random_ports.randint(k_listener_ports_low, low - 1)
            if port_is_free(port):
                return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_is_free(port: int) -> bool:
    """Whether a listener could bind 127.0.0.1:port now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def port_accepts(port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_for(predicate, timeout: float, what: str, interval: float = 0.05):
    """Poll predicate() until it returns a truthy value; raise TimeoutError after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def tail(path: str, lines: int = 60) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 256 * 1024))
            data = f.read().decode("utf-8", "replace")
    except OSError as e:
        return f"<cannot read {path}: {e}>"
    return "\n".join(data.splitlines()[-lines:])


def run(cmd, timeout: float = k_command_timeout, check: bool = True, **kw):
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stdout}{proc.stderr}")
    return proc


# --------------------------------------------------------------------------- processes


class Daemon:
    """A foreground child process with stdout+stderr in a log file."""

    def __init__(self, name: str, argv: list[str], log_path: str):
        self.name = name
        self.argv = argv
        self.log_path = log_path
        self._log = open(log_path, "ab")
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self._log,
                                     stderr=subprocess.STDOUT, start_new_session=True)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_text(self) -> str:
        try:
            with open(self.log_path, "r", encoding="utf-8", errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def stop(self, timeout: float = 10.0) -> int | None:
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(signal.SIGTERM)
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                try:
                    self.proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    pass
            except ProcessLookupError:
                pass
        self._log.close()
        return self.proc.returncode


class Redis(Daemon):
    def __init__(self, workdir: str):
        self.port = free_port()
        super().__init__("redis", [k_redis_bin, "--port", str(self.port), "--bind", "127.0.0.1",
                                   "--save", "", "--appendonly", "no", "--dir", workdir],
                         os.path.join(workdir, "redis.log"))
        wait_for(lambda: self._ping() or self._dead(), k_start_timeout, "redis-server")
        self._dead()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def _dead(self):
        if not self.alive():
            raise RuntimeError(f"redis-server died:\n{self.log_text()}")
        return False

    def _ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                return s.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    def command(self, *args: str) -> bytes:
        """One raw RESP command; returns the raw reply (enough for DBSIZE, FLUSHALL)."""
        payload = f"*{len(args)}\r\n" + "".join(f"${len(a)}\r\n{a}\r\n" for a in args)
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
            s.sendall(payload.encode())
            return s.recv(65536)


class Floodgate(Daemon):
    """One floodgate milter daemon on inet:PORT@127.0.0.1."""

    def __init__(self, workdir: str, name: str, binary: str, config: str, redis_url: str | None,
                 transport: str = "inet"):
        if transport == "unix":
            # smtpd runs as postfix: the socket's directory must be traversable and
            # the socket writable by it (hence umask 0 for the daemon).
            self.port = None
            self.path = os.path.join(workdir, "milter", f"{name}.sock")
            os.makedirs(os.path.dirname(self.path), mode=0o755, exist_ok=True)
            self.socket_spec = f"unix:{self.path}"
        else:
            self.port = free_port()
            self.path = None
            self.socket_spec = f"inet:{self.port}@127.0.0.1"
        # --foreground: the log goes to stderr, which is this log file.
        argv = [binary, "--config", config, "--socket", self.socket_spec, "--foreground"]
        if redis_url:
            argv += ["--redis", redis_url]
        old_umask = os.umask(0) if self.path else None
        try:
            super().__init__(name, argv, os.path.join(workdir, f"{name}.log"))
        finally:
            if old_umask is not None:
                os.umask(old_umask)

    def accepts(self) -> bool:
        if self.port is not None:
            return port_accepts(self.port)
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(0.5)
                s.connect(self.path)
                return True
        except OSError:
            return False

    def wait_ready(self):
        def ready():
            if not self.alive():
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n"
                                   f"{tail(self.log_path)}")
            return "listening on" in self.log_text() and self.accepts()
        wait_for(ready, k_start_timeout, f"{self.name} to listen on {self.socket_spec}")

    def stop(self, timeout: float = 10.0) -> int | None:
        code = super().stop(timeout)
        # Kept for FloodgateTestCase's exit check: the log file goes with the temp dir.
        self.final_log = self.log_text()
        return code

    def exit_problems(self) -> list[str]:
        """What was wrong with how this daemon ended: a non-zero status after SIGTERM
        (crash, hang) or a sanitizer report (ASan, LSan, UBSan builds)."""
        problems = []
        if "floodgate stopped" not in getattr(self, "final_log", ""):
            problems.append(f"{self.name} did not log a clean stop")
        if self.proc.returncode != 0:
            problems.append(f"{self.name} exited with status {self.proc.returncode}, want 0 after SIGTERM")
        for marker in ("AddressSanitizer", "LeakSanitizer", "ThreadSanitizer", "runtime error:"):
            if marker in getattr(self, "final_log", ""):
                problems.append(f"{self.name} log has a sanitizer report ({marker}):\n{self.final_log[-4000:]}")
        return problems

    @property
    def postfix_spec(self) -> str:
        """The same socket in Postfix's milter syntax."""
        return f"unix:{self.path}" if self.path else f"inet:127.0.0.1:{self.port}"

    def verdict_lines(self) -> list[str]:
        """Log lines that look like verdicts (key=value lines other than startup noise)."""
        return [l for l in self.log_text().splitlines() if "=" in l and "listening on" not in l]

    def proc_status(self) -> dict[str, str]:
        out = {}
        try:
            with open(f"/proc/{self.pid}/status") as f:
                for line in f:
                    k, _, v = line.partition(":")
                    out[k] = v.strip()
        except OSError:
            pass
        return out

    def cpu_seconds(self) -> float:
        with open(f"/proc/{self.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        # fields[0] is state (field 3); utime and stime are fields 14 and 15.
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Sink(Daemon):
    """smtp-sink dumping each transaction to DIR/sink/m.<hex>."""

    def __init__(self, workdir: str):
        self.port = free_port()
        self.dir = os.path.join(workdir, "sink")
        os.makedirs(self.dir)
        shutil.chown(self.dir, "postfix", "postfix")
        # backlog 1024: Postfix may open many parallel connections under load.
        super().__init__("smtp-sink", [k_smtp_sink_bin, "-u", "postfix", "-h", "sink.test",
                                       "-d", os.path.join(self.dir, "m."),
                                       f"127.0.0.1:{self.port}", "1024"],
                         os.path.join(workdir, "smtp-sink.log"))
        wait_for(lambda: port_accepts(self.port) or self._dead(), k_start_timeout, "smtp-sink")

    def _dead(self):
        if not self.alive():
            raise RuntimeError(f"smtp-sink died:\n{self.log_text()}")
        return False

    def files(self) -> list[str]:
        return sorted(glob.glob(os.path.join(self.dir, "m.*")))

    def count(self) -> int:
        return len(os.listdir(self.dir))

    def messages(self) -> list["SinkMessage"]:
        return [SinkMessage.load(p) for p in self.files()]


@dataclass
class SinkMessage:
    """One message as smtp-sink dumped it: envelope pseudo headers + the message headers."""
    path: str
    client_addr: str
    mail_args: str
    rcpts: list[str]
    headers: email.message.Message
    size: int

    @staticmethod
    def load(path: str) -> "SinkMessage":
        with open(path, "rb") as f:
            head = f.read(1024 * 1024)
            size = os.fstat(f.fileno()).st_size
        # Headers end at the first empty line; parse only that part (bodies can be 20 MB).
        end = head.find(b"\n\n")
        hdr_bytes = head if end < 0 else head[:end + 1]
        msg = email.parser.BytesHeaderParser(policy=email.policy.compat32).parsebytes(hdr_bytes)
        rcpts = [a.strip().split()[0].strip("<>").removeprefix("TO:").strip("<>")
                 for a in msg.get_all("X-Rcpt-Args", [])]
        return SinkMessage(path, (msg.get("X-Client-Addr") or "").strip(),
                           (msg.get("X-Mail-Args") or "").strip(), rcpts, msg, size)

    def header(self, name: str) -> str | None:
        v = self.headers.get(name)
        return None if v is None else " ".join(str(v).split())

    def floodgate_headers(self) -> dict[str, str]:
        return {k: " ".join(str(v).split()) for k, v in self.headers.items()
                if k.lower().startswith("x-floodgate")}
