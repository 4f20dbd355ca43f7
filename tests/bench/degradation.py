#!/usr/bin/python3
"""What a failing Redis does to mail: latency, rate and threads with Redis healthy,
paused and killed.

SUMMARY
    Starts the private world of the integration tests (tests/integration/postfix/
    harness.py: redis-server, smtp-sink, one floodgate daemon on bench.yaml, a private
    Postfix whose smtpd calls it) and keeps C parallel sessions (default 20) sending
    outbound mail through three phases of equal length (default 20 s each):

      healthy   Redis answers;
      paused    `CLIENT PAUSE <ms> ALL` (default 60000): Redis accepts connections
                and reads commands but answers none, the worst case for a client;
      killed    redis-server SIGKILLed: connections refused.

    The load comes from milter_load (tests/bench/milter_load.cpp, used when built:
    build-bench/ or build/tests/bench/milter_load) on floodgate's own socket, the
    SpamAssassin corpus if fetched, or with --driver smtp from Python smtplib threads
    through Postfix (one 4 KB, 3-recipient message per SMTP session, from 127.0.0.1).

    Per phase it reports messages/s, per-message latency p50/p99/max (milter_load:
    MAIL to the end-of-message reply; smtp: from connect to the reply after DATA, so
    every milter step Postfix waits for is inside), the verdicts or replies (with the
    shipped on_failure: local every message must still be accepted), floodgate's own
    decision time (the ms= of its verdict lines) and which counter store answered,
    the decisions slower than half redis.command_timeout and when in the phase they
    started (from the log's timestamps), floodgate's peak thread count and RSS
    (/proc/PID/status, sampled every 20 ms), and the slowest message against the
    world's milter_command_timeout and milter_content_timeout and Postfix's defaults
    (30 s, 300 s). It exits 1 if a message was not accepted, a load error occurred,
    a message reached milter_command_timeout, or floodgate died.

    What it shows: when Redis stops answering, the messages in flight wait for
    redis.command_timeout (a message that also waited for a pooled connection, up to
    the same timeout, twice that), then the circuit breaker opens and messages do not
    wait on Redis; one probe per retry_interval (5 s shipped) waits again.

    Run manually as root (not part of ctest); see README.md.

LIMITS
    Everything shares two cores: compare phases rather than read absolute figures.
    The smtp driver's client is Python (one thread per session), whose scheduling is
    in its latencies; one message per SMTP session, as smtp-source sends them. With
    milter_load, phase offsets include its start-up (reading the corpus, ~0.3 s).
"""

import argparse
import datetime
import json
import os
import random
import signal
import smtplib
import subprocess
import sys
import threading
import time

k_here = os.path.dirname(os.path.abspath(__file__))
k_root = os.path.abspath(os.path.join(k_here, "..", ".."))
sys.path.insert(0, os.path.join(k_root, "tests", "integration", "postfix"))
os.environ.setdefault("FG_DEADLINE", "1800")

import harness  # noqa: E402

# Postfix's own defaults, which a production main.cf usually keeps.
k_postfix_default_command_timeout = 30.0
k_postfix_default_content_timeout = 300.0


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sessions", "-s", type=int, default=20, help="parallel SMTP sessions")
    p.add_argument("--phase-seconds", type=float, default=20.0, help="length of each phase")
    p.add_argument("--pause-ms", type=int, default=60000, help="CLIENT PAUSE length; must outlast the phase")
    p.add_argument("--recipients", "-r", type=int, default=3)
    p.add_argument("--length", "-l", type=int, default=4096, help="body bytes per message")
    p.add_argument("--transport", choices=("inet", "unix"), default="inet")
    p.add_argument("--binary", default=os.environ.get(
        "FLOODGATE_BINARY", os.path.join(k_root, "build", "milter", "floodgate")))
    p.add_argument("--config", default=os.environ.get(
        "FLOODGATE_CONFIG", os.path.join(k_here, "bench.yaml")))
    p.add_argument("--driver", choices=("auto", "milter_load", "smtp"), default="auto",
                   help="milter_load on floodgate's socket (auto: when built), or smtplib through Postfix")
    p.add_argument("--load-binary", default=default_load_binary(),
                   help="milter_load (build-bench/ or build/tests/bench/milter_load)")
    p.add_argument("--corpus", default=default_corpus(),
                   help="milter_load's messages (/tmp/sa/package/data if fetched, else tests/unit/content/data)")
    args = p.parse_args()
    if args.pause_ms / 1000.0 < args.phase_seconds + 2:
        p.error("--pause-ms must outlast --phase-seconds (CLIENT UNPAUSE is itself paused)")
    return args


def duration_seconds(text: str) -> float:
    text = text.strip().strip('"')
    for suffix, scale in (("ms", 0.001), ("s", 1.0), ("m", 60.0), ("h", 3600.0)):
        if text.endswith(suffix):
            return float(text[:-len(suffix)]) * scale
    return float(text)


def redis_setting(config_path: str, key: str) -> str:
    """`key:` of the top-level redis: section (the config is the shipped layout; no
    YAML library needed for one scalar)."""
    in_redis = False
    with open(config_path, encoding="utf-8") as f:
        for line in f:
            if line.startswith("redis:"):
                in_redis = True
                continue
            if in_redis and line[:1] not in (" ", "\t", "\n", "#", ""):
                break
            stripped = line.strip()
            if in_redis and stripped.startswith(key + ":"):
                return stripped.split(":", 1)[1].split("#", 1)[0].strip()
    raise RuntimeError(f"{config_path}: no redis.{key}")


def percentile(ordered: list[float], fraction: float) -> float:
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else float("nan")


class Load:
    """C threads, each sending one message per SMTP session until stopped. Every
    result is (phase it ended in, start offset from that phase's start, latency
    seconds, reply code)."""

    def __init__(self, port: int, sessions: int, recipients: int, length: int):
        self.port = port
        self.recipients = [f"rcpt{i}@bench-dest.example" for i in range(recipients)]
        rng = random.Random(7)
        # Distinct bodies, so content fingerprints vary as real mail's do; made
        # before the clock starts.
        self.bodies = []
        for n in range(64):
            text = ""
            while len(text) < length:
                text += harness.distinct_text(rng, 40)
            self.bodies.append(harness.make_message("sender@bench.example", self.recipients,
                                                    f"degradation {n}", text[:length]))
        self.lock = threading.Lock()
        self.phase = "warm-up"
        self.phase_start = time.monotonic()
        self.results: list[tuple[str, float, float, int]] = []
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(sessions)]

    def start(self):
        for t in self.threads:
            t.start()

    def set_phase(self, name: str):
        with self.lock:
            self.phase = name
            self.phase_start = time.monotonic()

    def _run(self, index: int):
        n = index
        while not self.stop.is_set():
            n += len(self.threads)
            t0 = time.monotonic()
            code = 0
            try:
                s = smtplib.SMTP("127.0.0.1", self.port, local_hostname="bench.client.example", timeout=600)
                try:
                    s.ehlo()
                    code, _ = s.mail("sender@bench.example")
                    if code == 250:
                        for r in self.recipients:
                            code, _ = s.rcpt(r)
                            if code not in (250, 251):
                                break
                    if code in (250, 251):
                        code, _ = s.data(self.bodies[n % len(self.bodies)])
                finally:
                    try:
                        s.quit()
                    except smtplib.SMTPException:
                        s.close()
            except smtplib.SMTPResponseException as e:
                code = e.smtp_code
            except (OSError, smtplib.SMTPException):
                code = -1
            latency = time.monotonic() - t0
            # A message belongs to the phase in which it ended: one in flight when
            # Redis was paused is the first to wait on it.
            with self.lock:
                self.results.append((self.phase, t0 - self.phase_start, latency, code))

    def finish(self):
        self.stop.set()
        for t in self.threads:
            t.join(timeout=700)


class ThreadSampler:
    """Peak of floodgate's Threads (and VmRSS) per phase, sampled every 20 ms."""

    def __init__(self, pid: int, load: Load):
        self.pid = pid
        self.load = load
        self.peak_threads: dict[str, int] = {}
        self.peak_rss_kb: dict[str, int] = {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self.stop.wait(0.02):
            try:
                with open(f"/proc/{self.pid}/status") as f:
                    status = dict(line.split(":", 1) for line in f if ":" in line)
            except OSError:
                continue
            phase = self.load.phase
            threads = int(status["Threads"])
            rss = int(status["VmRSS"].split()[0])
            self.peak_threads[phase] = max(self.peak_threads.get(phase, 0), threads)
            self.peak_rss_kb[phase] = max(self.peak_rss_kb.get(phase, 0), rss)


def decision_ms(log_slice: str) -> list[float]:
    values = []
    for line in log_slice.splitlines():
        for word in line.split():
            if word.startswith("ms="):
                values.append(float(word[3:]))
    return sorted(values)


def counters_used(log_slice: str) -> dict[str, int]:
    """How many verdicts each counter store answered (counters=redis, local-fallback)."""
    used: dict[str, int] = {}
    for line in log_slice.splitlines():
        for word in line.split():
            if word.startswith("counters=") and "ms=" in line:
                used[word[9:]] = used.get(word[9:], 0) + 1
    return used


class PhaseLabel:
    """The phase the ThreadSampler charges when milter_load drives the load."""
    phase = "warm-up"


def default_load_binary() -> str:
    for build in ("build-bench", "build"):
        path = os.path.join(k_root, build, "tests", "bench", "milter_load")
        if os.access(path, os.X_OK):
            return path
    return ""


def default_corpus() -> str:
    sa = "/tmp/sa/package/data"
    return sa if os.path.isdir(sa) else os.path.join(k_root, "tests", "unit", "content", "data")


def slow_decisions(log_slice: str, phase_start_wall: float, threshold_ms: float) -> list[tuple[float, float]]:
    """(seconds into the phase, ms) of verdicts whose decision took over threshold_ms,
    from the timestamps of floodgate's log lines (local time, millisecond precision)."""
    found = []
    for line in log_slice.splitlines():
        ms = next((float(w[3:]) for w in line.split() if w.startswith("ms=")), None)
        if ms is None or ms <= threshold_ms:
            continue
        try:
            stamp = datetime.datetime.strptime(line.split()[0], "%Y-%m-%dT%H:%M:%S.%f").timestamp()
        except ValueError:
            continue
        # The line is written when the decision ends; it started ms earlier.
        found.append((stamp - ms / 1000.0 - phase_start_wall, ms))
    return sorted(found)


def main():
    args = parse_args()
    if not os.access(args.binary, os.X_OK):
        sys.exit(f"binary not found: {args.binary} (build the floodgate target)")
    driver = args.driver
    if driver == "auto":
        driver = "milter_load" if args.load_binary else "smtp"
    if driver == "milter_load" and not os.access(args.load_binary or "", os.X_OK):
        sys.exit(f"milter_load not found: {args.load_binary!r} (build the milter_load target)")
    command_timeout = duration_seconds(redis_setting(args.config, "command_timeout"))
    connect_timeout = duration_seconds(redis_setting(args.config, "connect_timeout"))
    retry_interval = duration_seconds(redis_setting(args.config, "retry_interval"))
    on_failure = redis_setting(args.config, "on_failure")
    world = harness.PostfixWorld(floodgates=1, config=args.config, binary=args.binary,
                                 milter_on_local=False, milter_transport=args.transport)
    try:
        fg = world.floodgates[0]
        postconf = lambda name: harness.run(["/usr/sbin/postconf", "-c", world.postfix.config_dir,
                                             "-h", name]).stdout.strip()
        world_command_timeout = duration_seconds(postconf("milter_command_timeout"))
        world_content_timeout = duration_seconds(postconf("milter_content_timeout"))
        if driver == "smtp":
            workload = (f"smtplib through Postfix: {args.sessions} sessions, one message each "
                        f"({args.recipients} rcpts x {args.length} B), latency from connect/MAIL to "
                        f"the reply after DATA")
        else:
            workload = (f"{args.load_binary} on floodgate's socket: {args.sessions} sessions of 10 "
                        f"messages, corpus {args.corpus}, ~5 KB, {args.recipients} rcpts, latency from "
                        f"MAIL to the end-of-message reply")
        print(f"floodgate {args.binary}\nconfig    {args.config}: redis.command_timeout "
              f"{command_timeout * 1000:.0f} ms, connect_timeout {connect_timeout * 1000:.0f} ms, "
              f"retry_interval {retry_interval:.0f} s, on_failure {on_failure}\n"
              f"workload  {workload}; {args.phase_seconds:.0f} s per phase, milter over {args.transport}\n"
              f"postfix   milter_command_timeout {world_command_timeout:.0f} s, "
              f"milter_content_timeout {world_content_timeout:.0f} s, in_flow_delay {postconf('in_flow_delay')}\n",
              flush=True)

        label = PhaseLabel()
        load = None
        if driver == "smtp":
            load = Load(world.listener_port(0), args.sessions, args.recipients, args.length)
            label = load
        sampler = ThreadSampler(fg.pid, label)
        sampler.thread.start()
        log_offsets: dict[str, tuple[int, int]] = {}
        phase_start_wall: dict[str, float] = {}
        load_reports: dict[str, dict] = {}

        def run_milter_load(seconds: float) -> dict:
            proc = subprocess.run([args.load_binary, "--socket", fg.socket_spec, "--corpus", args.corpus,
                                   "--concurrency", str(args.sessions), "--recipients", str(args.recipients),
                                   "--duration", str(seconds), "--messages", "100000000",
                                   "--timeout", "120", "--json"],
                                  capture_output=True, text=True, timeout=seconds + 300)
            try:
                return json.loads(proc.stdout)
            except ValueError:
                raise RuntimeError(f"milter_load exited {proc.returncode}: {proc.stdout[-2000:]}"
                                   f"{proc.stderr[-2000:]}") from None

        if load:
            load.start()
            time.sleep(3)  # warm-up: milter connections, Redis scripts loaded
        else:
            run_milter_load(3)

        def phase(name: str, before=None):
            start = len(fg.log_text())
            if before:
                before()
            phase_start_wall[name] = time.time()
            if load:
                load.set_phase(name)
                time.sleep(args.phase_seconds)
            else:
                label.phase = name
                load_reports[name] = run_milter_load(args.phase_seconds)
            log_offsets[name] = (start, len(fg.log_text()))
            # The sink would otherwise hold tens of thousands of files by the end.
            # Deleting them costs disk and CPU: messages sent meanwhile belong to no
            # phase.
            label_between = "between"
            if load:
                load.set_phase(label_between)
            else:
                label.phase = label_between
            for path in world.sink.files():
                os.unlink(path)

        def pause_redis():
            reply = world.redis.command("CLIENT", "PAUSE", str(args.pause_ms), "ALL")
            if not reply.startswith(b"+OK"):
                raise RuntimeError(f"CLIENT PAUSE: {reply!r}")

        def kill_redis():
            world.redis.proc.send_signal(signal.SIGKILL)
            world.redis.proc.wait(timeout=10)

        phase("healthy")
        phase("paused", pause_redis)
        phase("killed", kill_redis)
        if load:
            load.set_phase("done")
            load.finish()
        sampler.stop.set()
        sampler.thread.join()

        log_text = fg.log_text()
        failed = False
        print(f"{'phase':>8} {'msgs':>6} {'msg/s':>7} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} "
              f"{'>cmd_timeout':>12} {'decision p50/p99/max ms':>24} {'threads':>7} {'RSS MB':>6}  replies")
        details = []
        worst = 0.0
        for name in ("healthy", "paused", "killed"):
            start, end = log_offsets[name]
            decisions = decision_ms(log_text[start:end])
            if load:
                rows = [r for r in load.results if r[0] == name]
                latencies = sorted(r[2] for r in rows)
                replies: dict = {}
                for r in rows:
                    replies[r[3]] = replies.get(r[3], 0) + 1
                messages, rate = len(rows), len(rows) / args.phase_seconds
                p50, p99, top = (percentile(latencies, 0.5), percentile(latencies, 0.99), latencies[-1])
                slow_count = sum(1 for l in latencies if l > command_timeout)
                ok = not (set(replies) - {250}) and rows
            else:
                report = load_reports[name]
                messages, rate = report["messages"], report["messages_per_second"]
                lat = report["latency_us"]
                p50, p99, top = lat["p50"] / 1e6, lat["p99"] / 1e6, lat["max"] / 1e6
                slow_count = "-"  # milter_load gives percentiles, not every latency
                replies = {k: v for k, v in report["verdicts"].items() if v}
                replies["errors"] = report["errors"]["total"]
                ok = report["errors"]["total"] == 0 and messages > 0 and \
                    not (set(replies) - {"accept", "errors"})
            worst = max(worst, top)
            print(f"{name:>8} {messages:>6} {rate:>7.1f} {p50 * 1000:>8.1f} {p99 * 1000:>8.1f} "
                  f"{top * 1000:>8.1f} {slow_count:>12} "
                  f"{percentile(decisions, 0.5):>8.2f}/{percentile(decisions, 0.99):.2f}/"
                  f"{decisions[-1] if decisions else float('nan'):.1f} "
                  f"{sampler.peak_threads.get(name, 0):>7} {sampler.peak_rss_kb.get(name, 0) / 1024:>6.1f}  "
                  f"{dict(sorted(replies.items(), key=str))}")
            details.append(f"{name}: verdicts by counter store {counters_used(log_text[start:end])}")
            slow = slow_decisions(log_text[start:end], phase_start_wall[name], command_timeout * 1000 / 2)
            if slow:
                # The burst when Redis stops answering, then (the circuit open) only the
                # probes, one per retry_interval: listed one by one.
                burst_end = slow[0][0] + 1.0
                burst = [ms for s, ms in slow if s < burst_end]
                later = [(s, ms) for s, ms in slow if s >= burst_end]
                details.append(f"{name}: {len(slow)} decisions over {command_timeout * 500:.0f} ms "
                               f"(half redis.command_timeout): {len(burst)} starting within 1 s of "
                               f"{slow[0][0]:.2f} s into the phase (max {max(burst):.0f} ms)"
                               + ("; then at " + ", ".join(f"{s:.2f} s ({ms:.0f} ms)" for s, ms in later[:20])
                                  + (" ..." if len(later) > 20 else "") if later else "; none later"))
            if load:
                client_slow = sorted((r[1], r[2]) for r in rows if r[2] > command_timeout)
                if client_slow:
                    details.append(f"{name}: {len(client_slow)} messages over {command_timeout * 1000:.0f} ms "
                                   "at the client, started at (s into the phase) "
                                   + ", ".join(f"{s:.2f} ({l * 1000:.0f} ms)" for s, l in client_slow[:30])
                                   + (" ..." if len(client_slow) > 30 else ""))
            if not ok or top >= min(world_command_timeout, k_postfix_default_command_timeout):
                failed = True
        print()
        for line in details:
            print(line)
        print(f"\nslowest message {worst * 1000:.0f} ms ({worst / command_timeout:.1f} x "
              f"redis.command_timeout): Postfix milter_command_timeout "
              f"{world_command_timeout:.0f} s (default {k_postfix_default_command_timeout:.0f} s), "
              f"milter_content_timeout {world_content_timeout:.0f} s (default "
              f"{k_postfix_default_content_timeout:.0f} s): "
              + ("none exceeded" if worst < min(world_command_timeout, k_postfix_default_command_timeout)
                 else "EXCEEDED"))
        # State changes (one line each, not one per message): counter store, freezes,
        # containment's activity store.
        # A verdict line has an "ms=" word; "retry_in_ms=" of a state change must not
        # look like one (it hid every event=degraded line).
        warnings = [l for l in log_text.splitlines()
                    if not any(w.startswith("ms=") for w in l.split())
                    and ("counter_store=" in l or " warn" in l or "again" in l)][:12]
        print("floodgate's state-change log lines:\n  " + "\n  ".join(warnings))
        print(f"floodgate alive {fg.alive()}")
        if failed or not fg.alive():
            sys.stderr.write(world.describe())
            sys.exit(1)
    finally:
        world.close()


if __name__ == "__main__":
    main()
