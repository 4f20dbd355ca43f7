#!/usr/bin/python3
"""Every floodgate action over inet: and unix: sockets, milter-direct, with milter_load
playing Postfix.

SUMMARY
    For each action floodgate can give, a config under which every message gets it,
    and a floodgate daemon on it; milter_load sends the same corpus at each
    concurrency level over each transport. The configs are quarantine_bench.py's
    (bench.yaml, every rule evaluated and every counter bumped, plus a rule that
    always fires: every message scores 1) with the action bands replaced by one band
    at 1 for the action:
      accept           bench.yaml's bands (tag at 5): score 1 is accepted
      tag              SMFIR_ADDHEADER x 2 (X-Floodgate-Score, X-Floodgate-Reasons),
                       then accept
      quarantine-hold  quarantine.mode hold: SMFIR_QUARANTINE, then accept
      quarantine-spool quarantine.mode spool: the message is written to the spool
                       (fsync) and discarded
      tempfail         SMFIR_REPLYCODE 451
      reject           SMFIR_REPLYCODE 550
    Per transport all the action daemons run at once (one private Redis); levels are
    the outer loop and actions the inner one, so the actions alternate under the same
    background load. Each row: milter_load's msg/s and latency (MAIL to the
    end-of-message reply), floodgate's CPU per message (utime+stime of its process
    from /proc, as milter_compare.py measures it), errors.

    A filter that answers end-of-message in several small writes (the modifications,
    then the verdict) on a TCP socket without TCP_NODELAY has its verdict held back by
    Nagle's algorithm until milter_load's delayed ACK (about 40 ms on Linux): the tag
    and quarantine-hold rows over inet show it as a p50 near 44 ms (floodgate before
    07847c4, which set TCP_NODELAY on its inet listener); unix sockets have no Nagle.
    milter_load writes as Postfix does (one write per answered packet), so a stall
    seen here is the filter's.

SECURITY
    Everything listens on 127.0.0.1 or on sockets in a private temporary directory.
    Runs as any user.

DIAGNOSTICS
    Exits 1 if milter_load reported an error, a daemon died, or a level's verdicts are
    not the action's: every message with the expected verdict, tag with two header
    additions per message, quarantine-hold with one SMFIR_QUARANTINE per message,
    quarantine-spool with one spool entry per message. Exits 2 on usage errors.

LIMITS
    Linux only (/proc). The load generator, Redis and the daemons share the machine's
    cores: compare rows of one run, not across runs.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

k_here = os.path.dirname(os.path.abspath(__file__))
k_root = os.path.dirname(os.path.dirname(k_here))
sys.path.insert(0, os.path.join(k_root, "tests", "integration", "postfix"))
sys.path.insert(0, k_here)

import harness  # noqa: E402  (config helpers)
import milter_compare  # noqa: E402  (corpus default, /proc accounting, daemon start, base config)
import processes  # noqa: E402  (Redis)
import quarantine_bench  # noqa: E402  (the always-firing rule, spool entry count)

k_actions = ("accept", "tag", "quarantine-hold", "quarantine-spool", "tempfail", "reject")


def parse_args(argv=None):
    build = os.path.join(k_root, "build")
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--binary", default=os.path.join(build, "milter", "floodgate"))
    p.add_argument("--load-binary", default=os.path.join(build, "tests", "bench", "milter_load"))
    p.add_argument("--config", default=os.path.join(k_here, "bench.yaml"),
                   help="base config (bench.yaml); the always-firing rule and the bands are added")
    p.add_argument("--corpus", default=milter_compare.default_corpus())
    p.add_argument("--messages", type=int, default=1000, help="messages per action, transport and level (1000)")
    p.add_argument("--max-seconds", type=float, default=120.0,
                   help="cap per row; msg/s counts what was sent in that time (120)")
    p.add_argument("--warmup", type=int, default=50, help="messages per daemon before measuring (50)")
    p.add_argument("--concurrency", default="1,8", help="comma-separated levels (1,8)")
    p.add_argument("--transports", default="inet,unix", help="comma-separated subset of inet,unix")
    p.add_argument("--actions", default=",".join(k_actions), help=f"comma-separated subset of {','.join(k_actions)}")
    p.add_argument("--messages-per-session", type=int, default=10)
    p.add_argument("--size", type=int, default=5120)
    p.add_argument("--recipients", type=int, default=3)
    p.add_argument("--nodelay", action="store_true", help="milter_load sets TCP_NODELAY (Postfix does not)")
    p.add_argument("--write-per-packet", action="store_true",
                   help="milter_load writes every packet alone (a naive MTA), not as Postfix does")
    p.add_argument("--json-out", help="also write the rows as JSON to this file")
    args = p.parse_args(argv)
    try:
        args.levels = [int(x) for x in args.concurrency.split(",") if x.strip()]
    except ValueError:
        p.error(f"--concurrency: not a list of numbers: {args.concurrency}")
    args.transport_list = [t for t in args.transports.split(",") if t]
    args.action_list = [a for a in args.actions.split(",") if a]
    for t in args.transport_list:
        if t not in ("inet", "unix"):
            p.error(f"--transports: unknown transport {t}")
    for a in args.action_list:
        if a not in k_actions:
            p.error(f"--actions: unknown action {a}")
    if not args.levels or not args.transport_list or not args.action_list:
        p.error("--concurrency, --transports and --actions need at least one value each")
    return args


# ------------------------------------------------------------------ configs


def action_config(args, action: str, workdir: str, redis_url: str) -> str:
    """The config under which every message gets `action`, with this run's Redis, a
    spool in workdir and no metrics port (milter_compare.floodgate_config)."""
    scored = quarantine_bench.quarantine_everything_config(args.config, workdir)  # bands: quarantine: 1
    with open(scored, encoding="utf-8") as f:
        text = f.read()
    bands = "actions:\n  quarantine: 1\n"
    if bands not in text:
        sys.exit(f"{scored}: quarantine_bench's action bands not found")
    if action == "accept":
        with open(args.config, encoding="utf-8") as f:
            base = f.read()
        if "\nactions:\n  tag: 5\n" not in base:
            sys.exit(f"{args.config}: want the lowest band at tag: 5, so that a score of 1 is accepted")
        # The always-firing rule stays, so accept does the same work as the others.
        text = text.replace(bands, "actions:\n  tag: 5\n")
    else:
        text = text.replace(bands, f"actions:\n  {action.split('-')[0]}: 1\n")
    with open(scored, "w", encoding="utf-8") as f:
        f.write(text)
    path = milter_compare.floodgate_config(workdir, scored, redis_url)  # quarantine mode spool
    if action == "quarantine-hold":
        with open(path, encoding="utf-8") as f:
            text = f.read()
        settings = {"mode": "hold", "spool_directory": harness.yaml_string(os.path.join(workdir, "spool"))}
        with open(path, "w", encoding="utf-8") as f:
            f.write(harness.with_quarantine_section(text, settings))
    return path


# ------------------------------------------------------------------ running


def run_load(args, spec: str, concurrency: int, messages: int, max_seconds: float | None) -> dict:
    argv = [args.load_binary, "--socket", spec, "--corpus", args.corpus, "--concurrency", str(concurrency),
            "--messages", str(messages), "--messages-per-session", str(args.messages_per_session),
            "--size", str(args.size), "--recipients", str(args.recipients), "--json"]
    if max_seconds:
        argv += ["--duration", str(max_seconds)]
    if args.nodelay:
        argv.append("--nodelay")
    if args.write_per_packet:
        argv.append("--write-per-packet")
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=(max_seconds or 600) + 120)
    if proc.returncode not in (0, 1) or not proc.stdout.strip():
        raise RuntimeError(f"{' '.join(argv)} exited {proc.returncode}:\n{proc.stdout}{proc.stderr}")
    load = json.loads(proc.stdout.strip().splitlines()[-1])
    if "modifications_by_kind" not in load:
        raise RuntimeError(f"{args.load_binary} does not count modifications by kind: rebuild milter_load")
    return load


def verdict_problems(action: str, load: dict, spooled: int) -> list[str]:
    """What is wrong with a row's verdicts for `action` (empty: nothing)."""
    n = load["messages"]
    v = load["verdicts"]
    mods = load["modifications_by_kind"]
    want_verdict = {"accept": "accept", "tag": "accept", "quarantine-hold": "quarantine",
                    "quarantine-spool": "discard", "tempfail": "tempfail", "reject": "reject"}[action]
    problems = []
    if n == 0:
        problems.append("no message was sent")
    others = {k: c for k, c in v.items() if k != want_verdict and c}
    if v.get(want_verdict, 0) != n or others:
        problems.append(f"verdicts {v}, want all {n} {want_verdict}")
    headers = mods.get("add_header", 0) + mods.get("insert_header", 0)
    want_headers = 2 * n if action == "tag" else 0
    if headers != want_headers:
        problems.append(f"{headers} header additions, want {want_headers}")
    want_quarantines = n if action == "quarantine-hold" else 0
    if mods.get("quarantine", 0) != want_quarantines:
        problems.append(f"{mods.get('quarantine', 0)} SMFIR_QUARANTINE replies, want {want_quarantines}")
    other_mods = {k: c for k, c in mods.items() if c and k not in ("add_header", "insert_header", "quarantine")}
    if other_mods:
        problems.append(f"unexpected modifications {other_mods}")
    if action == "quarantine-spool" and spooled != n:
        problems.append(f"{spooled} new spool entries, want {n}")
    return problems


def measure(args, action: str, transport: str, target, spool_dir: str, concurrency: int) -> dict:
    pids = milter_compare.process_tree(target.root_pid)
    cpu_before = milter_compare.cpu_ticks(pids)
    spooled_before = quarantine_bench.spool_entries(spool_dir)
    load = run_load(args, target.spec, concurrency, args.messages, args.max_seconds)
    cpu_after = milter_compare.cpu_ticks(milter_compare.process_tree(target.root_pid))
    spooled = quarantine_bench.spool_entries(spool_dir) - spooled_before
    messages = load["messages"]
    problems = verdict_problems(action, load, spooled)
    errors = load["errors"]["total"] + (0 if target.alive() else 1)
    if not target.alive():
        problems.append(f"floodgate ({action}, {transport}) died")
    if load["errors"]["first"]:
        problems.append(f"milter_load: {load['errors']['first']}")
    return {
        "action": action,
        "transport": transport,
        "concurrency": concurrency,
        "messages": messages,
        "msg_per_s": load["messages_per_second"],
        "latency_us": load["latency_us"],
        "cpu_ms_per_msg": (cpu_after - cpu_before) * 1000.0 / milter_compare.k_clock_ticks / messages
        if messages else 0.0,
        "verdicts": load["verdicts"],
        "modifications_by_kind": {k: c for k, c in load["modifications_by_kind"].items() if c},
        "spooled": spooled,
        "writes_per_msg": load["writes"] / messages if messages else 0.0,
        "errors": errors,
        "problems": problems,
    }


def print_table(rows: list[dict]):
    print(f"\n{'action':<17} {'transport':<9} {'conc':>4} {'msgs':>6} {'msg/s':>8} {'p50 ms':>7} {'p90 ms':>7} "
          f"{'p99 ms':>7} {'max ms':>7} {'CPU ms/msg':>10} {'errors':>6} {'verdicts':>8}")
    order = {a: i for i, a in enumerate(k_actions)}
    for r in sorted(rows, key=lambda r: (order[r["action"]], r["transport"], r["concurrency"])):
        lat = r["latency_us"]
        print(f"{r['action']:<17} {r['transport']:<9} {r['concurrency']:>4} {r['messages']:>6} "
              f"{r['msg_per_s']:>8.1f} {lat['p50'] / 1000:>7.2f} {lat['p90'] / 1000:>7.2f} "
              f"{lat['p99'] / 1000:>7.2f} {lat['max'] / 1000:>7.1f} {r['cpu_ms_per_msg']:>10.3f} "
              f"{r['errors']:>6} {'FAIL' if r['problems'] else 'ok':>8}")
    sys.stdout.flush()


def main(argv=None) -> int:
    args = parse_args(argv)
    for binary in (args.load_binary, args.binary):
        if not os.access(binary, os.X_OK):
            print(f"binary not found: {binary} (build the milter_load and floodgate targets)", file=sys.stderr)
            return 2
    workdir = tempfile.mkdtemp(prefix="floodgate-action-transports-")
    os.chmod(workdir, 0o755)
    redis = processes.Redis(workdir)
    print(f"floodgate {args.binary}\ncorpus {args.corpus}, ~{args.size} B messages, {args.recipients} rcpts, "
          f"{args.messages} msgs (at most {args.max_seconds:.0f} s) per row, {args.messages_per_session} per "
          f"connection; milter_load writes {'one packet per write' if args.write_per_packet else 'as Postfix'}"
          f"{', TCP_NODELAY' if args.nodelay else ''}", flush=True)
    rows: list[dict] = []
    try:
        configs = {}
        for action in args.action_list:
            home = os.path.join(workdir, action)
            os.makedirs(home)
            configs[action] = (home, action_config(args, action, home, redis.url))
        for transport in args.transport_list:
            targets = {}
            try:
                for action in args.action_list:
                    home, config = configs[action]
                    targets[action] = milter_compare.start_daemon(f"floodgate-{transport}", args.binary, config,
                                                                  redis.url, home, transport)
                for action, target in targets.items():
                    if args.warmup:
                        run_load(args, target.spec, 8, args.warmup, None)
                for level in args.levels:
                    for action, target in targets.items():
                        row = measure(args, action, transport, target, os.path.join(configs[action][0], "spool"),
                                      level)
                        rows.append(row)
                        for problem in row["problems"]:
                            print(f"{action} over {transport} at concurrency {level}: {problem}", file=sys.stderr)
                        if not target.alive():
                            print(target.describe(), file=sys.stderr)
            finally:
                for target in targets.values():
                    target.stop()
    finally:
        redis.stop()
        if not os.environ.get("FG_KEEP"):
            shutil.rmtree(workdir, ignore_errors=True)
    print_table(rows)
    if args.json_out:
        with open(args.json_out, "w", encoding="utf-8") as f:
            json.dump(rows, f, indent=1)
            f.write("\n")
    failed = [r for r in rows if r["errors"] or r["problems"]]
    if failed:
        print(f"\n{len(failed)} rows FAILED (errors, or verdicts not the action's); see above", file=sys.stderr)
        return 1
    print("\nchecks: no error, every message got its action's verdict (tag: 2 headers each, quarantine-hold: "
          "SMFIR_QUARANTINE each, quarantine-spool: one spool entry each)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
