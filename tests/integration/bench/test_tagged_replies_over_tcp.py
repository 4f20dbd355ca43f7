"""Over an inet: milter socket, a tagged message is not held up by Nagle's algorithm.

floodgate answers a tagged message's end-of-message with two add-header packets and
then the verdict. Unless its socket has TCP_NODELAY, the second packet waits for the
MTA's ACK of the first, which the MTA delays by ~40 ms (it has nothing to send back):
every tagged message then takes 40 ms or more. milter_load plays the MTA with
TCP_NODELAY on its own side (--nodelay), so what is measured is floodgate's side.

Every message is tagged (bench.yaml plus a rule that always fires, action band tag: 1),
one session at a time, 100 messages: the median must stay far below the 40 ms stall."""

from __future__ import annotations

import json
import os
import re
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
k_floodgate = os.environ.get("FLOODGATE_BINARY", os.path.join(k_root, "build", "milter", "floodgate"))
k_corpus = os.path.join(k_root, "tests", "unit", "content", "data")
k_messages = 100
# A delayed ACK on Linux is at least 40 ms; an unstalled tagged message takes ~1 ms here.
k_max_median_us = 20_000

k_tag_everything_rule = """\
  - name: test_tag_everything
    signal: recipients_per_message
    threshold: 0
    points: 1
"""


def tag_everything_config(base: str, workdir: str) -> str:
    with open(base, encoding="utf-8") as f:
        text = f.read()
    text = text.replace("\nrules:\n", "\nrules:\n" + k_tag_everything_rule, 1)
    text, bands = re.subn(r"^actions:\n(?:  .*\n|[ \t]*#.*\n)*", "actions:\n  tag: 1\n\n", text, count=1, flags=re.M)
    assert bands == 1, f"{base}: no actions: section"
    path = os.path.join(workdir, "tag-everything.yaml")
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return path


class TaggedRepliesOverTcp(unittest.TestCase):
    def setUp(self):
        self.workdir = tempfile.mkdtemp(prefix="floodgate-tagged-tcp-")
        os.chmod(self.workdir, 0o755)
        self.redis = processes.Redis(self.workdir)
        self.addCleanup(self.cleanup)
        base = milter_compare.floodgate_config(self.workdir, os.path.join(k_root, "tests", "bench", "bench.yaml"),
                                               self.redis.url)
        self.config = tag_everything_config(base, self.workdir)
        self.daemon = None

    def cleanup(self):
        if self.daemon:
            self.daemon.stop()
        self.redis.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def test_tagged_message_is_not_delayed_by_nagle_over_inet(self):
        self.daemon = milter_compare.start_daemon("floodgate", k_floodgate, self.config, self.redis.url,
                                                  self.workdir, "inet")
        argv = [k_load, "--socket", self.daemon.spec, "--corpus", k_corpus, "--messages", str(k_messages),
                "--concurrency", "1", "--size", "0", "--nodelay", "--json"]
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=120)
        self.assertEqual(proc.returncode, 0, f"{argv} exited {proc.returncode}: {proc.stdout}{proc.stderr}")
        report = json.loads(proc.stdout)
        latency = report["latency_us"]
        print(f"tagged over inet: p50 {latency['p50']} us, p90 {latency['p90']} us, max {latency['max']} us",
              file=sys.stderr)
        self.assertEqual(report["verdicts"]["accept"], k_messages, f"got verdicts {report['verdicts']}")
        with open(os.path.join(self.workdir, "floodgate.log"), encoding="utf-8", errors="replace") as f:
            tagged = sum(1 for line in f if " action=tag " in line)
        self.assertEqual(tagged, k_messages, f"got {tagged} verdict lines with action=tag, want {k_messages}")
        self.assertLess(latency["p50"], k_max_median_us,
                        f"tagged messages over inet: got median {latency['p50']} us, want < {k_max_median_us} us "
                        "(a Nagle/delayed-ACK stall on floodgate's replies?)")


if __name__ == "__main__":
    unittest.main()
