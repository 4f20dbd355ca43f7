#!/usr/bin/python3
"""Memory and threads of floodgate over a long run: does anything grow?

SUMMARY
    Starts a private redis-server and floodgate (tests/bench/bench.yaml: every rule
    evaluated and every counter bumped, nothing quarantined; spool and Redis of the
    run, metrics off), then runs milter_load against it for --duration seconds at
    --concurrency sessions (SpamAssassin messages of ~5 KB, 3 recipients, 10 per
    connection, 1000 client addresses), and samples floodgate's /proc/PID/status
    every --interval seconds: VmRSS, VmHWM, Threads. Prints one line per sample, then:
      - peak RSS (VmHWM) and peak threads over the run;
      - growth: the mean RSS of the last quarter of the samples minus that of the
        second quarter (the first quarter is warm-up: caches and the containment
        worker's memory of recent mail fill up), in MB and MB per minute;
      - milter_load's figures (msg/s, latency percentiles, verdicts, errors);
      - how many verdicts were scored with Redis and how many with the in-process
        fallback (counters=redis / counters=local-fallback in floodgate's verdict lines),
        since the fallback holds its own counters in memory.

    cmake -S . -B build && cmake --build build -j2 --target floodgate milter_load
    tests/unit/content/fetch_corpus.sh /tmp/sa
    PYTHONDONTWRITEBYTECODE=1 python3 tests/bench/memory_soak.py --duration 600 --concurrency 200

DIAGNOSTICS
    Exits 1 if milter_load reported errors or floodgate died, 2 on usage errors.

LIMITS
    Linux only (/proc). The load generator shares the machine's cores with floodgate
    and Redis: at high concurrency on a small machine the rates and latencies are
    the machine's, the memory figures floodgate's.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

k_here = os.path.dirname(os.path.abspath(__file__))
k_root = os.path.dirname(os.path.dirname(k_here))
sys.path.insert(0, k_here)

import milter_compare  # noqa: E402  (daemon start, config, /proc helpers)
import processes  # noqa: E402  (on sys.path through milter_compare)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--duration", type=float, default=600, help="seconds of load (600)")
    p.add_argument("--concurrency", type=int, default=200, help="milter sessions at once (200)")
    p.add_argument("--interval", type=float, default=10, help="seconds between samples (10)")
    p.add_argument("--transport", choices=("inet", "unix"), default="unix")
    p.add_argument("--size", type=int, default=5120, help="message size milter_load picks (5120)")
    p.add_argument("--recipients", type=int, default=3)
    p.add_argument("--messages-per-session", type=int, default=10)
    p.add_argument("--corpus", default=milter_compare.default_corpus())
    p.add_argument("--config", default=os.path.join(k_here, "bench.yaml"))
    p.add_argument("--binary", default=os.path.join(k_root, "build", "milter", "floodgate"))
    p.add_argument("--load-binary", default=os.path.join(k_root, "build", "tests", "bench", "milter_load"))
    p.add_argument("--json-out", help="also write the summary here")
    args = p.parse_args(argv)
    if args.duration <= 0 or args.interval <= 0 or args.concurrency <= 0:
        p.error("--duration, --interval and --concurrency must be positive")
    return args


def mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0


# The verdict line's counters= value (CounterStore::answered_by) -> the
# summary's name for it.
k_counter_stores = {"redis": "redis", "local-fallback": "local", "unavailable": "unavailable"}


def verdict_counters(log_path: str) -> dict[str, int]:
    counts = {"redis": 0, "local": 0, "unavailable": 0, "other": 0}
    with open(log_path, encoding="utf-8", errors="replace") as f:
        for line in f:
            if " action=" not in line or " counters=" not in line:
                continue
            store = line.split(" counters=", 1)[1].split(" ", 1)[0]
            counts[k_counter_stores.get(store, "other")] += 1
    return counts


def main(argv=None) -> int:
    args = parse_args(argv)
    for binary in (args.binary, args.load_binary):
        if not os.access(binary, os.X_OK):
            print(f"binary not found: {binary} (build floodgate and milter_load)", file=sys.stderr)
            return 2
    workdir = tempfile.mkdtemp(prefix="floodgate-memory-soak-")
    os.chmod(workdir, 0o755)
    redis = processes.Redis(workdir)
    target = None
    try:
        config = milter_compare.floodgate_config(workdir, args.config, redis.url)
        target = milter_compare.start_daemon("floodgate", args.binary, config, redis.url, workdir, args.transport)
        pid = target.root_pid
        argv = [args.load_binary, "--socket", target.spec, "--corpus", args.corpus,
                "--concurrency", str(args.concurrency), "--duration", str(args.duration),
                "--messages", str(10**9), "--messages-per-session", str(args.messages_per_session),
                "--size", str(args.size), "--recipients", str(args.recipients), "--json"]
        print(f"floodgate {args.binary} over {args.transport}, {args.concurrency} sessions, {args.duration:.0f} s, "
              f"sample every {args.interval:.0f} s", flush=True)
        print(f"{'t s':>6} {'RSS MB':>7} {'HWM MB':>7} {'threads':>7}", flush=True)
        keys = ("VmRSS", "VmHWM", "Threads")
        samples = []
        peak_threads = 0
        start = time.monotonic()
        load = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        next_sample = start
        while load.poll() is None:
            now = time.monotonic()
            values = milter_compare.status_values(pid, keys)
            if not values:
                break  # floodgate is gone; reported below
            peak_threads = max(peak_threads, values.get("Threads", 0))
            if now >= next_sample:
                samples.append((now - start, values["VmRSS"] / 1024, values["VmHWM"] / 1024, values["Threads"]))
                print(f"{samples[-1][0]:>6.0f} {samples[-1][1]:>7.1f} {samples[-1][2]:>7.1f} {samples[-1][3]:>7}",
                      flush=True)
                next_sample += args.interval
            time.sleep(0.05)
        out, err = load.communicate(timeout=args.duration + 300)
        alive = target.alive()
        final = milter_compare.status_values(pid, keys) if alive else {}
        report = json.loads(out.strip().splitlines()[-1]) if out.strip() else {}
        rss = [s[1] for s in samples]
        quarter = max(1, len(rss) // 4)
        second, last = rss[quarter:2 * quarter], rss[-quarter:]
        span_minutes = (samples[-1][0] - samples[quarter][0]) / 60 if len(samples) > quarter else 0
        growth = mean(last) - mean(second)
        summary = {
            "duration_s": args.duration, "concurrency": args.concurrency, "transport": args.transport,
            "samples": [{"t": t, "rss_mb": r, "hwm_mb": h, "threads": n} for t, r, h, n in samples],
            "peak_rss_mb": final.get("VmHWM", 0) / 1024 if final else max((s[2] for s in samples), default=0),
            "peak_threads": peak_threads,
            "rss_growth_mb": growth,
            "rss_growth_mb_per_min": growth / (span_minutes * 0.75) if span_minutes else 0.0,
            "load": report,
            "verdict_counters": verdict_counters(os.path.join(workdir, "floodgate.log")),
            "alive": alive,
        }
        print(f"\npeak RSS {summary['peak_rss_mb']:.1f} MB, peak threads {peak_threads}")
        print(f"RSS growth, last quarter minus second quarter: {growth:+.1f} MB "
              f"({summary['rss_growth_mb_per_min']:+.2f} MB/min)")
        if report:
            lat = report["latency_us"]
            print(f"{report['messages']} messages, {report['messages_per_second']:.0f} msg/s, latency p50 "
                  f"{lat['p50'] / 1000:.2f} p90 {lat['p90'] / 1000:.2f} p99 {lat['p99'] / 1000:.2f} max "
                  f"{lat['max'] / 1000:.2f} ms; verdicts {report['verdicts']}; errors {report['errors']['total']}")
        print(f"verdicts by counter store: {summary['verdict_counters']}")
        if args.json_out:
            with open(args.json_out, "w", encoding="utf-8") as f:
                json.dump(summary, f, indent=1)
        if not alive:
            print(f"floodgate died:\n{target.describe()}", file=sys.stderr)
            return 1
        if not report or report["errors"]["total"]:
            print(f"milter_load: {err.strip() or 'errors'}", file=sys.stderr)
            return 1
        return 0
    finally:
        if target:
            target.stop()
        redis.stop()
        if not os.environ.get("FG_KEEP"):
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
