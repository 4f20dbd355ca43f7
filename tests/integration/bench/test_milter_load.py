"""milter_load against the no-op libmilter filter and against floodgate (bench.yaml,
a real redis-server): about 200 messages each, over inet and unix sockets; no error,
and the verdicts add up to the messages sent.

The daemons are started by tests/bench/milter_compare.py's helpers (the same ones the
comparison uses), so this also checks that the comparison can start its targets."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

k_root = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
sys.path.insert(0, os.path.join(k_root, "tests", "bench"))

import milter_compare  # noqa: E402
import processes  # noqa: E402  (on sys.path through milter_compare)

k_load = os.environ.get("MILTER_LOAD_BINARY", os.path.join(k_root, "build", "tests", "bench", "milter_load"))
k_noop = os.environ.get("NOOP_MILTER_BINARY", os.path.join(k_root, "build", "tests", "bench", "noop_milter"))
k_floodgate = os.environ.get("FLOODGATE_BINARY", os.path.join(k_root, "build", "milter", "floodgate"))
k_corpus = os.path.join(k_root, "tests", "unit", "content", "data")
k_messages = 200


class MilterLoadSmoke(unittest.TestCase):
    def setUp(self):
        self.workdir = tempfile.mkdtemp(prefix="floodgate-milter-load-")
        os.chmod(self.workdir, 0o755)
        self.redis = processes.Redis(self.workdir)
        self.addCleanup(self.cleanup)
        self.config = milter_compare.floodgate_config(self.workdir, os.path.join(k_root, "tests", "bench", "bench.yaml"),
                                                      self.redis.url)
        self.targets = []

    def cleanup(self):
        for target in self.targets:
            target.stop()
        self.redis.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def load(self, spec: str, *extra: str) -> dict:
        # The sample messages are 1-10 KB: --size 0 takes them as they are.
        argv = [k_load, "--socket", spec, "--corpus", k_corpus, "--messages", str(k_messages),
                "--concurrency", "8", "--messages-per-session", "7", "--size", "0", "--json", *extra]
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=120)
        self.assertIn(proc.returncode, (0, 1), f"{argv} exited {proc.returncode}: {proc.stderr}")
        report = json.loads(proc.stdout)
        print(f"{spec}: {report['messages_per_second']:.0f} msg/s, p99 {report['latency_us']['p99']} us, "
              f"verdicts {report['verdicts']}", file=sys.stderr)
        return report

    def check(self, target, report: dict, want_redis: bool, calls_before: int):
        errors = report["errors"]
        self.assertEqual(errors["total"], 0, f"{target.name}: got errors {errors}, want none")
        verdicts = report["verdicts"]
        self.assertEqual(sum(verdicts.values()), k_messages,
                         f"{target.name}: verdicts {verdicts} add up to {sum(verdicts.values())}, want {k_messages}")
        self.assertEqual(report["messages"], k_messages)
        # bench.yaml quarantines nothing at 3 recipients: every message is accepted.
        self.assertEqual(verdicts["accept"], k_messages, f"{target.name}: got verdicts {verdicts}")
        self.assertGreater(report["latency_us"]["max"], 0)
        self.assertTrue(target.alive(), f"{target.name} died:\n{target.describe()}")
        calls = milter_compare.redis_command_calls(self.redis.port) - calls_before
        if want_redis:
            self.assertGreaterEqual(calls, k_messages, f"{target.name}: {calls} Redis calls for {k_messages} messages")
        else:
            # The no-op filter has no Redis; the idle floodgate started beside it polls
            # Redis a few times a second (freeze cache, containment worker).
            self.assertLess(calls, k_messages // 10, f"{target.name}: got {calls} Redis calls, want ~none")

    def test_noop_and_floodgate_over_inet_and_unix_without_errors(self):
        for transport in ("inet", "unix"):
            with self.subTest(transport=transport):
                noop = milter_compare.start_daemon(f"noop-{transport}", k_noop, self.config, None, self.workdir,
                                                   transport)
                self.targets.append(noop)
                floodgate = milter_compare.start_daemon(f"floodgate-{transport}", k_floodgate, self.config,
                                                        self.redis.url, self.workdir, transport)
                self.targets.append(floodgate)
                for target, want_redis in ((noop, False), (floodgate, True)):
                    before = milter_compare.redis_command_calls(self.redis.port)
                    self.check(target, self.load(target.spec), want_redis, before)


if __name__ == "__main__":
    unittest.main()
