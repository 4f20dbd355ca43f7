#!/usr/bin/python3
"""Relay throughput through a real Postfix: without a milter, with the no-op libmilter
filter, with rspamd (ratelimit only) and with floodgate.

SUMMARY
    Starts the same private world as the integration tests (tests/integration/postfix/
    harness.py): redis-server, smtp-sink, one floodgate daemon, the no-op filter and a
    private Postfix with one smtpd listener per phase: calling floodgate, calling the
    no-op filter, calling nothing, and (unless --no-rspamd, or rspamd is not installed)
    calling a private rspamd 3.4 proxy in milter mode with only its ratelimit module,
    its buckets in the same Redis (tests/bench/peers/rspamd.py). Postfix's smtp-source
    pushes N messages (default 3000; 4 KB, 3 recipients, 20 parallel sessions) through
    each listener in turn, for several rounds. For each phase it reports messages/second
    measured from the start of smtp-source to the moment the sink holds every message,
    each filter's CPU time per message (utime+stime delta over its phases; for rspamd
    the sum over its main process and workers), peak RSS, and Redis's CPU and calls
    (INFO commandstats) per message.

    smtp-source sends the same body from 127.0.0.1 each time; the shipped policy would
    quarantine all of it after 100 recipients, so the default config is bench.yaml:
    the shipped rules with windowed thresholds raised out of reach (every counter is
    still bumped and read on every message).

    Run manually as root (not part of ctest); see README.md.

LIMITS
    All phases run on the same machine as Postfix, smtp-sink and Redis, so the figures
    are relative (ratio) more than absolute. smtp-sink writes each message to disk.
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

k_here = os.path.dirname(os.path.abspath(__file__))
k_root = os.path.abspath(os.path.join(k_here, "..", ".."))
sys.path.insert(0, os.path.join(k_root, "tests", "integration", "postfix"))
# The harness's watchdog is sized for ctest; a long benchmark sets its own.
os.environ.setdefault("FG_DEADLINE", "7200")

import harness  # noqa: E402

from peers import rspamd as rspamd_peer  # noqa: E402


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--messages", "-m", type=int, default=3000, help="messages per phase")
    p.add_argument("--sessions", "-s", type=int, default=20, help="parallel SMTP sessions")
    p.add_argument("--recipients", "-r", type=int, default=3, help="recipients per message")
    p.add_argument("--length", "-l", type=int, default=4096, help="body bytes per message")
    p.add_argument("--warmup", type=int, default=200,
                   help="messages sent through each listener before measuring")
    p.add_argument("--binary", default=os.environ.get(
        "FLOODGATE_BINARY", os.path.join(k_root, "build", "milter", "floodgate")))
    p.add_argument("--noop-binary", default=os.path.join(k_root, "build", "tests", "bench", "noop_milter"),
                   help="the no-op libmilter filter measured as the protocol floor")
    p.add_argument("--config", default=os.environ.get(
        "FLOODGATE_CONFIG", os.path.join(k_here, "bench.yaml")))
    p.add_argument("--transport", choices=("inet", "unix"), default="inet",
                   help="milter socket: loopback TCP (default) or a unix socket")
    p.add_argument("--timeout", type=float, default=600, help="per phase, seconds")
    p.add_argument("--rounds", type=int, default=3,
                   help="measured rounds; each runs every phase, in rotating order")
    p.add_argument("--no-rspamd", action="store_true",
                   help="leave out the rspamd phase (it needs Debian's rspamd package)")
    return p.parse_args()


def run_phase(world, listener: int, messages: int, args, label: str, milter=None) -> dict:
    """Send `messages` through `listener` and wait until the sink has them all.
    `milter` is the daemon whose CPU this phase charges (None without a milter)."""
    redis = world.redis
    cpu0 = milter.cpu_seconds() if milter else 0.0
    rcpu0 = redis_cpu(redis)
    calls0 = redis_calls(redis)
    t0 = time.monotonic()
    source_s = harness.run_smtp_source(world.listener_port(listener), args.sessions, messages, args.recipients,
                                       args.length, args.timeout)
    # Listing the sink directory costs CPU on the same two cores; 0.1 s is
    # under 2% of a phase.
    harness.wait_for(lambda: world.sink.count() >= messages, args.timeout,
                     f"{label}: {messages} messages at the sink", interval=0.1)
    elapsed = time.monotonic() - t0
    delivered = world.sink.count()
    # Empty the sink so that every phase starts from the same directory size.
    for path in world.sink.files():
        os.unlink(path)
    return {
        "label": label,
        "messages": messages,
        "delivered": delivered,
        "elapsed": elapsed,
        "rate": delivered / elapsed,
        "accept_rate": messages / source_s,
        "milter_cpu": (milter.cpu_seconds() - cpu0) if milter else 0.0,
        "redis_cpu": redis_cpu(redis) - rcpu0,
        "redis_calls": redis_calls(redis)[0] - calls0[0],
        "redis_scripts": redis_calls(redis)[1] - calls0[1],
    }


def redis_cpu(redis) -> float:
    with open(f"/proc/{redis.pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def redis_calls(redis) -> tuple[int, int]:
    """(commands, scripts) Redis has executed, from INFO commandstats (INFO itself
    excluded). Commands a script runs count in commandstats too, so `scripts`
    (EVAL, EVALSHA) is the number of round trips that ran one."""
    total = scripts = 0
    for line in redis.command("INFO", "commandstats").decode("utf-8", "replace").splitlines():
        if line.startswith("cmdstat_") and not line.startswith("cmdstat_info:"):
            calls = int(line.split("calls=", 1)[1].split(",", 1)[0])
            total += calls
            if line.startswith(("cmdstat_eval:", "cmdstat_evalsha:")):
                scripts += calls
    return total, scripts


def add_listener(world, name: str, milters: str) -> int:
    """One more smtpd service in the running world's Postfix, calling `milters`;
    returns its index for world.listener_port(). PostfixWorld makes at most one
    listener for a milter other than floodgate (the no-op filter here), and rspamd
    must start after the world's Redis, so the service is added to master.cf and
    Postfix reloaded."""
    port = harness.free_port()
    listener = harness.Listener(name, port, milters)
    master_cf = os.path.join(world.postfix.config_dir, "master.cf")
    with open(master_cf, "a") as f:
        f.write(f"127.0.0.1:{port} inet n - n - - smtpd\n"
                f"  -o syslog_name=postfix/{name}\n"
                f"  -o smtpd_milters={milters}\n")
    world.postfix.listeners.append(listener)
    harness.run([harness.k_postfix_bin, "-c", world.postfix.config_dir, "reload"])
    harness.wait_for(lambda: harness.port_accepts(port), harness.k_start_timeout, f"smtpd {name}:{port}")
    return len(world.postfix.listeners) - 1


def proxy_workers(rspamd) -> int:
    """rspamd's proxy processes, by the title rspamd gives them ("rspamd: rspamd_proxy
    process ...")."""
    count = 0
    for pid in rspamd.pids():
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                count += b"rspamd_proxy" in f.read()
        except OSError:
            pass
    return count


def postconf(world, name: str) -> str:
    return harness.run(["/usr/sbin/postconf", "-c", world.postfix.config_dir, "-h", name]).stdout.strip()


def median(values: list[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def percentile(ordered: list[float], fraction: float) -> float:
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def decision_latencies_ms(log_text: str) -> list[float]:
    """The ms= field of every verdict line: floodgate's time from end-of-message to
    its decision (counters round trip included)."""
    values = []
    for line in log_text.splitlines():
        for word in line.split():
            if word.startswith("ms="):
                values.append(float(word[3:]))
    return sorted(values)


class RspamdPhase:
    """The rspamd peer as run_phase() charges it: CPU of all its processes."""

    def __init__(self, peer):
        self.peer = peer
        self.pids_at_start = sorted(peer.pids())

    def cpu_seconds(self) -> float:
        return self.peer.cpu_seconds()


def main():
    args = parse_args()
    for binary in (args.binary, args.noop_binary):
        if not os.access(binary, os.X_OK):
            sys.exit(f"binary not found: {binary} (build the floodgate and noop_milter targets)")
    with_rspamd = not args.no_rspamd
    if with_rspamd:
        why_not = rspamd_peer.available()
        if why_not:
            print(f"skipping the rspamd phase: {why_not}\n", flush=True)
            with_rspamd = False
    workdir = tempfile.mkdtemp(prefix="floodgate-bench-")
    os.chmod(workdir, 0o755)
    # The protocol floor: a libmilter filter that negotiates floodgate's
    # conversation and does nothing (tests/bench/noop_milter.cpp).
    noop = harness.Floodgate(workdir, "noop", args.noop_binary, args.config, None, args.transport)
    world = None
    rspamd = None
    try:
        noop.wait_ready()
        world = harness.PostfixWorld(floodgates=1, plain_listener=True, binary=args.binary,
                                     config=args.config, milter_on_local=False,
                                     milter_transport=args.transport,
                                     other_milter=noop.postfix_spec)
        fg = world.floodgates[0]
        # smtpd's in_flow_delay would tie its accept rate to delivery (1 s pauses).
        if postconf(world, "in_flow_delay") not in ("0", "0s"):
            sys.exit(f"in_flow_delay is {postconf(world, 'in_flow_delay')!r} in the world's main.cf, want 0")
        phases = {  # label -> (listener, daemon charged)
            "without milter": (2, None),
            "no-op milter": (1, noop),
            "floodgate": (0, fg),
        }
        rspamd_phase = None
        if with_rspamd:
            rspamd = rspamd_peer.Rspamd(workdir, world.redis.url, args.transport)
            rspamd.start()
            modules = rspamd.enabled_modules()
            if modules != ["ratelimit"]:
                sys.exit(f"rspamd enables {modules}, want ['ratelimit'] alone")
            rspamd_phase = RspamdPhase(rspamd)
            phases["rspamd"] = (add_listener(world, "smtpd-rspamd", rspamd.postfix_spec), rspamd_phase)
        print(f"floodgate {args.binary}\nno-op     {args.noop_binary}\nconfig    {args.config}\n"
              + (f"rspamd    {rspamd_peer.k_rspamd_bin} ({rspamd.config_path}), "
                 f"modules enabled: ratelimit, proxy workers {proxy_workers(rspamd)}\n"
                 if rspamd else "")
              + f"workload  {args.messages} msgs x {args.recipients} rcpts x {args.length} B, "
              f"{args.sessions} sessions, milters over {args.transport}, {args.rounds} rounds, "
              f"in_flow_delay {postconf(world, 'in_flow_delay')}\n")
        if args.warmup:
            for label, (listener, daemon) in phases.items():
                run_phase(world, listener, args.warmup, args, "warm-up " + label, daemon)
            world.wait_settled()
        rl_keys = 0
        if rspamd:
            # ratelimit's buckets are hashes named RL<hash> (its `prefix`): proof that
            # the warm-up's messages reached Redis through the module.
            reply = world.redis.command("EVAL", "return #redis.call('KEYS', 'RL*')", "0")
            rl_keys = int(reply.decode().strip().lstrip(":"))
            if rl_keys == 0:
                sys.stderr.write(rspamd.describe())
                sys.exit("rspamd's ratelimit wrote no RL* bucket to Redis during the warm-up")
        runs: dict[str, list[dict]] = {label: [] for label in phases}
        labels = list(phases)
        for round_number in range(args.rounds):
            # Rotate the order so that drift (disk, caches) favours no phase.
            shift = round_number % len(labels)
            for label in labels[shift:] + labels[:shift]:
                listener, daemon = phases[label]
                result = run_phase(world, listener, args.messages, args, label, daemon)
                world.wait_settled()
                runs[label].append(result)
                print(f"round {round_number + 1} {label:>15}: {result['rate']:8.1f} msg/s delivered "
                      f"({result['delivered']} in {result['elapsed']:.2f} s; smtpd accepted "
                      f"{result['accept_rate']:.1f} msg/s)", flush=True)

        held = len(world.postfix.held())
        actions: dict[str, int] = {}
        for line in fg.log_text().splitlines():
            for word in line.split():
                if word.startswith("action="):
                    actions[word[7:]] = actions.get(word[7:], 0) + 1
        latencies = decision_latencies_ms(fg.log_text())

        def paired_ratio(numerator: str, denominator: str) -> float:
            # Per round, the phases ran back to back: their ratio is steadier
            # than a ratio of medians taken across rounds.
            return median([a["rate"] / b["rate"] for a, b in zip(runs[numerator], runs[denominator])])

        print()
        for label in labels:
            print(f"{label:>15}: {median([r['rate'] for r in runs[label]]):8.1f} msg/s "
                  f"(median of {len(runs[label])})")
        ratios = [f"{label} / without milter {paired_ratio(label, 'without milter'):.3f}"
                  for label in labels if label != "without milter"]
        ratios.append(f"floodgate / no-op {paired_ratio('floodgate', 'no-op milter'):.3f}")
        if rspamd:
            ratios.append(f"floodgate / rspamd {paired_ratio('floodgate', 'rspamd'):.3f}")
        print(f"{'ratio':>15}: " + ", ".join(ratios) + " (medians of per-round ratios)")
        print(f"{'decision ms':>15}: p50 {percentile(latencies, 0.5):.3f}  p90 {percentile(latencies, 0.9):.3f}  "
              f"p99 {percentile(latencies, 0.99):.3f}  max {latencies[-1]:.3f}  ({len(latencies)} verdicts)")
        for label, daemon in (("floodgate", fg), ("no-op milter", noop)):
            status = daemon.proc_status()
            n = sum(r["messages"] for r in runs[label])
            cpu = sum(r["milter_cpu"] for r in runs[label])
            print(f"{label:>15}: VmHWM {status.get('VmHWM', '?')}, threads {status.get('Threads', '?')}, "
                  f"CPU {cpu * 1e6 / n:.0f} us/msg ({cpu:.2f} s for {n})")
        rspamd_stable = True
        if rspamd:
            n = sum(r["messages"] for r in runs["rspamd"])
            cpu = sum(r["milter_cpu"] for r in runs["rspamd"])
            rss = rspamd.rss_kb()
            pids_now = sorted(rspamd.pids())
            # A worker rspamd restarted would take its CPU time with it.
            rspamd_stable = pids_now == rspamd_phase.pids_at_start
            print(f"{'rspamd':>15}: PSS {rspamd.pss_kb()} kB over {len(rss)} processes "
                  f"(largest VmHWM {max(h for _, h in rss.values())} kB), "
                  f"CPU {cpu * 1e6 / n:.0f} us/msg ({cpu:.2f} s for {n}, all its processes), "
                  f"processes unchanged {rspamd_stable}, RL* buckets in Redis after warm-up {rl_keys}")
        for label in labels:
            if label == "without milter":
                continue
            n = sum(r["messages"] for r in runs[label])
            print(f"{'redis':>15}: {label}: CPU {sum(r['redis_cpu'] for r in runs[label]) * 1e6 / n:.0f} us/msg, "
                  f"{sum(r['redis_calls'] for r in runs[label]) / n:.1f} commands/msg "
                  f"({sum(r['redis_scripts'] for r in runs[label]) / n:.1f} of them EVAL/EVALSHA; "
                  f"commands a script runs count too)")
        print(f"{'checks':>15}: held {held} (want 0), verdicts {actions} (warm-up included), "
              f"floodgate alive {fg.alive()}" + (f", rspamd alive {rspamd.alive()}" if rspamd else ""))
        everything_delivered = all(r["delivered"] == r["messages"] for rs in runs.values() for r in rs)
        if held or not fg.alive() or set(actions) - {"accept"} or not everything_delivered \
                or (rspamd and (not rspamd.alive() or not rspamd_stable)):
            sys.stderr.write(world.describe())
            if rspamd:
                sys.stderr.write(rspamd.describe())
            sys.exit(1)
    finally:
        if rspamd:
            rspamd.stop()
        if world:
            world.close()
        noop.stop()
        if os.environ.get("FG_KEEP"):
            sys.stderr.write(f"FG_KEEP: left {workdir}\n")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
