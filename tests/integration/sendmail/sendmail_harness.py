"""End-to-end harness for Sendmail: a private Sendmail daemon, smtp-sink, redis-server
and floodgate.

SUMMARY
    SendmailWorld builds, in a fresh temporary directory, what one test needs: a
    throwaway redis-server, an smtp-sink dumping every delivered message to a file
    (processes.Sink, as in the Postfix tests), a floodgate daemon, and a Sendmail
    daemon listening on a loopback port, calling floodgate as its milter and relaying
    every message to the sink.

    The Sendmail is Debian's, unpacked by fetch_sendmail.sh (the ctest fixture
    sendmail.fetch runs it; FG_SENDMAIL_ROOT names the tree), never installed: its
    packages conflict with Postfix's. Its sendmail.cf is built with m4 from a .mc
    (the installed sendmail-cf's macros) with its own queue directory, pid, status,
    alias, hosts and service-switch files in the temporary directory, so nothing
    under /etc/mail or /var/spool is read or written.

    floodgate runs with a copy of the given config (the shipped one by default) whose
    `quarantine:` section is the world's: its own spool, release_target Sendmail's
    second daemon (no milter, as contrib/sendmail/floodgate.mc declares it), mta
    sendmail with the instance's sendmail-command script, so floodgatectl (world.
    floodgatectl()) releases spool and hold entries through this Sendmail. The world
    is closed by the Postfix harness's guards too (signals, atexit, watchdog).

    Sendmail qualifies the host name before it reads its .cf, and waits 60 s when the
    name has no dot and cannot be resolved (as on a test VM named "vm"). Every
    Sendmail command therefore runs in its own UTS and mount namespaces (unshare)
    with a dotted host name and an /etc/hosts of its own, bind-mounted in that
    namespace only.

    Sendmail logs to syslog, which these machines do not run; -D FILE -d89.8 writes
    the same lines to a file instead (sendmail.log in the temporary directory).

    submit() is local submission as Debian sets it up (and PHP's mail() uses it):
    `sendmail -t -i` with a submit.cf built from FEATURE(`msp'), a mail submission
    program that queues in its own directory and relays the message over SMTP to the
    daemon, where the milter sees it like any other connection from 127.0.0.1. It runs
    as nobody (Sendmail refuses an MSP running as root), which owns its queue.

    With `sasl_users`, Sendmail offers SMTP AUTH (PLAIN, LOGIN) checked against a
    private sasldb (saslpasswd2). Cyrus SASL reads Sendmail.conf only from fixed
    directories, and Sendmail clears its environment (SASL_CONF_PATH is lost), so a
    copy of the SASL plugin directory with that Sendmail.conf added is bind-mounted
    over /usr/lib/x86_64-linux-gnu/sasl2 (and /etc/sasl2, where it exists) in the
    same namespace.

SECURITY
    Needs root: unshare and mount for the namespaces, smtp-sink -u. Sendmail listens
    on 127.0.0.1 only and relays anything, only to the local sink.

DIAGNOSTICS
    describe() returns the tails of floodgate's log and Sendmail's; SendmailTestCase
    prints it when a test fails (FG_KEEP=1 keeps the temporary directory).

LIMITS
    Linux only. IPv4 loopback only. Sendmail 8.17 (Debian 12).
"""

from __future__ import annotations

import grp
import os
import pwd
import re
import shutil
import signal
import smtplib
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
import unittest

k_here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(k_here), "postfix"))

from harness import (  # noqa: E402  (the Postfix harness's helpers)
    floodgatectl,
    floodgate_binary,
    floodgate_config,
    forget_world,
    guard_world,
    quarantine_list,
    remove_world_dir,
    stop_daemons,
    with_metrics_listen,
    with_quarantine_section,
    with_redis_url,
    yaml_string,
)
from processes import (  # noqa: E402
    Daemon,
    Floodgate,
    Redis,
    Sink,
    free_port,
    port_accepts,
    run,
    tail,
    wait_for,
    k_start_timeout,
)

k_sendmail_root = os.environ.get("FG_SENDMAIL_ROOT", "")
k_cf_m4 = "/usr/share/sendmail/cf/m4/cf.m4"  # Debian's sendmail-cf
k_floodgate_mc = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(k_here))),
                              "contrib", "sendmail", "floodgate.mc")
k_host_name = "sendmail-test.localdomain"
k_stop_timeout = 10.0
k_refusing_port = 9  # discard: nothing listens on it here, so connections are refused
k_sasl_plugin_dir = "/usr/lib/x86_64-linux-gnu/sasl2"  # libsasl2-modules, -modules-db


def sendmail_binary() -> str:
    path = os.path.join(k_sendmail_root, "usr", "libexec", "sendmail", "sendmail")
    if not k_sendmail_root or not os.access(path, os.X_OK):
        raise RuntimeError(f"no unpacked Sendmail at {path!r}: set FG_SENDMAIL_ROOT "
                           "(ctest's sendmail.fetch fixture runs fetch_sendmail.sh)")
    return path


def reserved_port() -> tuple[int, socket.socket]:
    """A free loopback port and a socket bound to it (not listening): while that
    socket is open, free_port() (processes.port_is_free) never returns the port.
    Close it just before the daemon that needs the port binds it."""
    for _ in range(100):
        port = free_port()
        hold = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            hold.bind(("127.0.0.1", port))
            return port, hold
        except OSError:
            hold.close()
    raise RuntimeError("no free loopback port to reserve")


def read_log(path: str) -> str:
    """A log file's text; "" while it does not exist yet."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return ""


class SendmailInstance:
    """A private Sendmail daemon relaying to the sink: on 127.0.0.1:port calling the
    milter, and on 127.0.0.1:release_port calling none (where floodgatectl releases
    to). The milter and the release daemon are contrib/sendmail/floodgate.mc's."""

    def __init__(self, workdir: str, port: int, release_port: int, sink_port: int, milter_spec: str,
                 extra_mc: str = "", sasl_users: dict[str, str] | None = None):
        self.port = port
        self.extra_mc = extra_mc
        self.release_port = release_port
        self.dir = os.path.join(workdir, "sendmail")
        self.queue_dir = os.path.join(self.dir, "mqueue")
        self.log_path = os.path.join(self.dir, "sendmail.log")
        self.cli_log_path = os.path.join(self.dir, "sendmail-cli.log")
        self.pid_path = os.path.join(self.dir, "sendmail.pid")
        self.cf_path = os.path.join(self.dir, "sendmail.cf")
        self.etc_hosts = os.path.join(self.dir, "etc-hosts")
        self.command_script = os.path.join(self.dir, "sendmail-command")
        os.makedirs(self.queue_dir, mode=0o700)
        for name in ("aliases", "relay-domains", "sendmail.st"):
            open(os.path.join(self.dir, name), "w").close()
        with open(os.path.join(self.dir, "service.switch"), "w") as f:
            f.write("hosts\tfiles\naliases\tfiles\n")
        with open(os.path.join(self.dir, "hosts"), "w") as f:
            f.write("127.0.0.1\tlocalhost localhost.localdomain\n")
        # The namespace's /etc/hosts: the host name for IPv4 and IPv6, or Sendmail
        # still asks DNS for the AAAA record at start.
        short = k_host_name.split(".")[0]
        with open(self.etc_hosts, "w") as f:
            f.write(f"127.0.0.1\tlocalhost\n127.0.0.1\t{k_host_name} {short}\n::1\t{k_host_name} {short}\n")
        self.sasl_dir = os.path.join(self.dir, "sasl2") if sasl_users else None
        if sasl_users:
            self.write_sasl_config(sasl_users)
        self.write_command_script()
        mc_path = os.path.join(self.dir, "sendmail.mc")
        with open(mc_path, "w") as f:
            f.write(self.mc_text(sink_port, milter_spec))
        cf = run(["m4", mc_path])
        with open(self.cf_path, "w") as f:
            f.write(cf.stdout)

    def mc_text(self, sink_port: int, milter_spec: str) -> str:
        d = self.dir
        return textwrap.dedent(f"""\
            divert(-1)
            Private Sendmail of one Floodgate integration test (sendmail_harness.py).
            divert(0)dnl
            include(`{k_cf_m4}')dnl
            VERSIONID(`floodgate-test')dnl
            OSTYPE(`linux')dnl
            define(`QUEUE_DIR', `{self.queue_dir}')dnl
            define(`confPID_FILE', `{self.pid_path}')dnl
            define(`STATUS_FILE', `{d}/sendmail.st')dnl
            define(`ALIAS_FILE', `{d}/aliases')dnl
            define(`confCR_FILE', `-o {d}/relay-domains')dnl
            define(`HELP_FILE', `{d}/helpfile')dnl
            define(`confSERVICE_SWITCH_FILE', `{d}/service.switch')dnl
            define(`confHOSTS_FILE', `{d}/hosts')dnl
            dnl No DNS and no interface probing: loopback only.
            define(`confDONT_PROBE_INTERFACES', `True')dnl
            define(`confBIND_OPTS', `-DNSRCH -DEFNAMES')dnl
            define(`confDOMAIN_NAME', `{k_host_name}')dnl
            FEATURE(`nocanonify')dnl
            FEATURE(`accept_unresolvable_domains')dnl
            FEATURE(`accept_unqualified_senders')dnl
            dnl Deliver at once, and never turn to queueing or refusing because the
            dnl machine is busy (parallel tests).
            define(`confDELIVERY_MODE', `background')dnl
            define(`confQUEUE_LA', `100')dnl
            define(`confREFUSE_LA', `200')dnl
            define(`confTO_CONNECT', `5s')dnl
            define(`confLOG_LEVEL', `14')dnl
            FEATURE(`no_default_msa')dnl
            DAEMON_OPTIONS(`Port={self.port}, Addr=127.0.0.1, Name=MTA')dnl
            define(`SMART_HOST', `[127.0.0.1]')dnl
            define(`RELAY_MAILER_ARGS', `TCP $h {sink_port}')dnl
            EXTRA_MC_LINES
            SASL_MC_LINES
            include(`{self.floodgate_mc(milter_spec)}')dnl
            MAILER(`local')dnl
            MAILER(`smtp')dnl
            """).replace("EXTRA_MC_LINES\n", self.extra_mc).replace("SASL_MC_LINES\n", self.sasl_mc())

    def sasl_mc(self) -> str:
        if not self.sasl_dir:
            return ""
        return ("define(`confAUTH_MECHANISMS', `PLAIN LOGIN')dnl\n"
                "TRUST_AUTH_MECH(`PLAIN LOGIN')dnl\n")

    def write_sasl_config(self, users: dict[str, str]):
        """The plugin directory's copy with Sendmail.conf, and a sasldb of `users`
        (see SUMMARY)."""
        if not os.path.isdir(k_sasl_plugin_dir) or not shutil.which("saslpasswd2"):
            raise RuntimeError(f"SMTP AUTH tests need {k_sasl_plugin_dir} and saslpasswd2 "
                               "(libsasl2-modules, libsasl2-modules-db, sasl2-bin: contrib/setup.sh)")
        shutil.copytree(k_sasl_plugin_dir, self.sasl_dir, symlinks=True)
        sasldb = os.path.join(self.dir, "sasldb2")
        for user, password in users.items():
            # The realm is the host name, as Sendmail asks for it.
            run(["saslpasswd2", "-p", "-c", "-f", sasldb, "-u", k_host_name, user], input=password + "\n")
        os.chmod(sasldb, 0o600)
        with open(os.path.join(self.sasl_dir, "Sendmail.conf"), "w") as f:
            f.write(f"pwcheck_method: auxprop\nauxprop_plugin: sasldb\nsasldb_path: {sasldb}\n"
                    "mech_list: PLAIN LOGIN\n")

    def floodgate_mc(self, milter_spec: str) -> str:
        """contrib/sendmail/floodgate.mc, as shipped but for this test's milter socket
        and release port: the filter, its flags and timeouts, the release daemon."""
        with open(k_floodgate_mc, encoding="utf-8") as f:
            text = f.read()
        for shipped, ours in (("S=inet:8890@127.0.0.1", f"S={milter_spec}"),
                              ("Port=10026,", f"Port={self.release_port},")):
            if shipped not in text:
                raise RuntimeError(f"{k_floodgate_mc} no longer has {shipped!r}: update the harness")
            text = text.replace(shipped, ours)
        path = os.path.join(self.dir, "floodgate.mc")
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        return path

    def argv(self, *args: str, log_path: str | None = None) -> list[str]:
        """A Sendmail command line, run in its own namespaces (see SUMMARY)."""
        sasl = ""
        if self.sasl_dir:
            sasl = (f"mount --bind {self.sasl_dir} {k_sasl_plugin_dir} && "
                    f"{{ [ ! -d /etc/sasl2 ] || mount --bind {self.sasl_dir} /etc/sasl2; }} && ")
        inner = (f"mount --bind {self.etc_hosts} /etc/hosts && {sasl}hostname {k_host_name} "
                 '&& exec "$@"')
        return (["unshare", "--uts", "--mount", "sh", "-c", inner, "sh",
                 sendmail_binary(), "-C", self.cf_path, "-D", log_path or self.cli_log_path, "-d89.8"]
                + list(args))

    def write_command_script(self):
        """sendmail-command: this instance's Sendmail for other programs (floodgatectl's
        quarantine.sendmail_command), with the namespaces, library path and .cf."""
        argv = " ".join(f"'{a}'" for a in self.argv())
        with open(self.command_script, "w") as f:
            f.write("#!/bin/sh\n"
                    f"export LD_LIBRARY_PATH='{self.env()['LD_LIBRARY_PATH']}'\n"
                    f'exec {argv} "$@"\n')
        os.chmod(self.command_script, 0o755)

    def env(self) -> dict[str, str]:
        # libwrap0 comes from the unpacked tree (fetch_sendmail.sh).
        return {**os.environ, "LD_LIBRARY_PATH": os.path.join(k_sendmail_root, "usr", "lib", "x86_64-linux-gnu")}

    def start(self):
        # -bd forks the daemon into the background and returns. Its output goes to
        # a file: the daemon would hold a pipe open, and run() wait for it.
        out_path = os.path.join(self.dir, "sendmail-start.out")
        with open(out_path, "w") as out:
            started = subprocess.run(self.argv("-L", "sm-mta", "-bd", log_path=self.log_path),
                                     env=self.env(), stdin=subprocess.DEVNULL, stdout=out,
                                     stderr=subprocess.STDOUT, timeout=k_start_timeout)
        if started.returncode != 0:
            raise RuntimeError(f"sendmail -bd exited {started.returncode}:\n{tail(out_path)}")
        try:
            wait_for(lambda: port_accepts(self.port) and port_accepts(self.release_port), k_start_timeout,
                     f"sendmail on 127.0.0.1:{self.port} and :{self.release_port}")
        except TimeoutError as e:
            raise RuntimeError(f"{e} (pid file: {self.pid()}, Sendmail processes in its queue directory: "
                               f"{sorted(self.processes()) or 'none'}); "
                               f"sendmail -bd said:\n{tail(out_path)}\nits log:\n{tail(self.log_path, 30)}") from e

    def pid(self) -> int | None:
        try:
            with open(self.pid_path) as f:
                return int(f.readline())
        except (OSError, ValueError):
            return None

    def processes(self) -> set[int]:
        """The daemon (from its pid file) and every Sendmail process working in this
        instance's queue directory: one still retrying a bind has no pid file yet."""
        pids = set()
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    if os.readlink(f"/proc/{entry}/cwd").startswith(self.queue_dir):
                        pids.add(int(entry))
                except OSError:
                    pass
        pid = self.pid()
        return pids | ({pid} if pid else set())

    def stop(self):
        pids = self.processes()
        for pid in pids:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + k_stop_timeout
        while pids and time.monotonic() < deadline:
            pids = {pid for pid in pids if os.path.exists(f"/proc/{pid}")}
            time.sleep(0.05)
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def command(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        """Runs a Sendmail command against this instance (-bp, -qI..., -Q...)."""
        return run(self.argv(*args), env=self.env(), timeout=timeout, check=False)

    def log_text(self) -> str:
        return read_log(self.log_path)

    def submit_cf(self) -> str:
        """The MSP's submit.cf (see SUMMARY), built on first use."""
        msp_dir = os.path.join(self.dir, "msp")
        cf_path = os.path.join(msp_dir, "submit.cf")
        if os.path.exists(cf_path):
            return cf_path
        queue_dir = os.path.join(msp_dir, "clientmqueue")
        os.makedirs(queue_dir)
        nobody = pwd.getpwnam("nobody")
        os.chown(queue_dir, nobody.pw_uid, nobody.pw_gid)
        os.chmod(queue_dir, 0o770)
        mc_path = os.path.join(msp_dir, "submit.mc")
        with open(mc_path, "w") as f:
            f.write(textwrap.dedent(f"""\
                include(`{k_cf_m4}')dnl
                VERSIONID(`floodgate-test-msp')dnl
                define(`confCF_VERSION', `Submit')dnl
                define(`__OSTYPE__', `')dnl
                define(`confTIME_ZONE', `USE_TZ')dnl
                define(`confDONT_INIT_GROUPS', `True')dnl
                define(`confRUN_AS_USER', `{nobody.pw_name}:{grp.getgrgid(nobody.pw_gid).gr_name}')dnl
                define(`MSP_QUEUE_DIR', `{queue_dir}')dnl
                define(`confDOMAIN_NAME', `{k_host_name}')dnl
                define(`confSERVICE_SWITCH_FILE', `{self.dir}/service.switch')dnl
                define(`confHOSTS_FILE', `{self.dir}/hosts')dnl
                define(`confBIND_OPTS', `-DNSRCH -DEFNAMES')dnl
                define(`RELAY_MAILER_ARGS', `TCP $h {self.port}')dnl
                FEATURE(`msp', `[127.0.0.1]')dnl
                """))
        cf = run(["m4", mc_path])
        with open(cf_path, "w") as f:
            f.write(cf.stdout)
        return cf_path

    def submit(self, message: bytes, sender: str) -> str:
        """Submits `message` as a local program does (sendmail -t -i -f SENDER, the
        recipients read from its headers) through the MSP; returns the queue id the
        daemon gave it (from the MSP's SMTP dialogue, -v)."""
        argv = self.argv("-v", "-t", "-i", "-f", sender)
        argv[argv.index(self.cf_path)] = self.submit_cf()
        proc = subprocess.run(argv, input=message, env=self.env(), capture_output=True, timeout=60)
        out = proc.stdout.decode(errors="replace")
        accepted = re.search(r"^\d{3}[ -]\S+ (\w+) Message accepted for delivery", out, re.MULTILINE)
        if proc.returncode != 0 or not accepted:
            raise RuntimeError(f"sendmail -t (MSP) exited {proc.returncode}, no queue id from the daemon:\n"
                               f"{out}{proc.stderr.decode(errors='replace')}")
        return accepted.group(1)

    def queue(self, quarantined: bool = False) -> dict[str, str]:
        """Queue id -> quarantine reason ("" when not quarantined) of the messages in
        Sendmail's queue (-bp), or in its quarantine (-bp -qQ)."""
        listing = self.command("-bp", *(["-qQ"] if quarantined else []))
        if listing.returncode != 0:
            raise RuntimeError(f"sendmail -bp exited {listing.returncode}: {listing.stdout}{listing.stderr}")
        queue: dict[str, str] = {}
        current = None
        for line in listing.stdout.splitlines():
            # "6AS2HVJb009446*   3 Sat Nov 28 02:17 <a@x.example>" (* locked, X too big,
            # - quarantined)
            entry = re.match(r"([A-Za-z0-9]+)[*X-]?\s", line)
            if entry:
                current = entry.group(1)
                queue[current] = ""
            elif current and line.strip().startswith("QUARANTINE: "):
                queue[current] = line.strip().removeprefix("QUARANTINE: ")
        return queue

    def delivered_queue_ids(self) -> set[str]:
        """Queue ids of the messages Sendmail logged as sent and done with (by the
        daemon, or by a queue run a command started)."""
        sent, done = set(), set()
        for line in (self.log_text() + "\n" + read_log(self.cli_log_path)).splitlines():
            queue_id, _, rest = line.partition(": ")
            if "stat=Sent" in rest:
                sent.add(queue_id)
            elif rest.startswith("done;"):
                done.add(queue_id)
        return sent & done


class SendmailWorld:
    """Redis, smtp-sink, one floodgate and a Sendmail calling it (see SUMMARY)."""

    def __init__(self, quarantine_mode: str = "spool", config: str | None = None, extra_mc: str = "",
                 relay_refused: bool = False, sasl_users: dict[str, str] | None = None):
        """`extra_mc`: .mc lines put before contrib/sendmail/floodgate.mc's.
        `relay_refused`: Sendmail relays to a port nothing listens on instead of the
        sink, so every message it accepts stays in its queue, deferred.
        `sasl_users`: user -> password that Sendmail's SMTP AUTH accepts."""
        self.dir = tempfile.mkdtemp(prefix="floodgate-sendmail-")
        os.chmod(self.dir, 0o755)  # smtp-sink runs as postfix and must traverse it
        self.daemons: list[Daemon] = []
        self.sendmail: SendmailInstance | None = None
        guard_world(self)
        try:
            self.redis = Redis(self.dir)
            self.daemons.append(self.redis)
            self.spool_dir = os.path.join(self.dir, "spool")
            # Held until Sendmail binds them, so that the sink's, floodgate's (or a
            # parallel test's) free_port() cannot pick them meanwhile.
            (smtp_port, smtp_hold), (release_port, release_hold) = reserved_port(), reserved_port()
            self.port_holds = [smtp_hold, release_hold]
            self.config_path = os.path.join(self.dir, "floodgate.yaml")
            # The instance's command script (SendmailInstance.write_command_script).
            command_script = os.path.join(self.dir, "sendmail", "sendmail-command")
            settings = {
                "mode": quarantine_mode,
                "mta": "sendmail",
                "sendmail_command": f"[{yaml_string(command_script)}]",
                "spool_directory": yaml_string(self.spool_dir),
                "release_target": f"127.0.0.1:{release_port}",
                "postfix_config_directory": '""',
            }
            with open(config or floodgate_config(), encoding="utf-8") as f:
                text = with_redis_url(with_quarantine_section(f.read(), settings), self.redis.url)
            text = text.replace("    mail_to: [postmaster@localhost]\n", "    mail_to: []\n")
            text = with_metrics_listen(text, "off")
            with open(self.config_path, "w", encoding="utf-8") as f:
                f.write(text)
            self.sink = Sink(self.dir)
            self.daemons.append(self.sink)
            self.floodgate = Floodgate(self.dir, "floodgate0", floodgate_binary(), self.config_path,
                                       self.redis.url)
            self.daemons.append(self.floodgate)
            self.floodgate.wait_ready()
            relay_port = k_refusing_port if relay_refused else self.sink.port
            self.sendmail = SendmailInstance(self.dir, smtp_port, release_port, relay_port,
                                             self.floodgate.socket_spec, extra_mc, sasl_users)
            self.release_port_holds()
            self.sendmail.start()
        except BaseException:
            sys.stderr.write(self.describe())
            self.close()
            raise

    def release_port_holds(self):
        for hold in getattr(self, "port_holds", []):
            hold.close()
        self.port_holds = []

    def close(self):
        forget_world(self)
        self.release_port_holds()
        if self.sendmail:
            self.sendmail.stop()
            self.sendmail = None
        stop_daemons(self.daemons)
        self.daemons = []
        remove_world_dir(self.dir)

    def describe(self, lines: int = 60) -> str:
        parts = [f"\n===== harness dir {self.dir}"]
        if getattr(self, "floodgate", None):
            parts.append(f"===== floodgate0 alive={self.floodgate.alive()} log tail:\n"
                         f"{tail(self.floodgate.log_path, lines)}")
        if self.sendmail:
            parts.append(f"===== sendmail log tail:\n{tail(self.sendmail.log_path, lines)}")
        if getattr(self, "sink", None):
            parts.append(f"===== sink: {self.sink.count()} messages")
        return "\n".join(parts) + "\n"

    def send(self, sender: str, rcpts: list[str], message: bytes,
             auth: tuple[str, str] | None = None) -> tuple[int, str]:
        """One SMTP transaction from 127.0.0.1, after SMTP AUTH as `auth` (user,
        password) if given; returns the reply to the message's end (250 and
        Sendmail's queue id when accepted, or the refusal)."""
        with smtplib.SMTP("127.0.0.1", self.sendmail.port, "client.example", timeout=60) as s:
            s.ehlo()
            if auth:
                s.login(*auth)
            s.mail(sender)
            for rcpt in rcpts:
                s.rcpt(rcpt)
            code, text = s.data(message)
            return code, text.decode(errors="replace")

    def verdict_for(self, queue_id: str) -> str | None:
        for line in self.floodgate.verdict_lines():
            if f"qid={queue_id} " in line:
                return line
        return None

    def wait_delivered(self, count: int, timeout: float = 60):
        """Until Sendmail has finished with `count` messages it delivered. Its log has
        a "stat=Sent" line per batch of recipients (several per message, and the relay
        mailer sends 100 recipients per transaction) and one "done;" line per message
        once every delivery attempt is over; the sink's files are complete by then
        (smtp-sink writes them while the message is being received)."""
        wait_for(lambda: len(self.sendmail.delivered_queue_ids()) >= count, timeout,
                 f"{count} messages delivered by sendmail")

    def floodgatectl(self, *args: str) -> subprocess.CompletedProcess:
        return floodgatectl(self.config_path, *args)

    def quarantine_list(self) -> list[dict]:
        return quarantine_list(self.config_path)


class SendmailTestCase(unittest.TestCase):
    """Builds worlds that are closed, and described on failure, whatever happens."""

    def make_world(self, **kw) -> SendmailWorld:
        world = SendmailWorld(**kw)
        self.addCleanup(world.close)
        self.addCleanup(self._describe_on_failure, world)
        return world

    def _describe_on_failure(self, world: SendmailWorld):
        outcome = getattr(self, "_outcome", None)
        result = getattr(outcome, "result", None)
        if result is not None and (result.errors or result.failures):
            sys.stderr.write(world.describe())
