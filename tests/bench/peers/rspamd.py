"""A private rspamd 3.4 in milter mode with only its Redis-backed ratelimit module.

SUMMARY
    Rspamd(workdir, redis_url, transport="inet") writes a complete rspamd configuration
    (tests/bench/rspamd/rspamd.conf with this instance's paths, socket and Redis filled
    in) under workdir/rspamd/ and runs `rspamd -f -u _rspamd -g _rspamd -c FILE`: a
    proxy worker with `milter = yes` and `self_scan = yes` on 127.0.0.1:PORT (inet) or
    a unix socket (unix), the ratelimit module alone, its buckets in the given Redis.
    start() returns once the socket accepts connections; stop() ends every process of
    the instance. milter_spec is libmilter's syntax (inet:PORT@127.0.0.1, unix:/path),
    postfix_spec Postfix's (inet:127.0.0.1:PORT, unix:/path); pids() lists the main
    process and its workers, for CPU accounting; log_path is rspamd's own log.

    Used by tests/bench/postfix_throughput.py (full path through Postfix) and
    tests/bench/milter_compare.py (milter-direct).

SECURITY
    Needs root to start: rspamd refuses to run as root and drops to _rspamd itself,
    so the instance's directories are chowned to _rspamd. Listens on loopback or a
    socket in workdir only. The packaged instance (/etc/rspamd, ports 11332-11334) is
    neither used nor touched.

DIAGNOSTICS
    start() raises RuntimeError with the tail of rspamd's log and stdout if rspamd
    exits or does not accept connections within start_timeout. enabled_modules() asks rspamadm configdump -m which modules this
    configuration enables (the benchmarks check it is ratelimit alone).

LIMITS
    Debian's rspamd package must be installed (`apt-get install rspamd`); available()
    says whether it is, and callers skip rspamd with a message when not. Linux only
    (/proc). rspamd takes about 10 s to start on a 2-core machine.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.parse

k_rspamd_bin = shutil.which("rspamd") or "/usr/bin/rspamd"
k_template = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                          "rspamd", "rspamd.conf")
k_user = "_rspamd"


def available() -> str | None:
    """None when rspamd can run here, else why not (for a skip message)."""
    if not os.access(k_rspamd_bin, os.X_OK):
        return f"rspamd not installed ({k_rspamd_bin} missing): apt-get install rspamd"
    try:
        pwd.getpwnam(k_user)
    except KeyError:
        return f"user {k_user} missing (Debian's rspamd package creates it)"
    if os.geteuid() != 0:
        return "rspamd must be started as root to drop to _rspamd"
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def redis_servers(redis_url: str) -> tuple[str, str]:
    """rspamd's `servers` and `db` for a Floodgate-style Redis URL
    (redis://[user:pass@]host:port[/db] or unix:/path[?db=N])."""
    if redis_url.startswith("unix:"):
        path, _, query = redis_url[len("unix:"):].partition("?")
        db = urllib.parse.parse_qs(query).get("db", ["0"])[0]
        return path, db
    url = urllib.parse.urlsplit(redis_url)
    if url.scheme != "redis" or not url.hostname:
        raise ValueError(f"unsupported Redis URL for rspamd: {redis_url}")
    if url.password:
        # Nothing in the benchmarks uses one; rspamd would need `password = ...`.
        raise ValueError("Redis passwords are not passed to rspamd by this wrapper")
    db = url.path.lstrip("/") or "0"
    return f"{url.hostname}:{url.port or 6379}", db


class Rspamd:
    def __init__(self, workdir: str, redis_url: str, transport: str = "inet",
                 workers: int = 2, log_level: str = "notice", start_timeout: float = 60.0):
        """workers: proxy processes (each single-threaded; 2 = one per core of the
        benchmark machines, so rspamd may use both cores as Floodgate's threads do).
        log_level notice writes one line per message, as Floodgate does at info."""
        if transport not in ("inet", "unix"):
            raise ValueError(f"transport must be inet or unix, not {transport!r}")
        self.dir = os.path.join(workdir, "rspamd")
        self.transport = transport
        self.start_timeout = start_timeout
        self.proc: subprocess.Popen | None = None
        self.log_path = os.path.join(self.dir, "log", "rspamd.log")
        self.stdout_path = os.path.join(self.dir, "stdout.log")
        self.config_path = os.path.join(self.dir, "rspamd.conf")
        if transport == "unix":
            self.port = None
            self.path = os.path.join(self.dir, "milter", "proxy.sock")
            # smtpd runs as postfix, the milter_load client as root: world-writable
            # socket in a directory only this instance writes to.
            bind = f"{self.path} mode=0666"
        else:
            self.port = _free_port()
            self.path = None
            bind = f"127.0.0.1:{self.port}"
        servers, db = redis_servers(redis_url)
        for sub in ("run", "db", "log", "tmp", "milter"):
            os.makedirs(os.path.join(self.dir, sub), mode=0o755, exist_ok=True)
        # workdir is usually a mkdtemp (0700): rspamd, as _rspamd, and smtpd, as postfix,
        # must traverse it to reach the socket.
        os.chmod(workdir, os.stat(workdir).st_mode | 0o755)
        os.chmod(self.dir, 0o755)
        with open(k_template, encoding="utf-8") as f:
            text = f.read()
        for name, value in (("FG_DIR", self.dir), ("FG_BIND", bind), ("FG_REDIS_DB", db),
                            ("FG_REDIS", servers), ("FG_WORKERS", str(workers)),
                            ("FG_LOG_LEVEL", log_level)):
            text = text.replace(f"@{name}@", value)
        with open(self.config_path, "w", encoding="utf-8") as f:
            f.write(text)
        user = pwd.getpwnam(k_user)
        for root, dirs, files in os.walk(self.dir):
            for name in dirs + files:
                os.chown(os.path.join(root, name), user.pw_uid, user.pw_gid)
        os.chown(self.dir, user.pw_uid, user.pw_gid)

    # ---- specs

    @property
    def milter_spec(self) -> str:
        return f"unix:{self.path}" if self.path else f"inet:{self.port}@127.0.0.1"

    @property
    def postfix_spec(self) -> str:
        return f"unix:{self.path}" if self.path else f"inet:127.0.0.1:{self.port}"

    # ---- lifecycle

    def start(self):
        why_not = available()
        if why_not:
            raise RuntimeError(why_not)
        self._stdout = open(self.stdout_path, "ab")
        # -f: no fork, so this Popen is the main process and stop() can signal it.
        # stdout goes to a file: rspamd writes its early messages there, before the
        # log file is open.
        self.proc = subprocess.Popen(
            [k_rspamd_bin, "-f", "-u", k_user, "-g", k_user, "-c", self.config_path],
            stdin=subprocess.DEVNULL, stdout=self._stdout, stderr=subprocess.STDOUT,
            cwd=self.dir, start_new_session=True)
        deadline = time.monotonic() + self.start_timeout
        while not self.accepts():
            if self.proc.poll() is not None:
                raise RuntimeError(f"rspamd exited with {self.proc.returncode}:\n{self.describe()}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"rspamd did not accept milter connections on {self.milter_spec} "
                                   f"within {self.start_timeout:.0f} s:\n{self.describe()}")
            time.sleep(0.1)

    def accepts(self) -> bool:
        try:
            if self.path:
                with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                    s.settimeout(0.5)
                    s.connect(self.path)
            else:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    pass
            return True
        except OSError:
            return False

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 15.0):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            # SIGTERM to the main process: it stops its workers and waits for them.
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                pass
        # Workers left behind (main killed or hung): the session holds only this
        # instance's processes (start_new_session).
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        self._stdout.close()

    # ---- looking

    def pids(self) -> list[int]:
        """The main process and its children (the proxy workers and hs_helper, which
        rspamd forks even without a regexp to compile)."""
        if not self.alive():
            return []
        found = [self.proc.pid]
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            # fields[1] is the parent pid (field 4 of stat).
            if int(fields[1]) == self.proc.pid:
                found.append(int(entry))
        return found

    def cpu_seconds(self) -> float:
        """utime+stime of the instance's live processes. Workers that rspamd restarts
        take their CPU with them; the benchmarks check that the set of pids is stable."""
        total = 0
        for pid in self.pids():
            try:
                with open(f"/proc/{pid}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += int(fields[11]) + int(fields[12])
        return total / os.sysconf("SC_CLK_TCK")

    def rss_kb(self) -> dict[int, tuple[int, int]]:
        """pid -> (VmRSS, VmHWM) in kB."""
        out = {}
        for pid in self.pids():
            values = {}
            try:
                with open(f"/proc/{pid}/status") as f:
                    for line in f:
                        k, _, v = line.partition(":")
                        if k in ("VmRSS", "VmHWM"):
                            values[k] = int(v.split()[0])
            except OSError:
                continue
            out[pid] = (values.get("VmRSS", 0), values.get("VmHWM", 0))
        return out

    def pss_kb(self) -> int:
        """Proportional set size of the instance, summed over its processes (kB): the
        workers share the main process's maps (TLD list, language trigrams) copy-on-
        write, so a sum of their RSS would count those pages several times."""
        total = 0
        for pid in self.pids():
            try:
                with open(f"/proc/{pid}/smaps_rollup") as f:
                    for line in f:
                        if line.startswith("Pss:"):
                            total += int(line.split()[1])
            except OSError:
                continue
        return total

    def log_text(self) -> str:
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def modules_state(self) -> str:
        """`rspamadm configdump -m` on this instance's configuration: rspamd's own list
        of enabled and disabled modules ("Modules enabled: ratelimit")."""
        proc = subprocess.run(["rspamadm", "configdump", "-c", self.config_path, "-m"],
                              capture_output=True, text=True, timeout=120)
        return proc.stdout + proc.stderr

    def enabled_modules(self) -> list[str]:
        for line in self.modules_state().splitlines():
            if line.startswith("Modules enabled:"):
                return sorted(filter(None, (m.strip() for m in line.split(":", 1)[1].split(","))))
        raise RuntimeError(f"rspamadm configdump -m gave no module list:\n{self.modules_state()}")

    def describe(self, lines: int = 40) -> str:
        parts = []
        for path in (self.stdout_path, self.log_path):
            try:
                with open(path, encoding="utf-8", errors="replace") as f:
                    parts.append(f"----- {path}\n" + "\n".join(f.read().splitlines()[-lines:]))
            except OSError as e:
                parts.append(f"----- {path}: {e}")
        return "\n".join(parts) + "\n"
