"""floodgatectl incidents and incident against a throwaway redis-server,
seeded as the daemons will seed it (seed_incident, which calls the real
Redis incident store): the table newest first with its states and counts,
--open, --since, --json, the text view, hostile values escaped, unknown and
malformed ids, usage errors, Redis down."""

import json
import os
import re
import subprocess
import time
import unittest

from test_floodgatectl import RedisCtlTestCase

k_seed = os.environ["SEED_INCIDENT"]
k_id = re.compile(r"^\d{8}-\d{6}-[0-9a-f]{8}$")


def message(**fields):
    described = {"seconds_ago": 30, "outcome": "quarantined", "addresses": ["a@example.net"],
                 "subject": "Buy now", "queue_id": ""}
    described.update(fields)
    return described


class Incidents(RedisCtlTestCase):
    def seed(self, *incidents):
        """Writes the incidents (seed_incident's format); returns their ids."""
        proc = subprocess.run([k_seed, f"redis://127.0.0.1:{self.redis_port}/0", "fg"],
                              input=json.dumps(list(incidents)).encode(), capture_output=True, timeout=30)
        self.assertEqual(proc.returncode, 0, proc.stderr.decode())
        ids = proc.stdout.decode().split()
        for incident_id in ids:
            self.assertRegex(incident_id, k_id)
        return ids

    def seed_three(self):
        """An expired incident (3h old), an unfrozen one (2h old) and an open
        one (10m old), in that order: returns (expired, unfrozen, open) ids."""
        return self.seed(
            {"opened_seconds_ago": 3 * 3600, "ttl_seconds": 3600, "random": 1,
             "source": "client_address=192.0.2.1", "rule": "rcpts_per_client",
             "messages": [message(seconds_ago=3 * 3600 - 60, outcome="rejected")]},
            {"opened_seconds_ago": 2 * 3600, "ttl_seconds": 4 * 3600, "random": 2,
             "source": "sasl_user=bob", "rule": "manual", "close": {"reason": "unfrozen", "seconds_ago": 3600}},
            {"opened_seconds_ago": 600, "ttl_seconds": 3600, "random": 3,
             "source": "client_address=192.0.2.3",
             "messages": [message(seconds_ago=900, outcome="slipped", queue_id="4AbC1", recipients=40,
                                  addresses=["x@example.net", "y@example.com"]),
                          message(seconds_ago=300, repeat=4, recipients=50),
                          message(seconds_ago=120, outcome="rejected", subject="Cheap pills")]})

    def rows(self, *args):
        lines = self.ctl_ok("incidents", *args).splitlines()
        self.assertEqual(lines[0].split(), ["ID", "STATE", "SOURCE", "RULE", "MESSAGES", "RECIPIENTS",
                                            "QUAR/REJ/SLIP", "FIRST", "SEEN", "LAST", "SEEN"])
        return [line.split() for line in lines[1:]]

    def test_the_table_lists_incidents_newest_first_with_their_counts(self):
        expired, unfrozen, open_id = self.seed_three()
        rows = self.rows()
        self.assertEqual([row[0] for row in rows], [open_id, unfrozen, expired])
        self.assertEqual(rows[0][:7], [open_id, "open", "client_address=192.0.2.3", "same_content_rcpts_per_client",
                                       "6", "241", "4/1/1"])
        self.assertEqual(rows[0][7:], ["15m", "ago", "2m", "ago"])
        self.assertEqual(rows[1][:7], [unfrozen, "unfrozen", "sasl_user=bob", "manual", "0", "0", "0/0/0"])
        self.assertEqual(rows[1][7:], ["-", "-"])
        self.assertEqual(rows[2][:7], [expired, "expired", "client_address=192.0.2.1", "rcpts_per_client",
                                       "1", "1", "0/1/0"])

    def test_open_and_since_filter_the_table(self):
        expired, unfrozen, open_id = self.seed_three()
        self.assertEqual([row[0] for row in self.rows("--open")], [open_id])
        self.assertEqual([row[0] for row in self.rows("--since", "150m")], [open_id, unfrozen])
        self.assertEqual([row[0] for row in self.rows("--since", "1h", "--open")], [open_id])
        self.assertEqual(self.ctl_ok("incidents", "--since", "1m"), "no incidents match\n")

    def test_no_incidents_is_said_and_not_an_error(self):
        self.assertEqual(self.ctl_ok("incidents"), "no incidents\n")
        self.assertEqual(self.ctl_ok("incidents", "--open"), "no incidents match\n")
        self.assertEqual(json.loads(self.ctl_ok("incidents", "--json")), [])

    def test_json_lists_whole_incidents(self):
        expired, unfrozen, open_id = self.seed_three()
        listed = json.loads(self.ctl_ok("incidents", "--json"))
        self.assertEqual([i["id"] for i in listed], [open_id, unfrozen, expired])
        newest = listed[0]
        self.assertEqual(newest["state"], "open")
        self.assertEqual(newest["source"], "client_address=192.0.2.3")
        self.assertEqual((newest["messages"], newest["recipients"]), (6, 241))
        self.assertEqual((newest["quarantined"], newest["rejected"], newest["slipped"], newest["tempfailed"]),
                         (4, 1, 1, 0))
        self.assertEqual(newest["subjects"], [{"text": "Buy now", "count": 5}, {"text": "Cheap pills", "count": 1}])
        self.assertEqual(newest["recipient_domains"][0], {"text": "example.net", "count": 6})
        self.assertEqual([q["queue_id"] for q in newest["queue_ids"]], ["4AbC1"])
        self.assertEqual(newest["until_ms"] - newest["opened_ms"], 3600 * 1000)
        self.assertRegex(newest["opened"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
        self.assertEqual(listed[1]["state"], "unfrozen")
        self.assertEqual(listed[1]["close_reason"], "unfrozen")
        self.assertIsNotNone(listed[1]["closed_ms"])
        self.assertEqual(listed[2]["state"], "expired")
        self.assertIsNone(listed[2]["closed"])
        self.assertEqual([i["id"] for i in json.loads(self.ctl_ok("incidents", "--json", "--open"))], [open_id])

    def test_incident_shows_one_incident_for_a_person(self):
        [incident_id] = self.seed(
            {"source": "client_address=192.0.2.7", "identity": {"client_address": "192.0.2.7"},
             "queue_clearing": "hold", "notifications": ["sent", "suppressed"],
             "messages": [message(outcome="slipped", queue_id="4AbC1", recipients=3,
                                  addresses=["a@example.net", "b@example.net", "c@example.com"]),
                          message(queue_id="4AbC2", repeat=2)],
             "queue_actions": [{"queue_id": "4AbC1", "result": "held"}]})
        out = self.ctl_ok("incident", incident_id)
        lines = out.splitlines()
        self.assertEqual(lines[0], f"incident {incident_id}  open")
        for want in ["source: client_address=192.0.2.7",
                     "rule: same_content_rcpts_per_client (same_content_rcpts_per_client=101>100 (+20))",
                     "action: quarantine",
                     "messages 3  recipients 5  quarantined 2  tempfailed 0  rejected 0  slipped 1",
                     "  client_address: 192.0.2.7",
                     "  c@example.com",
                     "  4  example.net",
                     "  3  Buy now",
                     "queue ids (2):",
                     "queue clearing: hold",
                     "notifications: sent 1  suppressed 1  failed 0"]:
            self.assertIn(want, lines, out)
        self.assertTrue(any(re.fullmatch(r"  4AbC1  slipped  \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC  held", line)
                            for line in lines), out)
        self.assertTrue(any(re.fullmatch(r"opened: \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC by mx1\.example\.org", line)
                            for line in lines), out)

        shown = json.loads(self.ctl_ok("incident", incident_id, "--json"))
        self.assertEqual(shown["id"], incident_id)
        self.assertEqual(shown["identity"], {"client_address": "192.0.2.7"})
        self.assertEqual(shown["queue_ids"][0]["queue_action"], "held")
        self.assertEqual(shown["notifications_sent"], 1)
        self.assertEqual(shown, json.loads(self.ctl_ok("incidents", "--json"))[0])

    def test_hostile_values_are_printed_escaped(self):
        source = b"header:x-php-originating-script=12:a\x1b[2J\r\nX-Forged: yes\xff"
        subject = b"Hi\r\nBcc: victim@example.org\r\n$(rm -rf ~); `id` | tee /tmp/x\x07\xc3\xa9"
        [incident_id] = self.seed({"source_hex": source.hex(), "identity": {"sender": "a\r\nb\u001b[31m"},
                                   "reason": "ops\r\nfake line",
                                   "messages": [message(subject_hex=subject.hex(),
                                                        addresses=["\"x\r\ny\"@example.net"])]})
        table = self.ctl_ok("incidents")
        self.assertEqual(len(table.splitlines()), 2, table)
        for raw in ["\x1b", "\r", "\x07", "X-Forged: yes\n"]:
            self.assertNotIn(raw, table)
        # Cut to its column (at an escape, never inside one).
        self.assertIn(" header:x-php-originating-script=12:a\\x1b[2J...  ", table)

        out = self.ctl_ok("incident", incident_id)
        for line in out.splitlines():
            self.assertRegex(line, r"^[\x20-\x7e]*$")
        self.assertIn("source: header:x-php-originating-script=12:a\\x1b[2J\\x0d\\x0aX-Forged: yes\\xff\n", out)
        self.assertIn("  1  Hi\\x0d\\x0aBcc: victim@example.org\\x0d\\x0a$(rm -rf ~); `id` | tee /tmp/x\\x07\\xc3\\xa9\n",
                      out)
        self.assertIn("  sender: a\\x0d\\x0ab\\x1b[31m\n", out)
        self.assertIn("(ops\\x0d\\x0afake line)\n", out)
        self.assertIn("  \"x\\x0d\\x0ay\"@example.net\n", out)
        self.assertNotIn("\nBcc:", out)

        shown = json.loads(self.ctl_ok("incident", incident_id, "--json"))
        self.assertEqual(shown["subjects"][0]["text"], subject.decode("utf-8"))
        self.assertEqual(shown["source"], source.decode("utf-8", errors="replace"))

    def test_unknown_and_malformed_ids(self):
        self.seed_three()
        proc = self.ctl("incident", "20261127-134501-0a1b2c3d")
        self.assertEqual(proc.returncode, 1, proc.stderr)
        self.assertEqual(proc.stdout, b"")
        self.assertEqual(proc.stderr.decode(), "floodgatectl: no incident with id 20261127-134501-0a1b2c3d\n")
        for bad, printed in [("../../etc/passwd", "../../etc/passwd"),
                             ("20261127-134501-0A1B2C3D", "20261127-134501-0A1B2C3D"),
                             ("x\x1b[2J\ny", "x\\x1b[2J\\x0ay"),
                             ("fg:{freezes}:all", "fg:{freezes}:all")]:
            with self.subTest(bad=bad):
                proc = self.ctl("incident", bad)
                self.assertEqual(proc.returncode, 2, proc.stderr)
                self.assertEqual(proc.stdout, b"")
                self.assertEqual(proc.stderr.decode(), f"floodgatectl: {printed} is not an incident id\n")

    def test_usage_errors_exit_2_with_a_hint(self):
        for args, problem in [(["incidents", "--since", "yesterday"], "--since: 'yesterday' is not a duration"),
                              (["incidents", "extra"], ""),
                              (["incident"], "give exactly one ID"),
                              (["incident", "20261127-134501-0a1b2c3d", "20261127-134501-0a1b2c3e"],
                               "give exactly one ID"),
                              (["incident", "--bogus"], "")]:
            with self.subTest(args=args):
                proc = self.ctl(*args)
                self.assertEqual(proc.returncode, 2, proc.stderr)
                stderr = proc.stderr.decode()
                self.assertTrue(stderr.startswith(f"floodgatectl {args[0]}: "), stderr)
                self.assertIn(problem, stderr)
                self.assertTrue(stderr.endswith(f"Try 'floodgatectl {args[0]} --help'.\n"), stderr)
        for command in ["incidents", "incident"]:
            with self.subTest(command=command):
                proc = self.ctl(command, "--help")
                self.assertEqual(proc.returncode, 0, proc.stderr)
                self.assertIn(f"Usage: floodgatectl [--config FILE] {command}", proc.stdout.decode())
        self.assertIn("incidents", self.ctl_ok("--help"))

    def test_redis_down_is_an_error_naming_the_redis(self):
        self.stop_redis()
        for args in [["incidents"], ["incidents", "--json"], ["incident", "20261127-134501-0a1b2c3d"]]:
            with self.subTest(args=args):
                started = time.monotonic()
                proc = self.ctl(*args)
                self.assertEqual(proc.returncode, 1, proc.stderr)
                self.assertLess(time.monotonic() - started, 10)
                self.assertEqual(proc.stdout, b"")
                self.assertIn(f"floodgatectl: cannot reach Redis at 127.0.0.1:{self.redis_port} while reading the",
                              proc.stderr.decode())


if __name__ == "__main__":
    unittest.main()
