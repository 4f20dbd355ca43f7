"""floodgatectl top against a throwaway redis-server, seeded as the daemons'
activity flush would seed it (seed_activity, which calls the real Redis
activity store): each --by order, --limit, --window and its bounds,
--identity, --json, the frozen mark, hostile sources, top disabled, Redis
down."""

import json
import os
import re
import subprocess
import time
import unittest

from test_floodgatectl import RedisCtlTestCase

k_seed = os.environ["SEED_ACTIVITY"]


def source(address):
    return f"client_address={address}"


class Top(RedisCtlTestCase):
    def edit_config(self, pattern, replacement):
        with open(self.config) as f:
            text = f.read()
        text, count = re.subn(pattern, replacement, text)
        self.assertEqual(count, 1, f"{pattern} not found once in the config")
        with open(self.config, "w") as f:
            f.write(text)

    def seed(self, *deltas, history=3600):
        proc = subprocess.run([k_seed, f"redis://127.0.0.1:{self.redis_port}/0", "fg", str(history)],
                              input=json.dumps(list(deltas)).encode(), capture_output=True, timeout=30)
        self.assertEqual(proc.returncode, 0, proc.stderr.decode())

    def rows(self, *args):
        """The table's data rows, split on whitespace (canonical sources have
        no spaces); asserts the heading."""
        lines = self.ctl_ok("top", *args).splitlines()
        self.assertEqual(lines[0].split(),
                         ["RANK", "IDENTITY", "SOURCE", "MESSAGES", "RECIPIENTS", "UNIQUE", "RCPTS", "FROZEN"])
        return [line.split() for line in lines[1:]]

    def sources(self, *args):
        return [row[2] for row in self.rows(*args)]

    def top_json(self, *args):
        return json.loads(self.ctl_ok("top", "--json", *args))

    def seed_three_leaders(self):
        """Each of three clients leads by one key."""
        self.seed(
            {"source": source("10.0.0.1"), "messages": 50, "recipients": 50, "addresses": ["a@x", "b@x"]},
            {"source": source("10.0.0.2"), "messages": 2, "recipients": 400, "addresses": ["a@x"]},
            {"source": source("10.0.0.3"), "messages": 10, "recipients": 30,
             "addresses": ["a@x", "b@x", "c@x", "d@x"]},
        )

    def test_each_order_puts_its_leader_first(self):
        self.seed_three_leaders()
        cases = [
            ([], ["10.0.0.1", "10.0.0.3", "10.0.0.2"]),
            (["--by", "messages"], ["10.0.0.1", "10.0.0.3", "10.0.0.2"]),
            (["--by", "recipients"], ["10.0.0.2", "10.0.0.1", "10.0.0.3"]),
            (["--by", "unique-recipients"], ["10.0.0.3", "10.0.0.1", "10.0.0.2"]),
        ]
        for args, want in cases:
            with self.subTest(args=args):
                self.assertEqual(self.sources(*args), [source(a) for a in want])
        self.assertEqual(self.rows(), [
            ["1", "client", source("10.0.0.1"), "50", "50", "2"],
            ["2", "client", source("10.0.0.3"), "10", "30", "4"],
            ["3", "client", source("10.0.0.2"), "2", "400", "1"],
        ])

    def test_numbers_are_right_aligned_under_their_heading(self):
        self.seed_three_leaders()
        lines = self.ctl_ok("top", "--by", "recipients").splitlines()
        end = lines[0].index("RECIPIENTS") + len("RECIPIENTS")
        self.assertEqual([line[end - 3:end] for line in lines[1:]], ["400", " 50", " 30"])

    def test_limit_keeps_the_first(self):
        self.seed_three_leaders()
        self.assertEqual(self.sources("--limit", "1"), [source("10.0.0.1")])
        self.assertEqual(self.sources("--by", "recipients", "--limit", "2"), [source("10.0.0.2"), source("10.0.0.1")])

    def test_window_counts_whole_minutes_back_from_the_current_one(self):
        self.seed(
            {"source": source("10.0.0.1"), "minutes_ago": 0, "messages": 1},
            {"source": source("10.0.0.1"), "minutes_ago": 5, "messages": 2},
            {"source": source("10.0.0.2"), "minutes_ago": 8},
            {"source": source("10.0.0.3"), "minutes_ago": 20},
        )
        cases = [
            (["--window", "1m"], [(source("10.0.0.1"), "1")]),
            (["--window", "60s"], [(source("10.0.0.1"), "1")]),
            ([], [(source("10.0.0.1"), "3"), (source("10.0.0.2"), "1")]),
            (["--window", "30m"], [(source("10.0.0.1"), "3"), (source("10.0.0.2"), "1"), (source("10.0.0.3"), "1")]),
        ]
        for args, want in cases:
            with self.subTest(args=args):
                self.assertEqual([(row[2], row[3]) for row in self.rows(*args)], want)

    def test_unique_recipients_are_a_union_across_minutes(self):
        self.seed(
            {"source": source("10.0.0.1"), "minutes_ago": 0, "addresses": ["a@x", "b@x"]},
            {"source": source("10.0.0.1"), "minutes_ago": 1, "addresses": ["b@x", "c@x"]},
        )
        [entry] = self.top_json()
        self.assertEqual((entry["messages"], entry["recipients"], entry["unique_recipients"]), (2, 4, 3))

    def test_json_lists_every_field_and_the_frozen_mark(self):
        self.seed_three_leaders()
        self.seed({"identity": "php_script", "source": "client_address=10.0.0.9 header:x-php-originating-script=12:f.php",
                   "messages": 7, "addresses": ["z@x"]})
        self.ctl_ok("freeze", "client=10.0.0.3")
        entries = self.top_json("--by", "unique-recipients")
        self.assertEqual([e["rank"] for e in entries], [1, 2, 3, 4])
        first = entries[0]
        self.assertEqual(set(first), {"rank", "identity", "source", "source_digest", "messages", "recipients",
                                      "unique_recipients", "frozen"})
        self.assertEqual((first["identity"], first["source"], first["messages"], first["recipients"],
                          first["unique_recipients"], first["frozen"]),
                         ("client", source("10.0.0.3"), 10, 30, 4, True))
        self.assertRegex(first["source_digest"], r"^[0-9a-f]{16}$")
        frozen_digest = json.loads(self.ctl_ok("frozen", "--json"))[0]["source_digest"]
        self.assertEqual(first["source_digest"], frozen_digest)
        self.assertEqual([e["frozen"] for e in entries[1:]], [False, False, False])
        script = [e for e in entries if e["identity"] == "php_script"]
        self.assertEqual(script[0]["source"], "client_address=10.0.0.9 header:x-php-originating-script=12:f.php")

    def test_a_frozen_source_is_marked_in_the_table(self):
        self.seed_three_leaders()
        self.ctl_ok("freeze", "client=10.0.0.2")
        rows = self.rows()
        self.assertEqual([row[-1] for row in rows if len(row) == 7], ["frozen"])
        self.assertEqual([row[2] for row in rows if len(row) == 7], [source("10.0.0.2")])
        self.assertEqual([len(row) for row in rows], [6, 6, 7], "no trailing cell for a source not frozen")

    def test_identity_limits_the_sources_before_the_limit(self):
        self.seed_three_leaders()
        self.seed({"identity": "sasl_user", "source": "sasl_user=bob", "messages": 3},
                  {"identity": "sasl_user", "source": "sasl_user=carol", "messages": 1})
        self.assertEqual(self.sources("--identity", "sasl_user", "--limit", "1"), ["sasl_user=bob"])
        self.assertEqual(self.ctl_ok("top", "--identity", "php_script"),
                         "no activity in the last 10m from identity php_script\n")
        proc = self.ctl("top", "--identity", "nobody")
        self.assertEqual(proc.returncode, 2)
        self.assertIn("the config defines no identity 'nobody' (it has: client, sasl_user, php_script)",
                      proc.stderr.decode())

    def test_no_activity_is_said_and_not_an_error(self):
        self.seed({"source": source("10.0.0.1"), "minutes_ago": 30})
        self.assertEqual(self.ctl_ok("top"), "no activity in the last 10m\n")
        self.assertEqual(self.ctl_ok("top", "--window", "5m", "--by", "unique-recipients"),
                         "no activity in the last 5m\n")
        self.assertEqual(self.top_json(), [])

    def test_a_window_longer_than_history_is_a_usage_error(self):
        proc = self.ctl("top", "--window", "2h")
        self.assertEqual(proc.returncode, 2)
        self.assertEqual(proc.stdout, b"")
        self.assertIn("--window 2h is longer than top.history (1h)", proc.stderr.decode())
        self.assertEqual(self.ctl_ok("top", "--window", "1h"), "no activity in the last 1h\n")

    def test_a_history_shorter_than_the_default_window_is_the_default(self):
        self.edit_config(r"(?m)^  history: .*$", "  history: 5m")
        self.seed({"source": source("10.0.0.1"), "minutes_ago": 7}, history=300)
        self.seed({"source": source("10.0.0.2"), "minutes_ago": 2}, history=300)
        self.assertEqual(self.sources(), [source("10.0.0.2")])
        self.assertEqual(self.ctl("top", "--window", "10m").returncode, 2)

    def test_hostile_source_is_escaped_and_cut_in_the_table_and_exact_in_json(self):
        hostile = b"client_address=10.0.0.1 \x1b[2J\x1b]0;pwned\x07\r\nFAKE LINE " + b"x" * 80
        self.seed({"source_hex": hostile.hex(), "digest": "00112233445566ff", "messages": 5})
        out = self.ctl_ok("top")
        self.assertNotIn("\x1b", out)
        self.assertNotIn("\x07", out)
        self.assertEqual(len(out.splitlines()), 2, out)
        self.assertIn(r"client_address=10.0.0.1 \x1b[2J\x1b]0;pwned\x07\x0d\x0a", out)
        self.assertRegex(out.splitlines()[1], r"\.\.\. +5 +0 +0$")  # cut to its column
        [entry] = self.top_json()
        self.assertEqual(entry["source"], hostile.decode())
        self.assertEqual(entry["source_digest"], "00112233445566ff")

    def test_disabled_in_the_config_is_an_error_that_says_so(self):
        self.edit_config(r"(?m)^  enabled: true\n  history:", "  enabled: false\n  history:")
        proc = self.ctl("top")
        self.assertEqual(proc.returncode, 1)
        self.assertEqual(proc.stdout, b"")
        self.assertIn("floodgatectl: top is disabled in the config (top.enabled is false in", proc.stderr.decode())

    def test_redis_down_is_an_error_naming_it(self):
        self.stop_redis()
        for args in [[], ["--json"], ["--by", "unique-recipients"]]:
            with self.subTest(args=args):
                started = time.monotonic()
                proc = self.ctl("top", *args)
                self.assertEqual(proc.returncode, 1, proc.stderr)
                self.assertLess(time.monotonic() - started, 10)
                self.assertEqual(proc.stdout, b"")
                self.assertIn(f"floodgatectl: cannot reach Redis at 127.0.0.1:{self.redis_port}",
                              proc.stderr.decode())

    def test_usage_errors_exit_2_before_reading_anything(self):
        for args in [["--by", "volume"], ["--by", "unique_recipients"], ["--window", "soon"], ["--window", "0s"],
                     ["--limit", "0"], ["--limit", "-3"], ["--limit", "many"], ["extra"], ["--bogus"]]:
            with self.subTest(args=args):
                proc = self.ctl("top", *args)
                self.assertEqual(proc.returncode, 2, proc.stderr)
                self.assertEqual(proc.stdout, b"")
                self.assertIn(b"Try 'floodgatectl top --help'", proc.stderr)
        proc = self.ctl("top", "--help")
        self.assertEqual(proc.returncode, 0)
        self.assertIn("Usage: floodgatectl [--config FILE] top [--by messages|recipients|unique-recipients]",
                      proc.stdout.decode())
        self.assertIn("\n  top ", subprocess.run([self.ctl_binary(), "--help"], capture_output=True,
                                                  timeout=10).stdout.decode())

    @staticmethod
    def ctl_binary():
        return os.environ["FLOODGATECTL_BINARY"]


if __name__ == "__main__":
    unittest.main()
