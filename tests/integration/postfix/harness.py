"""End-to-end harness: a private Postfix instance, smtp-sink, redis-server and floodgate.

SUMMARY
    PostfixWorld builds, in a fresh temporary directory, everything one test needs:
    a throwaway redis-server, an smtp-sink that dumps every delivered message to a
    file (with its envelope as X-Client-Addr / X-Mail-Args / X-Rcpt-Args pseudo
    headers), zero or more floodgate daemons, and a private Postfix instance
    (`postfix -c DIR`) whose smtpd listeners call those daemons as milters and relay
    everything to the sink. Mail is sent with smtplib; XCLIENT presents any client
    address, so "outbound" and "inbound" clients are both one loopback connection.

    Every floodgate runs with a copy of the given config (world.config_path) whose
    `quarantine:` section is the world's own: spool_directory inside the temporary
    directory, release_target the world's "release" listener (an smtpd calling no
    milter, as in contrib/postfix/master.cf.snippet), postfix_config_directory the
    private instance. Parallel tests thus never share /var/spool/floodgate.
    The shipped freeze report mail (containment.notify.mail_to: [postmaster@localhost])
    is turned off in that copy, since it would arrive at the sink.
    quarantine_mode "hold" (the default, what the older tests assert: Postfix's hold
    queue) or "spool" (the shipped default: Floodgate's own spool, then DISCARD).
    floodgatectl() runs the CLI against that same config, whose redis.url is the
    world's Redis (the daemons also get it as --redis).

    All ports are picked at runtime, so tests may run in parallel (ctest -j).
    Everything is torn down by close() (Postfix stopped, processes killed, the
    temporary directory removed), also when a test fails. Every wait has a deadline.

SECURITY
    Needs root: Postfix's master, postqueue -c and smtp-sink -u all expect it.
    The Postfix instance listens on 127.0.0.1 only and relays anything (it is a
    private test instance), but only to the local sink.

DIAGNOSTICS
    describe() returns the tails of floodgate's stderr and Postfix's maillog;
    FloodgateTestCase prints it when a test fails (set FG_KEEP=1 to keep the
    temporary directory for inspection).

LIMITS
    Linux only (/proc). IPv4 loopback only. Postfix 3.x (maillog_file, postlogd).
"""

from __future__ import annotations

import atexit
import glob
import json
import os
import re
import shutil
import signal
import smtplib
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import unittest
import http.client
from dataclasses import dataclass, field

from processes import (  # noqa: F401  (re-exported: tests and benchmarks use harness.X)
    k_postfix_bin,
    k_postqueue_bin,
    k_postsuper_bin,
    k_sendmail_bin,
    k_smtp_sink_bin,
    k_redis_bin,
    k_start_timeout,
    k_process_deadline,
    k_settle_timeout,
    k_command_timeout,
    free_port,
    port_accepts,
    port_is_free,
    wait_for,
    tail,
    run,
    Daemon,
    Redis,
    Floodgate,
    Sink,
    SinkMessage,
)


# --------------------------------------------------------------------------- Postfix


@dataclass
class Listener:
    """One smtpd service in the private instance and the milters it calls."""
    name: str
    port: int
    milters: str  # Postfix smtpd_milters value ("" for none)
    # More `-o name=value` for this service; a value with spaces must be a
    # $parameter defined in main.cf (master.cf splits on whitespace).
    options: dict[str, str] = field(default_factory=dict)


class PostfixInstance:
    """A private Postfix: its own config dir, queue, data dir and maillog, chroot n."""

    def __init__(self, workdir: str, sink_port: int, listeners: list[Listener],
                 non_smtpd_milters: str, extra_main: dict[str, str] | None = None):
        self.workdir = workdir
        self.config_dir = os.path.join(workdir, "etc")
        self.queue_dir = os.path.join(workdir, "queue")
        self.data_dir = os.path.join(workdir, "data")
        self.log_dir = os.path.join(workdir, "log")
        self.maillog = os.path.join(self.log_dir, "maillog")
        self.listeners = listeners
        for d in (self.config_dir, self.queue_dir, self.log_dir):
            os.makedirs(d, mode=0o755)
        os.makedirs(self.data_dir, mode=0o700)
        shutil.chown(self.data_dir, "postfix", "postfix")

        main = {
            "compatibility_level": "3.6",
            "queue_directory": self.queue_dir,
            "data_directory": self.data_dir,
            "maillog_file": self.maillog,
            "maillog_file_prefixes": self.log_dir,
            "mail_owner": "postfix",
            "setgid_group": "postdrop",
            "myhostname": "relay.floodgate.test",
            "mydomain": "floodgate.test",
            "myorigin": "$myhostname",
            "mydestination": "",
            "local_recipient_maps": "",
            "relay_domains": "",
            "alias_maps": "",
            "alias_database": "",
            "inet_interfaces": "127.0.0.1",
            "inet_protocols": "ipv4",
            # A private test instance: every client the tests present may relay, the
            # "inbound" documentation networks too (Postfix insists on some
            # reject_unauth_destination, so permission goes through mynetworks).
            "mynetworks": "127.0.0.0/8 10.0.0.0/8 172.16.0.0/12 192.168.0.0/16 "
                          "192.0.2.0/24 198.51.100.0/24 203.0.113.0/24",
            "smtpd_relay_restrictions": "permit_mynetworks, reject_unauth_destination",
            "smtpd_recipient_restrictions": "",
            "smtpd_authorized_xclient_hosts": "127.0.0.0/8",
            "smtpd_peername_lookup": "no",
            "smtpd_recipient_limit": "5000",
            "smtpd_error_sleep_time": "0",
            "smtpd_client_connection_count_limit": "0",
            "smtpd_client_message_rate_limit": "0",
            "relayhost": f"[127.0.0.1]:{sink_port}",
            "default_destination_recipient_limit": "5000",
            "default_destination_concurrency_limit": "50",
            "smtp_dns_support_level": "disabled",
            "smtp_tls_security_level": "none",
            "smtpd_tls_security_level": "none",
            "smtputf8_enable": "no",
            "biff": "no",
            "in_flow_delay": "0",
            "message_size_limit": str(64 * 1024 * 1024),
            "mailbox_size_limit": "0",
            "queue_run_delay": "5s",
            "minimal_backoff_time": "5s",
            "maximal_backoff_time": "10s",
            "delay_warning_time": "0",
            "non_smtpd_milters": non_smtpd_milters,
            "milter_default_action": "tempfail",
            "milter_protocol": "6",
            "milter_connect_timeout": "10s",
            "milter_command_timeout": "30s",
            "milter_content_timeout": "120s",
        }
        main.update(extra_main or {})
        with open(os.path.join(self.config_dir, "main.cf"), "w") as f:
            for k, v in main.items():
                f.write(f"{k} = {v}\n")

        self.write_master_cf()

    def write_master_cf(self):
        # Postfix knows an inet listener by host:port in the service name.
        services = [f"127.0.0.1:{l.port} inet n - n - - smtpd\n"
                    f"  -o syslog_name=postfix/{l.name}\n"
                    f"  -o smtpd_milters={l.milters}\n"
                    + "".join(f"  -o {k}={v}\n" for k, v in l.options.items())
                    for l in self.listeners]
        master = "".join(services) + textwrap.dedent("""\
            pickup    unix  n       -       n       60      1       pickup
            cleanup   unix  n       -       n       -       0       cleanup
            qmgr      unix  n       -       n       300     1       qmgr
            rewrite   unix  -       -       n       -       -       trivial-rewrite
            bounce    unix  -       -       n       -       0       bounce
            defer     unix  -       -       n       -       0       bounce
            trace     unix  -       -       n       -       0       bounce
            verify    unix  -       -       n       -       1       verify
            flush     unix  n       -       n       1000?   0       flush
            proxymap  unix  -       -       n       -       -       proxymap
            proxywrite unix -       -       n       -       1       proxymap
            smtp      unix  -       -       n       -       -       smtp
            relay     unix  -       -       n       -       -       smtp
            showq     unix  n       -       n       -       -       showq
            error     unix  -       -       n       -       -       error
            retry     unix  -       -       n       -       -       error
            discard   unix  -       -       n       -       -       discard
            local     unix  -       n       n       -       -       local
            lmtp      unix  -       -       n       -       -       lmtp
            anvil     unix  -       -       n       -       1       anvil
            scache    unix  -       -       n       -       1       scache
            postlog   unix-dgram n  -       n       -       1       postlogd
            """)
        with open(os.path.join(self.config_dir, "master.cf"), "w") as f:
            f.write(master)

    def start(self, movable: tuple[Listener, ...] = ()):
        """Starts the instance. free_port() is racy: a port found free may be taken
        (by a parallel test's client, say) before master binds it, and master then
        exits with "bind ... Address already in use". The `movable` listeners (those
        nothing else knows the port of yet) then get new ports and master is started
        again, up to three times."""
        run([k_postfix_bin, "-c", self.config_dir, "check"])
        for attempt in range(3):
            started = run([k_postfix_bin, "-c", self.config_dir, "start"], check=False)
            if started.returncode == 0:
                break
            # The port master names, or any still taken (the client that had it
            # may be gone by now).
            named = {int(p) for p in re.findall(r"bind \S+ port (\d+): Address already in use",
                                                self.maillog_text())}
            taken = [l for l in movable if l.port in named or not port_is_free(l.port)]
            if attempt == 2 or not taken:
                raise RuntimeError(f"postfix start exited {started.returncode}:\n{started.stdout}{started.stderr}")
            for l in taken:
                l.port = free_port()
            self.write_master_cf()
        for l in self.listeners:
            wait_for(lambda: port_accepts(l.port), k_start_timeout, f"smtpd {l.name}:{l.port}")

    def stop(self):
        try:
            run([k_postfix_bin, "-c", self.config_dir, "stop"], timeout=30, check=False)
        except subprocess.TimeoutExpired:
            pass
        # master may outlive "stop" for a moment; make sure nothing keeps the dir busy.
        pid_file = os.path.join(self.queue_dir, "pid", "master.pid")
        try:
            with open(pid_file) as f:
                pid = int(f.read().strip() or 0)
        except (OSError, ValueError):
            pid = 0
        if pid > 0:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.1)
            else:
                try:
                    os.killpg(os.getpgid(pid), signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass

    def queue(self) -> list[dict]:
        """postqueue -j: one dict per queued message (queue_name, queue_id, recipients...)."""
        out = run([k_postqueue_bin, "-c", self.config_dir, "-j"]).stdout
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    def queue_names(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for m in self.queue():
            counts[m["queue_name"]] = counts.get(m["queue_name"], 0) + 1
        return counts

    def held(self) -> list[dict]:
        return [m for m in self.queue() if m["queue_name"] == "hold"]

    def maillog_text(self) -> str:
        try:
            with open(self.maillog, encoding="utf-8", errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def sendmail(self, sender: str, rcpts: list[str], message: bytes, timeout: float = 60):
        """Local submission with Postfix's sendmail(1) (postdrop -> pickup -> cleanup)."""
        return run([k_sendmail_bin, "-C", self.config_dir, "-i", "-f", sender, "--", *rcpts],
                   input=message.decode("utf-8", "surrogateescape"), timeout=timeout)


# --------------------------------------------------------------------------- world

_open_worlds: list["PostfixWorld"] = []
_guard_lock = threading.Lock()
_guard_installed = False


def guard_world(world):
    """Closes `world` (anything with close(), describe() and dir) also when the test
    process is told to stop or outlives its deadline (see _install_guards)."""
    _install_guards()
    _open_worlds.append(world)


def forget_world(world):
    """`world` is closed: the guards need not close it."""
    if world in _open_worlds:
        _open_worlds.remove(world)


def stop_daemons(daemons: list[Daemon]):
    """Stops every daemon, last started first, whatever goes wrong with one."""
    for d in reversed(daemons):
        try:
            d.stop()
        except Exception as e:  # keep tearing down
            sys.stderr.write(f"stopping {d.name}: {e}\n")


def remove_world_dir(path: str):
    """Removes a world's temporary directory, or keeps it and says so with FG_KEEP=1."""
    if not os.path.isdir(path):
        return
    if os.environ.get("FG_KEEP"):
        sys.stderr.write(f"FG_KEEP: left {path}\n")
    else:
        shutil.rmtree(path, ignore_errors=True)


def _close_all_worlds():
    for w in list(_open_worlds):
        try:
            w.close()
        except Exception as e:
            sys.stderr.write(f"closing {w.dir}: {e}\n")


def _install_guards():
    """Once per process: SIGTERM/SIGHUP become SystemExit (so unittest runs the
    cleanups), atexit closes what is left, and a watchdog closes every world and
    exits before ctest's hard kill."""
    global _guard_installed
    with _guard_lock:
        if _guard_installed:
            return
        _guard_installed = True
    if threading.current_thread() is threading.main_thread():
        def on_signal(signum, _frame):
            raise SystemExit(f"harness: got signal {signum}")
        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGHUP, on_signal)
    atexit.register(_close_all_worlds)

    def watchdog():
        sys.stderr.write(f"harness: watchdog: still running after {k_process_deadline:.0f}s, "
                         "tearing down\n")
        for w in list(_open_worlds):
            sys.stderr.write(w.describe())
        _close_all_worlds()
        os._exit(3)
    timer = threading.Timer(k_process_deadline, watchdog)
    timer.daemon = True
    timer.start()



def floodgate_binary() -> str:
    path = os.environ.get("FLOODGATE_BINARY")
    if not path:
        raise unittest.SkipTest("FLOODGATE_BINARY is not set (run through ctest)")
    return path


def floodgate_config() -> str:
    path = os.environ.get("FLOODGATE_CONFIG")
    if not path:
        raise unittest.SkipTest("FLOODGATE_CONFIG is not set (run through ctest)")
    return path


def floodgatectl_binary() -> str:
    """FLOODGATECTL_BINARY, else floodgatectl beside floodgate's build folder
    (build/milter/floodgate -> build/ctl/floodgatectl)."""
    path = os.environ.get("FLOODGATECTL_BINARY")
    if path:
        return path
    return os.path.join(os.path.dirname(os.path.dirname(floodgate_binary())), "ctl", "floodgatectl")


def floodgatectl(config_path: str, *args: str, timeout: float = k_command_timeout) -> subprocess.CompletedProcess:
    """floodgatectl --config CONFIG ARGS; never raises on exit status."""
    return run([floodgatectl_binary(), "--config", config_path, *args], timeout=timeout, check=False)


def quarantine_list(config_path: str) -> list[dict]:
    """`floodgatectl list --json`, parsed; fails the caller on a non-zero exit."""
    proc = floodgatectl(config_path, "list", "--json")
    if proc.returncode != 0:
        raise AssertionError(f"floodgatectl list --json exited {proc.returncode}: "
                             f"{proc.stdout}{proc.stderr}")
    return json.loads(proc.stdout)


def with_quarantine_section(config_text: str, settings: dict[str, str]) -> str:
    """config_text with its top-level `quarantine:` section replaced by `settings`
    (appended when there is none: YAML allows no duplicate keys). The section runs
    from its key to the next line starting in column 0 (a key or a comment)."""
    lines = config_text.splitlines(keepends=True)
    out, skipping = [], False
    for line in lines:
        if line.startswith("quarantine:"):
            skipping = True
            continue
        if skipping and line[:1] not in (" ", "\t", "\n", "\r", ""):
            skipping = False
        if not skipping:
            out.append(line)
    text = "".join(out)
    if text and not text.endswith("\n"):
        text += "\n"
    section = "".join(f"  {k}: {v}\n" for k, v in settings.items())
    return text + "\n# Set by the test harness (harness.py) for this world only.\nquarantine:\n" + section


def with_redis_url(config_text: str, url: str) -> str:
    """config_text with `url:` of its top-level `redis:` section set to `url`, so that
    floodgatectl (which has no --redis flag) talks to the world's Redis like the
    daemons (which also get it as --redis). Adds the key, or the section, if missing."""
    lines = config_text.splitlines(keepends=True)
    entry = f"  url: {yaml_string(url)}  # set by the test harness\n"
    for i, line in enumerate(lines):
        if not line.startswith("redis:"):
            continue
        for j in range(i + 1, len(lines)):
            if lines[j][:1] not in (" ", "\t", "\n", "\r", ""):
                break  # the next top-level key: the section has no url
            if lines[j].lstrip().startswith("url:") and lines[j].startswith("  ") \
                    and not lines[j].startswith("   "):
                lines[j] = entry
                return "".join(lines)
        lines.insert(i + 1, entry)
        return "".join(lines)
    text = "".join(lines)
    if text and not text.endswith("\n"):
        text += "\n"
    return text + "\n# Set by the test harness (harness.py) for this world only.\nredis:\n" + entry


k_master_cf_snippet = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..",
                                   "contrib", "postfix", "master.cf.snippet")


def release_listener_options() -> dict[str, str]:
    """The -o options of the release listener shipped in contrib/postfix/master.cf.snippet
    (its first service, 127.0.0.1:10026), so the tests release through what ops install."""
    options: dict[str, str] = {}
    in_service = False
    with open(k_master_cf_snippet, encoding="utf-8") as f:
        for line in f:
            if line.startswith("127.0.0.1:10026 "):
                in_service = True
            elif in_service and line.startswith((" ", "\t")) and line.strip().startswith("-o "):
                name, _, value = line.strip()[3:].partition("=")
                options[name] = value
            elif in_service and line.strip() and not line.startswith((" ", "\t")):
                break
    if options.get("smtpd_milters", None) != "":
        raise RuntimeError(f"{k_master_cf_snippet}: no release listener with -o smtpd_milters= found")
    for name in ("syslog_name", "smtpd_milters"):  # the harness writes these for every service
        options.pop(name, None)
    return options


def with_metrics_listen(config_text: str, listen: str) -> str:
    """config_text with its top-level `metrics:` section replaced by one whose
    `listen:` is `listen` ("HOST:PORT" or "off"). Every world sets it: the shipped
    127.0.0.1:9890 would make daemons of parallel tests fight over one port."""
    lines = config_text.splitlines(keepends=True)
    out, skipping = [], False
    for line in lines:
        if line.startswith("metrics:"):
            skipping = True
            continue
        if skipping and line[:1] not in (" ", "\t", "\n", "\r", ""):
            skipping = False
        if not skipping:
            out.append(line)
    text = "".join(out)
    if text and not text.endswith("\n"):
        text += "\n"
    return text + f"\n# Set by the test harness (harness.py) for this world only.\nmetrics:\n  listen: {listen}\n"


def yaml_string(text: str) -> str:
    return json.dumps(text)  # a JSON string is a YAML double-quoted scalar


class PostfixWorld:
    """Everything one test needs. Use as a context manager, or call close().

    floodgates: how many floodgate daemons; listener i calls daemon i (one listener
    per daemon). plain_listener adds one more listener, last, that calls no milter
    (always there with 0 daemons). All daemons share the one Redis. redis=False
    starts no Redis at all and points floodgate at a port nobody listens on.
    milter_transport "inet" (loopback TCP, the default) or "unix" (a socket file).
    other_milter (a Postfix milter spec) adds a listener calling that milter instead,
    and with floodgates=0 makes it the non_smtpd_milter too.

    Quarantine: quarantine_mode "hold" or "spool" (see the module comment);
    `quarantine` overrides keys of the generated section (e.g. max_message_bytes).
    A "release" listener, always last, calls no milter: the release target, with
    the options of contrib/postfix/master.cf.snippet's release listener.
    release_options adds -o options to it (values with spaces via extra_main
    parameters). spool_tmpfs_bytes puts the spool on a tmpfs of that size
    (world.spool_mount, unmounted by close()) for disk-full tests.
    """

    def __init__(self, floodgates: int = 1, redis: bool = True, milter_on_local: bool = True,
                 plain_listener: bool = False, milter_transport: str = "inet",
                 other_milter: str | None = None,
                 config: str | None = None, binary: str | None = None,
                 extra_main: dict[str, str] | None = None,
                 quarantine_mode: str = "hold", quarantine: dict[str, str] | None = None,
                 release_options: dict[str, str] | None = None,
                 spool_tmpfs_bytes: int | None = None, metrics: bool = False):
        self.dir = tempfile.mkdtemp(prefix="floodgate-postfix-")
        guard_world(self)
        os.chmod(self.dir, 0o755)  # postfix and smtp-sink must traverse it
        self.daemons: list[Daemon] = []
        self.redis: Redis | None = None
        self.floodgates: list[Floodgate] = []
        self.postfix: PostfixInstance | None = None
        self.spool_mount: str | None = None
        try:
            if spool_tmpfs_bytes:
                self.spool_mount = os.path.join(self.dir, "spoolfs")
                os.makedirs(self.spool_mount)
                run(["mount", "-t", "tmpfs", "-o", f"size={spool_tmpfs_bytes},mode=0755",
                     "floodgate-test-spool", self.spool_mount])
                self.spool_dir = os.path.join(self.spool_mount, "spool")
            else:
                self.spool_dir = os.path.join(self.dir, "spool")
            self.release_listener = Listener("release", free_port(), "",
                                             {**release_listener_options(), **(release_options or {})})
            self.config_path = os.path.join(self.dir, "floodgate.yaml")
            settings = {
                "mode": quarantine_mode,
                "spool_directory": yaml_string(self.spool_dir),
                "release_target": f"127.0.0.1:{self.release_listener.port}",
                "postfix_config_directory": yaml_string(os.path.join(self.dir, "etc")),
            }
            settings.update(quarantine or {})
            if redis:
                self.redis = Redis(self.dir)
                self.daemons.append(self.redis)
                redis_url = self.redis.url
            else:
                redis_url = f"redis://127.0.0.1:{free_port()}/0"  # nobody listens there
            with open(config or floodgate_config(), encoding="utf-8") as f:
                text = with_redis_url(with_quarantine_section(f.read(), settings), redis_url)
            # The shipped report mail to postmaster@localhost would reach the sink
            # (the release listener relays there) and upset every count of delivered
            # mail; tests of notifications name their own addresses.
            text = text.replace("    mail_to: [postmaster@localhost]\n", "    mail_to: []\n")
            # metrics=True: the one daemon serves /metrics on a port of its own
            # (scrape_metrics()); daemons sharing this config would share the port.
            if metrics and floodgates != 1:
                raise ValueError("metrics=True needs exactly one floodgate daemon")
            self.metrics_port: int | None = free_port() if metrics else None
            text = with_metrics_listen(text, f"127.0.0.1:{self.metrics_port}" if metrics else "off")
            with open(self.config_path, "w", encoding="utf-8") as f:
                f.write(text)
            self.sink = Sink(self.dir)
            self.daemons.append(self.sink)
            for i in range(floodgates):
                fg = Floodgate(self.dir, f"floodgate{i}", binary or floodgate_binary(),
                               self.config_path, redis_url, milter_transport)
                self.daemons.append(fg)
                self.floodgates.append(fg)
            for fg in self.floodgates:
                fg.wait_ready()
            listeners = [Listener(f"smtpd{i}", free_port(), fg.postfix_spec)
                         for i, fg in enumerate(self.floodgates)]
            if other_milter:
                listeners.append(Listener(f"smtpd{len(listeners)}", free_port(), other_milter))
            if plain_listener or not listeners:
                listeners.append(Listener(f"smtpd{len(listeners)}", free_port(), ""))
            listeners.append(self.release_listener)
            local_milters = ""
            if milter_on_local:
                local_milters = (self.floodgates[0].postfix_spec if self.floodgates
                                 else other_milter or "")
            self.postfix = PostfixInstance(self.dir, self.sink.port, listeners, local_milters,
                                           extra_main)
            # The release listener's port is in floodgate's config already.
            self.postfix.start(movable=tuple(l for l in listeners if l is not self.release_listener))
        except BaseException:
            sys.stderr.write(self.describe())
            self.close()
            raise

    # ---- lifecycle

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        forget_world(self)
        if self.postfix:
            self.postfix.stop()
            self.postfix = None
        stop_daemons(self.daemons)
        self.daemons = []
        if self.spool_mount:
            if run(["umount", self.spool_mount], check=False).returncode != 0:
                run(["umount", "-l", self.spool_mount], check=False)
            self.spool_mount = None
        remove_world_dir(self.dir)

    def describe(self, lines: int = 60) -> str:
        parts = [f"\n===== harness dir {self.dir}"]
        for fg in self.floodgates:
            parts.append(f"===== {fg.name} ({fg.socket_spec}) alive={fg.alive()} "
                         f"log tail:\n{tail(fg.log_path, lines)}")
        if self.postfix:
            parts.append(f"===== postfix maillog tail:\n{tail(self.postfix.maillog, lines)}")
            try:
                parts.append(f"===== queue: {self.postfix.queue_names()}")
            except Exception as e:
                parts.append(f"===== queue: <{e}>")
        if getattr(self, "sink", None):
            parts.append(f"===== sink: {self.sink.count()} messages")
        if getattr(self, "spool_dir", None):
            parts.append(f"===== spool {self.spool_dir}: {len(self.spool_entry_files())} entries")
        return "\n".join(parts) + "\n"

    # ---- sending

    def listener_port(self, listener: int = 0) -> int:
        return self.postfix.listeners[listener].port

    def connect(self, client_addr: str, client_name: str = "client.example",
                helo: str | None = None, listener: int = 0, timeout: float = 120) -> smtplib.SMTP:
        """An SMTP session to smtpd presenting client_addr via XCLIENT (re-EHLOed)."""
        s = smtplib.SMTP("127.0.0.1", self.listener_port(listener), local_hostname="harness.test",
                         timeout=timeout)  # per socket operation, not per session
        s.ehlo()
        if not s.has_extn("xclient"):
            s.close()
            raise RuntimeError("smtpd does not offer XCLIENT (smtpd_authorized_xclient_hosts?)")
        code, resp = s.docmd("XCLIENT", f"ADDR={client_addr} NAME={client_name}")
        if code != 220:
            s.close()
            raise RuntimeError(f"XCLIENT refused: {code} {resp!r}")
        # XCLIENT restarts the session: smtpd greets again and forgets EHLO.
        s.ehlo_resp = None
        s.esmtp_features = {}
        s.does_esmtp = False
        s.ehlo(helo or client_name)
        return s

    def send(self, client_addr: str, sender: str, rcpts: list[str], message: bytes | str,
             listener: int = 0, client_name: str = "client.example") -> str:
        """One message in its own session; returns the Postfix queue id.
        Raises smtplib.SMTPException (e.g. SMTPDataError on a milter tempfail)."""
        s = self.connect(client_addr, client_name, listener=listener)
        try:
            return send_on(s, sender, rcpts, message)
        finally:
            try:
                s.quit()
            except smtplib.SMTPException:
                s.close()

    # ---- waiting and looking

    def verdict_for(self, queue_id: str) -> str | None:
        """The floodgate log line naming queue_id (any daemon), or None."""
        if not queue_id:
            return None
        for fg in self.floodgates:
            for line in fg.log_text().splitlines():
                if queue_id in line:
                    return line
        return None

    def spool_entry_files(self) -> list[str]:
        """The complete entries in the quarantine spool (<id>.fgq), oldest id first."""
        return sorted(glob.glob(os.path.join(self.spool_dir, "*.fgq")))

    def scrape_metrics(self) -> str:
        """GET /metrics from the daemon of a world made with metrics=True: the text format."""
        if self.metrics_port is None:
            raise RuntimeError("this world was made without metrics=True")
        # http.client, not urllib: an http_proxy in the environment must not apply.
        connection = http.client.HTTPConnection("127.0.0.1", self.metrics_port, timeout=k_command_timeout)
        try:
            connection.request("GET", "/metrics")
            reply = connection.getresponse()
            body = reply.read().decode("utf-8")
            if reply.status != 200:
                raise RuntimeError(f"GET /metrics: {reply.status} {body[:200]!r}")
            return body
        finally:
            connection.close()

    def floodgatectl(self, *args: str, timeout: float = k_command_timeout) -> subprocess.CompletedProcess:
        return floodgatectl(self.config_path, *args, timeout=timeout)

    def quarantine_list(self) -> list[dict]:
        return quarantine_list(self.config_path)

    def held_recipients(self) -> list[list[str]]:
        """Recipients of each message in the hold queue."""
        return [[r["address"] for r in m.get("recipients", [])] for m in self.postfix.held()]

    def wait_settled(self, expect_sink: int | None = None, timeout: float = k_settle_timeout):
        """Wait until nothing is in flight (incoming/active/maildrop/deferred empty; hold
        may be non-empty) and, if expect_sink is given, the sink holds at least that many
        messages. Deferred mail counts as "in flight" until the deadline, then fails."""
        in_flight = ("incoming", "active", "maildrop", "deferred")

        def settled():
            q = self.postfix.queue_names()
            if any(q.get(n, 0) for n in in_flight):
                return False
            if expect_sink is not None and self.sink.count() < expect_sink:
                return False
            return True
        try:
            wait_for(settled, timeout, "the Postfix queue to settle", interval=0.2)
        except TimeoutError as e:
            raise AssertionError(f"{e}: queue={self.postfix.queue_names()} "
                                 f"sink={self.sink.count()}") from None
        # Pickup scans maildrop on a timer; a local submission may not be listed yet
        # as "incoming". A short quiet period catches stragglers.
        time.sleep(0.5)
        if not settled():
            self.wait_settled(expect_sink, timeout)


class FloodgateTestCase(unittest.TestCase):
    """Base class: self.world is torn down after each test; its logs print on failure."""

    world: PostfixWorld | None = None

    def make_world(self, **kw) -> PostfixWorld:
        world = PostfixWorld(**kw)
        self.world = world
        # Cleanups run last-registered first: this check runs after close().
        self.addCleanup(self._assert_floodgates_ended_cleanly, world)
        self.addCleanup(world.close)
        self.addCleanup(self._describe_on_failure, world)
        return world

    def _assert_floodgates_ended_cleanly(self, world: PostfixWorld):
        problems = [p for fg in world.floodgates for p in fg.exit_problems()]
        self.assertEqual(problems, [], "\n".join(problems))

    def _describe_on_failure(self, world: PostfixWorld):
        # Cleanups run in their own "test part", so _outcome.success says nothing
        # about the test body; the result's failure lists do.
        result = getattr(getattr(self, "_outcome", None), "result", None)
        failed = any(t is self for t, _ in
                     getattr(result, "failures", []) + getattr(result, "errors", []))
        if failed or os.environ.get("FG_VERBOSE"):
            sys.stderr.write(world.describe())

    def assert_alive(self, world: PostfixWorld):
        for fg in world.floodgates:
            self.assertTrue(fg.alive(), f"{fg.name} died: exit code {fg.proc.returncode}")


# --------------------------------------------------------------------------- messages


def send_on(s: smtplib.SMTP, sender: str, rcpts: list[str], message: bytes | str) -> str:
    """One transaction on an open session; returns the queue id from "250 ... queued as ID".
    Raises smtplib.SMTPResponseException subclasses on any non-2xx reply."""
    code, resp = s.mail(sender)
    if code != 250:
        s.rset()
        raise smtplib.SMTPSenderRefused(code, resp, sender)
    for r in rcpts:
        code, resp = s.rcpt(r)
        if code not in (250, 251):
            s.rset()
            raise smtplib.SMTPRecipientsRefused({r: (code, resp)})
    code, resp = s.data(message)
    if code != 250:
        s.rset()
        raise smtplib.SMTPDataError(code, resp)
    text = resp.decode("utf-8", "replace")
    return text.rsplit("queued as ", 1)[-1].strip() if "queued as " in text else ""


def make_message(sender: str, rcpts: list[str], subject: str, body: str,
                 extra_headers: dict[str, str] | None = None) -> bytes:
    to = rcpts[0] if len(rcpts) == 1 else "undisclosed-recipients:;"
    hdrs = {"From": sender, "To": to, "Subject": subject,
            "Date": "Thu, 01 Jan 2026 00:00:00 +0000",
            "Message-ID": f"<{time.time_ns()}.{os.getpid()}@harness.test>",
            "MIME-Version": "1.0", "Content-Type": "text/plain; charset=us-ascii"}
    hdrs.update(extra_headers or {})
    text = "".join(f"{k}: {v}\r\n" for k, v in hdrs.items()) + "\r\n" + body.replace("\n", "\r\n")
    return text.encode("utf-8")


def rcpt_list(n: int, tag: str, domain: str = "friends.example") -> list[str]:
    return [f"{tag}{i:04d}@{domain}" for i in range(n)]


k_words = ("garden invoice meeting tomorrow lunch project budget review quarterly paper river "
           "mountain coffee schedule holiday parcel delivery kitchen window bicycle concert "
           "library museum weather harbour station ticket journey recipe flower orchard "
           "stone violin engine marble lantern compass saddle feather pepper blanket "
           "thunder crystal meadow rocket candle puzzle anchor velvet glacier canyon").split()


def distinct_text(rng, words: int = 80) -> str:
    """Ordinary-looking text, different for every call (so content fingerprints differ)."""
    lines, line = [], []
    for _ in range(words):
        line.append(rng.choice(k_words))
        if len(line) == 12:
            lines.append(" ".join(line).capitalize() + ".")
            line = []
    if line:
        lines.append(" ".join(line).capitalize() + ".")
    return "\n".join(lines) + "\n"


def run_smtp_source(port: int, sessions: int, messages: int, recipients: int, length: int,
                    timeout: float) -> float:
    """Postfix's smtp-source against 127.0.0.1:port (-A: go on after non-2xx replies);
    returns its wall time. Used by the benchmarks in tests/bench."""
    cmd = ["/usr/sbin/smtp-source", "-A", "-s", str(sessions), "-m", str(messages), "-r", str(recipients),
           "-l", str(length), "-M", "bench.client.example", "-f", "sender@bench.example",
           "-t", "rcpt@bench-dest.example", f"127.0.0.1:{port}"]
    t0 = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0 or proc.stderr.strip():
        sys.stderr.write(f"smtp-source exited {proc.returncode}: {proc.stderr[-2000:]}\n")
    return time.monotonic() - t0
