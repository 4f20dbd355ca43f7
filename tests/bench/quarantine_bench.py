#!/usr/bin/python3
"""Quarantine cost through a real Postfix: spool throughput and peak memory.

SUMMARY
    Starts the integration harness's private world (tests/integration/postfix/
    harness.py) with quarantine.mode spool and a config under which every message is
    quarantined: bench.yaml (the shipped rules, windowed thresholds out of reach, so
    every counter is still read and bumped) plus a rule that always fires
    (recipients_per_message > 0, +1 point) and the action bands replaced by
    `quarantine: 1`.

    (a) burst: Postfix's smtp-source sends N small messages (default 10,000; 1 KB,
        1 recipient, 20 parallel sessions) through the listener that calls floodgate.
        Reported: messages/s from the start of smtp-source until the spool holds N
        entries, smtpd's accept rate, floodgate's CPU per message (utime+stime), the
        spool's entries and bytes, and checks (nothing at the sink, nothing in
        Postfix's queue, one milter-discard per message).
    (b) big: 20 parallel sessions each send one 20 MB message (smtp-source -l),
        all quarantined. Reported: the time from the first send until all 20 are in
        the spool, and floodgate's peak RSS over the phase (VmHWM, reset through
        /proc/PID/clear_refs before the phase; its RSS before the phase alongside).

    Run manually as root (not part of ctest); see README.md.

LIMITS
    Postfix, smtp-sink, Redis and floodgate share the machine; the spool's fsyncs go
    to the same disk as Postfix's queue, so the rate is a system figure, not
    floodgate's alone. Figures on a 2-core VM vary by +-20% between runs.
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

k_here = os.path.dirname(os.path.abspath(__file__))
k_root = os.path.abspath(os.path.join(k_here, "..", ".."))
sys.path.insert(0, os.path.join(k_root, "tests", "integration", "postfix"))
os.environ.setdefault("FG_DEADLINE", "7200")  # the harness watchdog is sized for ctest

import harness  # noqa: E402


k_always_rule = """\
  # quarantine_bench.py: every message is quarantined.
  - name: bench_quarantine_everything
    signal: recipients_per_message
    threshold: 0
    points: 1
"""


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--messages", "-m", type=int, default=10000, help="burst: messages")
    p.add_argument("--sessions", "-s", type=int, default=20, help="burst: parallel SMTP sessions")
    p.add_argument("--length", "-l", type=int, default=1024, help="burst: body bytes per message")
    p.add_argument("--big-messages", type=int, default=20, help="big: messages, one per session")
    p.add_argument("--big-bytes", type=int, default=20 * 1024 * 1024, help="big: bytes per message")
    p.add_argument("--binary", default=os.environ.get(
        "FLOODGATE_BINARY", os.path.join(k_root, "build", "milter", "floodgate")))
    p.add_argument("--ctl-binary", default=os.environ.get(
        "FLOODGATECTL_BINARY", os.path.join(k_root, "build", "ctl", "floodgatectl")))
    p.add_argument("--config", default=os.path.join(k_here, "bench.yaml"),
                   help="base config; the always-quarantine rule and bands are added to it")
    p.add_argument("--transport", choices=("inet", "unix"), default="inet",
                   help="milter socket: loopback TCP (the shipped default) or a unix socket")
    p.add_argument("--only", choices=("burst", "big"), help="run one phase only")
    p.add_argument("--timeout", type=float, default=1800, help="per phase, seconds")
    return p.parse_args()


def quarantine_everything_config(base_path: str, workdir: str) -> str:
    with open(base_path, encoding="utf-8") as f:
        text = f.read()
    if "\nrules:\n" not in text or not re.search(r"^actions:\n(  .*\n|\s*#.*\n)*", text, re.M):
        sys.exit(f"{base_path}: no top-level rules: / actions: sections to edit")
    text = text.replace("\nrules:\n", "\nrules:\n" + k_always_rule, 1)
    text = re.sub(r"^actions:\n(?:  .*\n|[ \t]*#.*\n)*", "actions:\n  quarantine: 1\n\n", text, count=1,
                  flags=re.M)
    path = os.path.join(workdir, "quarantine-bench.yaml")
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return path


def spool_usage(spool_dir: str) -> tuple[int, int]:
    """(entries, bytes) of the complete entries (<id>.fgq) in the spool."""
    entries = size = 0
    with os.scandir(spool_dir) as it:
        for e in it:
            if e.name.endswith(".fgq"):
                entries += 1
                size += e.stat().st_size
    return entries, size


def spool_entries(spool_dir: str) -> int:
    try:
        with os.scandir(spool_dir) as it:
            return sum(1 for e in it if e.name.endswith(".fgq"))
    except FileNotFoundError:
        return 0


def kib(status: dict, key: str) -> float:
    value = status.get(key, "0 kB").split()[0]
    return int(value) / 1024.0


def discard_count(maillog: str) -> int:
    return len(re.findall(r": milter-discard:", maillog))


def run_phase(world, label: str, sessions: int, messages: int, length: int, timeout: float) -> dict:
    fg = world.floodgates[0]
    before_entries = spool_entries(world.spool_dir)
    before_discards = discard_count(world.postfix.maillog_text())
    cpu0 = fg.cpu_seconds()
    t0 = time.monotonic()
    source_s = harness.run_smtp_source(world.listener_port(0), sessions, messages, 1, length, timeout)
    harness.wait_for(lambda: spool_entries(world.spool_dir) - before_entries >= messages, timeout,
                     f"{label}: {messages} entries in the spool", interval=0.1)
    elapsed = time.monotonic() - t0
    cpu = fg.cpu_seconds() - cpu0
    world.wait_settled()
    entries, size = spool_usage(world.spool_dir)
    return {
        "elapsed": elapsed,
        "rate": messages / elapsed,
        "accept_rate": messages / source_s,
        "cpu": cpu,
        "entries": entries - before_entries,
        "spool_entries": entries,
        "spool_bytes": size,
        "discards": discard_count(world.postfix.maillog_text()) - before_discards,
    }


def check(world, messages_sent: int, problems: list[str]):
    if world.sink.count():
        problems.append(f"{world.sink.count()} messages reached the sink, want 0")
    queue = world.postfix.queue_names()
    if queue:
        problems.append(f"Postfix still has {queue}, want nothing queued or held")
    if not world.floodgates[0].alive():
        problems.append("floodgate died")
    entries = spool_entries(world.spool_dir)
    if entries != messages_sent:
        problems.append(f"spool has {entries} entries, want {messages_sent}")


def main():
    args = parse_args()
    for binary in (args.binary, args.ctl_binary):
        if not os.access(binary, os.X_OK):
            sys.exit(f"binary not found: {binary} (build the floodgate and floodgatectl targets)")
    os.environ["FLOODGATECTL_BINARY"] = args.ctl_binary
    workdir = tempfile.mkdtemp(prefix="floodgate-qbench-")
    config = quarantine_everything_config(args.config, workdir)
    world = None
    problems: list[str] = []
    try:
        world = harness.PostfixWorld(floodgates=1, binary=args.binary, config=config,
                                     milter_on_local=False, milter_transport=args.transport,
                                     quarantine_mode="spool")
        fg = world.floodgates[0]
        print(f"floodgate {args.binary}\nconfig    {args.config} + always-quarantine rule\n"
              f"spool     {world.spool_dir}\nmilter    over {args.transport}\n", flush=True)
        sent = 0
        if args.only in (None, "burst"):
            r = run_phase(world, "burst", args.sessions, args.messages, args.length, args.timeout)
            sent += args.messages
            print(f"burst: {args.messages} msgs x 1 rcpt x {args.length} B, {args.sessions} sessions")
            print(f"  quarantined {r['rate']:8.1f} msg/s  ({r['entries']} entries in {r['elapsed']:.2f} s;"
                  f" smtpd accepted {r['accept_rate']:.1f} msg/s)")
            print(f"  floodgate CPU {r['cpu'] * 1e6 / args.messages:.0f} us/msg ({r['cpu']:.2f} s)")
            print(f"  spool {r['spool_entries']} entries, {r['spool_bytes'] / 1e6:.1f} MB "
                  f"({r['spool_bytes'] / max(1, r['spool_entries']):.0f} B/entry); "
                  f"milter-discard x {r['discards']}", flush=True)
            if r["discards"] != args.messages:
                problems.append(f"burst: {r['discards']} milter-discard lines, want {args.messages}")
        if args.only in (None, "big"):
            rss_before = kib(fg.proc_status(), "VmRSS")
            with open(f"/proc/{fg.pid}/clear_refs", "w") as f:
                f.write("5")  # resets VmHWM to the current RSS
            r = run_phase(world, "big", args.big_messages, args.big_messages, args.big_bytes, args.timeout)
            sent += args.big_messages
            status = fg.proc_status()
            print(f"big: {args.big_messages} concurrent sessions x 1 msg x {args.big_bytes / 2**20:.0f} MB")
            print(f"  all quarantined in {r['elapsed']:.2f} s (smtp-source done in "
                  f"{args.big_messages / r['accept_rate']:.2f} s)")
            print(f"  floodgate peak RSS (VmHWM) {kib(status, 'VmHWM'):.1f} MB over the phase "
                  f"(RSS before {rss_before:.1f} MB, after {kib(status, 'VmRSS'):.1f} MB); "
                  f"CPU {r['cpu']:.2f} s; threads {status.get('Threads', '?')}")
            print(f"  spool {r['spool_entries']} entries, {r['spool_bytes'] / 1e6:.1f} MB", flush=True)
            if r["discards"] != args.big_messages:
                problems.append(f"big: {r['discards']} milter-discard lines, want {args.big_messages}")
        check(world, sent, problems)
        if problems:
            print("\nchecks FAILED:\n  " + "\n  ".join(problems))
            sys.stderr.write(world.describe())
            sys.exit(1)
        print("\nchecks: nothing delivered or queued, every message spooled and discarded, floodgate alive")
    finally:
        if world:
            world.close()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
