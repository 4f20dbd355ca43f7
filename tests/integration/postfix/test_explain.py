"""floodgatectl explain (issue 9): "why was this held?", rule by rule.

- Golden: a known message (tests/integration/ctl/data/explain-web-form.eml) against
  the shipped policy with a fresh in-process store gives exactly
  explain-web-form.golden: every rule, what it counts for this message, its value,
  threshold, points, and the total and action.
- Live: after the same message went through a real Postfix three times, explain
  --live reads the daemon's Redis -- the values the daemon would see for a fourth
  copy (a Sum exactly, a distinct count as an upper bound marked "<=") -- and leaves
  every key as it was: the same keys, the same DUMP of each, no TTL extended.
"""

import json
import os
import subprocess
import unittest

from harness import FloodgateTestCase, floodgate_config, floodgatectl, floodgatectl_binary

k_data = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "ctl", "data")
k_message = "explain-web-form.eml"
k_client = "10.2.2.2"
k_client_name = "web01.hosting.example"
k_rcpts = ["friend0@people.example", "friend1@people.example", "friend2@people.example"]


def redis_cli(port: int, *args: str, stdin: str | None = None) -> str:
    proc = subprocess.run(["redis-cli", "-p", str(port), "--no-raw", *args], input=stdin, capture_output=True,
                          text=True, timeout=30, check=True)
    return proc.stdout


def snapshot(port: int) -> dict[str, tuple[str, int]]:
    """Every key: (its DUMP, escaped as redis-cli prints it; its PTTL in ms)."""
    keys = [line.strip().strip('"') for line in redis_cli(port, "--scan").splitlines() if line.strip()]
    if not keys:
        return {}
    dumps = redis_cli(port, stdin="".join(f'DUMP "{k}"\n' for k in keys)).splitlines()
    ttls = redis_cli(port, stdin="".join(f'PTTL "{k}"\n' for k in keys)).splitlines()
    return {k: (d, int(t.split()[-1])) for k, d, t in zip(keys, dumps, ttls)}


class ExplainGolden(unittest.TestCase):
    def test_known_message_and_shipped_policy_give_the_golden_explanation(self):
        proc = subprocess.run([floodgatectl_binary(), "--config", floodgate_config(), "explain", k_message,
                               "--client", k_client, "--client-name", k_client_name],
                              cwd=k_data, capture_output=True, text=True, timeout=60)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        with open(os.path.join(k_data, "explain-web-form.golden"), encoding="utf-8") as f:
            self.assertEqual(proc.stdout, f.read())

    def test_json_names_every_rule_of_the_policy_with_its_value(self):
        proc = subprocess.run([floodgatectl_binary(), "--config", floodgate_config(), "explain", k_message,
                               "--client", k_client, "--rcpt", "a@x.example", "--json"],
                              cwd=k_data, capture_output=True, text=True, timeout=60)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        explained = json.loads(proc.stdout)
        self.assertEqual(explained["recipients"], 1)
        self.assertEqual(explained["scope"], "outbound")
        rules = {r["rule"]: r for r in explained["rules"]}
        self.assertEqual(rules["rcpts_per_msg"]["value"], 1)
        self.assertFalse(rules["msgs_per_user"]["applies"])
        self.assertEqual(rules["same_content_rcpts_per_script"]["counts"],
                         f"this content from client_address={k_client} "
                         "header:x-php-originating-script=33:contact-form.php")
        self.assertEqual((explained["score"], explained["action"]), (0, "accept"))

    def test_a_file_that_cannot_be_read_is_an_error_naming_it(self):
        proc = subprocess.run([floodgatectl_binary(), "--config", floodgate_config(), "explain",
                               "/nonexistent/message.eml"], capture_output=True, text=True, timeout=60)
        self.assertEqual(proc.returncode, 1)
        self.assertIn("cannot read /nonexistent/message.eml: No such file or directory", proc.stderr)


class ExplainLive(FloodgateTestCase):
    def test_live_reads_what_the_daemon_counted_and_changes_no_key(self):
        world = self.make_world(quarantine_mode="spool")
        with open(os.path.join(k_data, k_message), "rb") as f:
            message = f.read()
        for _ in range(3):
            world.send(k_client, "www-data@web01.hosting.example", k_rcpts, message, client_name=k_client_name)
        world.wait_settled(expect_sink=3)
        # Nothing else may write while the keys are compared: the daemon's activity
        # flushes and freeze refreshes stop with it.
        world.floodgates[0].stop()
        before = snapshot(world.redis.port)
        self.assertTrue(any(":u" not in k for k in before), f"no counter in Redis: {sorted(before)}")

        proc = floodgatectl(world.config_path, "explain", os.path.join(k_data, k_message), "--client", k_client,
                            "--client-name", k_client_name, "--live", "--json")
        self.assertEqual(proc.returncode, 0, proc.stderr)
        after = snapshot(world.redis.port)
        self.assertEqual(sorted(after), sorted(before), "explain --live added or removed keys")
        for key, (dump, ttl) in before.items():
            self.assertEqual(after[key][0], dump, f"explain --live changed {key}")
            self.assertLessEqual(after[key][1], ttl, f"explain --live extended the TTL of {key}")

        rules = {r["rule"]: r for r in json.loads(proc.stdout)["rules"]}
        # Three copies counted by the daemon, the fourth explained: 4 x 3 recipients.
        self.assertEqual(rules["same_content_rcpts_per_client"]["value"], 12)
        self.assertFalse(rules["same_content_rcpts_per_client"]["upper_bound"])
        self.assertEqual(rules["rcpts_per_client"]["value"], 12)
        # The same 3 recipients each time: 3 distinct in Redis, at most 3 more.
        self.assertEqual(rules["distinct_rcpts_per_client"]["value"], 6)
        self.assertTrue(rules["distinct_rcpts_per_client"]["upper_bound"])

        text = floodgatectl(world.config_path, "explain", os.path.join(k_data, k_message), "--client", k_client,
                            "--live")
        self.assertEqual(text.returncode, 0, text.stderr)
        self.assertIn("counters   live, read only: Redis at ", text.stdout)
        self.assertRegex(text.stdout, r"distinct_rcpts_per_client\s+client_address=10\.2\.2\.2\s+<=6\s")


if __name__ == "__main__":
    unittest.main()
