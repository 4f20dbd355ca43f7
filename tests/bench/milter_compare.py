#!/usr/bin/python3
"""Milter-direct comparison: the same corpus and concurrency levels against several
filters, in one run, with milter_load playing Postfix.

SUMMARY
    One private redis-server shared by every target. Targets: the no-op libmilter
    filter (tests/bench/noop_milter: the protocol floor), floodgate with
    tests/bench/bench.yaml (the shipped policy with thresholds raised, so every rule
    is evaluated and every counter bumped, but nothing is quarantined), and rspamd in
    milter mode with only its Redis-backed ratelimit module (tests/bench/peers/rspamd.py;
    skipped with a message when rspamd is not installed, or with --no-rspamd).
    For each transport, concurrency level and target, in that nesting (so targets
    alternate under the same background load), milter_load sends the messages and
    this script measures the filter from outside:
      - msg/s and latency p50/p90/p99/max from MAIL to the end-of-message reply
        (milter_load's own figures);
      - CPU ms per message: utime+stime deltas (plus cutime+cstime, the reaped
        children) over every process of the target: its main pid and all live
        descendants, from /proc/PID/stat;
      - peak RSS: VmHWM summed over the target's processes, reset through
        /proc/PID/clear_refs before each level; peak threads: the largest sum of
        `Threads:` over its processes, sampled every 50 ms;
      - Redis calls per message: the `calls=` of every command in INFO
        commandstats (INFO itself excluded), after minus before, over messages;
        Redis 7 counts there the commands run inside Lua scripts too, so the
        EVAL/EVALSHA/FCALL calls per message are given apart ("scripts"), and
        every command's count is in the JSON. All targets share the Redis and stay
        up during the whole run: an idle floodgate's background calls (freeze
        cache, containment worker: a few per second) land in the other targets'
        figures.
    Prints a table and a JSON summary (also written to --json-out).

SECURITY
    Run as root (rspamd drops to _rspamd; floodgate runs as the caller otherwise).
    Everything listens on 127.0.0.1 or sockets in a private temporary directory.

DIAGNOSTICS
    Exits 1 if any target had errors (milter_load's connection, protocol or
    unexpected-reply errors, or a target that died), 2 on usage errors. The
    target's log tail is printed when it dies.

LIMITS
    Linux only (/proc). The figures share the machine's cores with the load
    generator and Redis; compare targets within one run, not across runs.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

k_here = os.path.dirname(os.path.abspath(__file__))
k_root = os.path.dirname(os.path.dirname(k_here))
sys.path.insert(0, os.path.join(k_root, "tests", "integration", "postfix"))
sys.path.insert(0, k_here)

import harness  # noqa: E402  (config helpers: quarantine, redis url, metrics)
import processes  # noqa: E402  (Redis, daemons started and stopped with deadlines)

k_clock_ticks = os.sysconf("SC_CLK_TCK")


def default_corpus() -> str:
    """The SpamAssassin corpus where tests/unit/content/fetch_corpus.sh puts it
    (contrib's tests fetch it to /tmp/sa), else the small sample set in the tree."""
    for candidate in (os.environ.get("FLOODGATE_BENCH_CORPUS", ""), "/tmp/sa/package/data"):
        if candidate and os.path.isdir(candidate):
            return candidate
    return os.path.join(k_root, "tests", "unit", "content", "data")


def parse_args(argv=None):
    build = os.path.join(k_root, "build")
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--load-binary", default=os.path.join(build, "tests", "bench", "milter_load"))
    p.add_argument("--binary", default=os.path.join(build, "milter", "floodgate"))
    p.add_argument("--noop-binary", default=os.path.join(build, "tests", "bench", "noop_milter"))
    p.add_argument("--config", default=os.path.join(k_here, "bench.yaml"))
    p.add_argument("--corpus", default=default_corpus())
    p.add_argument("--concurrency", default="1,8,32,100",
                   help="comma-separated levels (default 1,8,32,100)")
    p.add_argument("--messages", type=int, default=3000, help="messages per target and level (3000)")
    p.add_argument("--max-seconds", type=float, default=30.0,
                   help="cap per target and level; msg/s counts what was sent in that time (30)")
    p.add_argument("--warmup", type=int, default=200, help="messages per target before measuring (200)")
    p.add_argument("--messages-per-session", type=int, default=10)
    p.add_argument("--size", type=int, default=5120)
    p.add_argument("--recipients", type=int, default=3)
    p.add_argument("--transport", choices=("inet", "unix"), default="inet")
    p.add_argument("--all-transports", action="store_true", help="inet, then unix")
    p.add_argument("--nodelay", action="store_true", help="milter_load sets TCP_NODELAY (Postfix does not)")
    p.add_argument("--rate", type=float, default=0,
                   help="milter_load --rate: messages/s over all sessions (0: as fast as answered, which "
                        "saturates the machine; a rate below that measures latency without queueing)")
    p.add_argument("--no-rspamd", action="store_true", help="leave rspamd out")
    p.add_argument("--targets", default="noop,floodgate,rspamd",
                   help="comma-separated subset of noop,floodgate,rspamd")
    p.add_argument("--json-out", help="also write the JSON summary to this file")
    args = p.parse_args(argv)
    try:
        args.levels = [int(x) for x in args.concurrency.split(",") if x.strip()]
    except ValueError:
        p.error(f"--concurrency: not a list of numbers: {args.concurrency}")
    args.transports = ["inet", "unix"] if args.all_transports else [args.transport]
    args.target_names = [t for t in args.targets.split(",") if t]
    for t in args.target_names:
        if t not in ("noop", "floodgate", "rspamd"):
            p.error(f"--targets: unknown target {t}")
    if args.no_rspamd and "rspamd" in args.target_names:
        args.target_names.remove("rspamd")
    return args


# ------------------------------------------------------------------ /proc accounting


def process_tree(root: int) -> list[int]:
    """root and every live descendant (rspamd's workers, anything a filter forks)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        if os.path.exists(f"/proc/{pid}"):
            out.append(pid)
            todo.extend(children.get(pid, []))
    return out


def cpu_ticks(pids: list[int]) -> int:
    """utime+stime+cutime+cstime summed: the processes' own CPU and that of their
    children already reaped (live children are in pids themselves)."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # After the ")" fields[0] is stat field 3 (state): utime..cstime are 14..17.
        total += sum(int(x) for x in fields[11:15])
    return total


def status_values(pid: int, keys: tuple[str, ...]) -> dict[str, int]:
    out = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                k, _, v = line.partition(":")
                if k in keys:
                    out[k] = int(v.split()[0])
    except OSError:
        pass
    return out


def reset_peak_rss(pids: list[int]):
    for pid in pids:
        try:
            with open(f"/proc/{pid}/clear_refs", "w") as f:
                f.write("5")  # resets VmHWM to the current RSS (Linux 4.0+)
        except OSError:
            pass


class ThreadSampler:
    """Peak of the summed `Threads:` of a target's processes, every 50 ms."""

    def __init__(self, root: int):
        self.root = root
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self):
        total = sum(status_values(pid, ("Threads",)).get("Threads", 0) for pid in process_tree(self.root))
        self.peak = max(self.peak, total)

    def _run(self):
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(0.05)

    def __enter__(self):
        self._sample()
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self._sample()


# ------------------------------------------------------------------ Redis


k_script_commands = ("eval", "evalsha", "eval_ro", "evalsha_ro", "fcall", "fcall_ro")


def redis_info(port: int, section: str) -> str:
    """The text of INFO <section>."""
    import socket
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(f"*2\r\n$4\r\nINFO\r\n${len(section)}\r\n{section}\r\n".encode())
        data = b""
        while b"\r\n" not in data:
            chunk = s.recv(65536)
            if not chunk:
                raise RuntimeError("redis closed the connection during INFO")
            data += chunk
        header, _, rest = data.partition(b"\r\n")
        length = int(header[1:])
        while len(rest) < length:
            chunk = s.recv(65536)
            if not chunk:
                break
            rest += chunk
    return rest[:length].decode()


def redis_cpu_seconds(port: int) -> float:
    """used_cpu_sys + used_cpu_user of the server (INFO cpu): main thread and
    its I/O threads, since it started."""
    values = dict(line.split(":", 1) for line in redis_info(port, "cpu").splitlines() if ":" in line)
    return float(values["used_cpu_sys"]) + float(values["used_cpu_user"])


def redis_commandstats(port: int) -> dict[str, int]:
    """Calls per command since the server started (INFO commandstats), INFO's own
    left out so that measuring does not count itself. Redis 7 also counts here the
    commands a Lua script runs (redis.call), beside the EVALSHA that ran it."""
    out = {}
    for line in redis_info(port, "commandstats").splitlines():
        # cmdstat_evalsha:calls=3000,usec=...
        if not line.startswith("cmdstat_"):
            continue
        name, _, stats = line[len("cmdstat_"):].partition(":")
        if name.lower() == "info":
            continue
        for item in stats.split(","):
            if item.startswith("calls="):
                out[name.lower()] = int(item[len("calls="):])
    return out


def redis_command_calls(port: int) -> int:
    return sum(redis_commandstats(port).values())


# ------------------------------------------------------------------ targets


class Target:
    """One filter under test: name, socket, root pid, alive(), stop(), log tail."""

    def __init__(self, name: str, spec: str, root_pid: int, stopper, alive, describe):
        self.name, self.spec, self.root_pid = name, spec, root_pid
        self.stop, self.alive, self.describe = stopper, alive, describe


def floodgate_config(workdir: str, config: str, redis_url: str) -> str:
    """bench.yaml with this run's spool, Redis and no metrics port (the shipped
    127.0.0.1:9890 may be taken by another instance)."""
    settings = {"mode": "spool", "spool_directory": harness.yaml_string(os.path.join(workdir, "spool"))}
    with open(config, encoding="utf-8") as f:
        text = harness.with_redis_url(harness.with_quarantine_section(f.read(), settings), redis_url)
    text = harness.with_metrics_listen(text, "off")
    text = text.replace("    mail_to: [postmaster@localhost]\n", "    mail_to: []\n")
    path = os.path.join(workdir, "floodgate.yaml")
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return path


def start_daemon(name: str, binary: str, config: str, redis_url: str | None, workdir: str,
                 transport: str) -> Target:
    daemon = processes.Floodgate(workdir, name, binary, config, redis_url, transport)
    try:
        daemon.wait_ready()
    except Exception:
        daemon.stop()
        raise
    return Target(name, daemon.socket_spec, daemon.pid, daemon.stop, daemon.alive,
                  lambda: processes.tail(daemon.log_path))


def start_rspamd(workdir: str, redis_url: str, transport: str) -> Target:
    from peers.rspamd import Rspamd
    home = os.path.join(workdir, f"rspamd-{transport}")  # a fresh instance per transport
    os.makedirs(home, exist_ok=True)
    rspamd = Rspamd(home, redis_url, transport)
    rspamd.start()
    return Target("rspamd", rspamd.milter_spec, rspamd.proc.pid, rspamd.stop, rspamd.alive, rspamd.describe)


def rspamd_unavailable() -> str | None:
    try:
        from peers import rspamd
    except ImportError as e:
        return f"tests/bench/peers/rspamd.py cannot be imported ({e})"
    return rspamd.available()


# ------------------------------------------------------------------ running


def run_load(args, spec: str, concurrency: int, messages: int, max_seconds: float | None) -> dict:
    argv = [args.load_binary, "--socket", spec, "--corpus", args.corpus, "--concurrency", str(concurrency),
            "--messages", str(messages), "--messages-per-session", str(args.messages_per_session),
            "--size", str(args.size), "--recipients", str(args.recipients), "--json"]
    if max_seconds:
        argv += ["--duration", str(max_seconds)]
    if args.nodelay:
        argv.append("--nodelay")
    if args.rate:
        argv += ["--rate", str(args.rate)]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=(max_seconds or 600) + 120)
    if proc.returncode not in (0, 1) or not proc.stdout.strip():
        raise RuntimeError(f"{' '.join(argv)} exited {proc.returncode}:\n{proc.stdout}{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def measure(args, target: Target, redis_port: int, concurrency: int) -> dict:
    pids = process_tree(target.root_pid)
    reset_peak_rss(pids)
    cpu_before = cpu_ticks(pids)
    calls_before = redis_commandstats(redis_port)
    redis_cpu_before = redis_cpu_seconds(redis_port)
    with ThreadSampler(target.root_pid) as threads:
        load = run_load(args, target.spec, concurrency, args.messages, args.max_seconds)
        pids_after = process_tree(target.root_pid)
    cpu_after = cpu_ticks(pids_after)
    calls_after = redis_commandstats(redis_port)
    redis_cpu_after = redis_cpu_seconds(redis_port)
    calls = {name: n - calls_before.get(name, 0) for name, n in calls_after.items()
             if n != calls_before.get(name, 0)}
    peak_rss_kb = sum(status_values(pid, ("VmHWM",)).get("VmHWM", 0) for pid in pids_after)
    messages = load["messages"]
    per_message = (lambda x: x / messages) if messages else (lambda x: 0.0)
    return {
        "target": target.name,
        "concurrency": concurrency,
        "messages": messages,
        "seconds": load["seconds"],
        "msg_per_s": load["messages_per_second"],
        "latency_us": load["latency_us"],
        "cpu_ms_per_msg": per_message((cpu_after - cpu_before) * 1000.0 / k_clock_ticks),
        "peak_rss_mb": peak_rss_kb / 1024.0,
        "peak_threads": threads.peak,
        "processes": len(pids_after),
        "redis_calls_per_msg": per_message(sum(calls.values())),
        "redis_cpu_us_per_msg": per_message((redis_cpu_after - redis_cpu_before) * 1e6),
        "redis_scripts_per_msg": per_message(sum(n for name, n in calls.items() if name in k_script_commands)),
        "redis_calls_by_command": calls,
        "verdicts": load["verdicts"],
        "errors": load["errors"]["total"] + (0 if target.alive() else 1),
        "first_error": load["errors"]["first"] or ("" if target.alive() else f"{target.name} died"),
    }


def print_table(transport: str, rows: list[dict]):
    print(f"\n== milter over {transport} ==")
    print(f"{'target':<10} {'conc':>4} {'msgs':>6} {'msg/s':>8} {'p50 ms':>7} {'p90 ms':>7} {'p99 ms':>7} "
          f"{'max ms':>7} {'CPU ms/msg':>10} {'RSS MB':>7} {'thr':>4} {'redis/msg':>9} {'scripts':>7} "
          f"{'redis us':>8} {'errors':>6}")
    for r in rows:
        lat = r["latency_us"]
        print(f"{r['target']:<10} {r['concurrency']:>4} {r['messages']:>6} {r['msg_per_s']:>8.1f} "
              f"{lat['p50'] / 1000:>7.2f} {lat['p90'] / 1000:>7.2f} {lat['p99'] / 1000:>7.2f} "
              f"{lat['max'] / 1000:>7.1f} {r['cpu_ms_per_msg']:>10.3f} {r['peak_rss_mb']:>7.1f} "
              f"{r['peak_threads']:>4} {r['redis_calls_per_msg']:>9.2f} {r['redis_scripts_per_msg']:>7.2f} "
              f"{r['redis_cpu_us_per_msg']:>8.1f} {r['errors']:>6}")
    sys.stdout.flush()


def main(argv=None) -> int:
    args = parse_args(argv)
    for binary in (args.load_binary, args.binary, args.noop_binary):
        if not os.access(binary, os.X_OK):
            print(f"binary not found: {binary} (build milter_load, floodgate and noop_milter)", file=sys.stderr)
            return 2
    skipped = {}
    if "rspamd" in args.target_names:
        why = rspamd_unavailable()
        if why:
            skipped["rspamd"] = why
            args.target_names.remove("rspamd")
            print(f"rspamd skipped: {why}", file=sys.stderr)
    workdir = tempfile.mkdtemp(prefix="floodgate-milter-compare-")
    os.chmod(workdir, 0o755)
    redis = processes.Redis(workdir)
    config = floodgate_config(workdir, args.config, redis.url)
    summary = {"corpus": args.corpus, "size": args.size, "recipients": args.recipients,
               "messages_per_level": args.messages, "max_seconds": args.max_seconds,
               "messages_per_session": args.messages_per_session, "nodelay": args.nodelay,
               "skipped": skipped, "results": {}}
    print(f"corpus {args.corpus}, ~{args.size} B messages, {args.recipients} rcpts, {args.messages} msgs "
          f"(at most {args.max_seconds:.0f} s) per target and level, {args.messages_per_session} per "
          f"connection; targets {', '.join(args.target_names)}", flush=True)
    failed = False
    try:
        for transport in args.transports:
            targets: list[Target] = []
            try:
                for name in args.target_names:
                    if name == "noop":
                        targets.append(start_daemon("noop", args.noop_binary, config, None, workdir, transport))
                    elif name == "floodgate":
                        targets.append(start_daemon("floodgate", args.binary, config, redis.url, workdir,
                                                    transport))
                    else:
                        targets.append(start_rspamd(workdir, redis.url, transport))
                for target in targets:
                    if args.warmup:
                        run_load(args, target.spec, 8, args.warmup, None)
                rows = []
                for level in args.levels:
                    for target in targets:
                        row = measure(args, target, redis.port, level)
                        rows.append(row)
                        if row["errors"]:
                            failed = True
                            print(f"{target.name} at concurrency {level}: {row['errors']} errors, first: "
                                  f"{row['first_error']}", file=sys.stderr)
                            if not target.alive():
                                print(target.describe(), file=sys.stderr)
                print_table(transport, rows)
                summary["results"][transport] = rows
            finally:
                for target in targets:
                    target.stop()
                    # Each transport starts its daemons afresh: a later start must not
                    # find the earlier one's log and take it for its own "listening".
                for name in ("noop", "floodgate"):
                    log = os.path.join(workdir, f"{name}.log")
                    if os.path.exists(log):
                        os.replace(log, os.path.join(workdir, f"{name}-{transport}.log"))
    finally:
        redis.stop()
        if not os.environ.get("FG_KEEP"):
            shutil.rmtree(workdir, ignore_errors=True)
    text = json.dumps(summary, indent=1)
    print("\nJSON summary:")
    print(text)
    if args.json_out:
        with open(args.json_out, "w", encoding="utf-8") as f:
            f.write(text + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
