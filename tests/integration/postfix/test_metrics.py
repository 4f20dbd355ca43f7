"""The Prometheus endpoint (metrics.listen, milter/METRICS.md) through a real Postfix.

The world's daemon serves /metrics on a loopback port of its own (PostfixWorld
metrics=True). The test scrapes, sends mail, scrapes again, and checks that the
metrics moved by what the daemon did -- each expectation taken from the verdict
lines the daemon logged for the queue ids sent and from floodgatectl, not written
down here: messages by action, rule hits, the score and latency histograms, the
Redis calls, a frozen source's refusal at DATA, frozen sources and open incidents,
and the spool's entries.

Thresholds from conf/floodgate.yaml: a 200-recipient message scores 50 and is
quarantined (spool mode: stored, then discarded); a few recipients score 0.
"""

import json
import re
import smtplib
import time
import unittest

from harness import FloodgateTestCase, make_message, rcpt_list, wait_for

k_sender = "metrics@hosting.example"
# Longer than containment.refresh_interval (1 s shipped), with room for a loaded machine.
k_freeze_propagation = 3.0
# The spool gauges are read at most every 10 s (milter/metrics.hpp).
k_spool_scan_wait = 25.0


def parse_metrics(text: str) -> dict[tuple[str, frozenset], float]:
    """{(name, frozenset of (label, value))): value} from the text format."""
    samples = {}
    pattern = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = pattern.match(line)
        if not m:
            raise AssertionError(f"not a sample line: {line!r}")
        labels = frozenset(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"', m.group(2) or ""))
        samples[(m.group(1), labels)] = float(m.group(3))
    return samples


def value(samples: dict, name: str, **labels) -> float:
    """A sample's value; 0 for a series not exported (yet). An `le` label is
    matched as a number."""
    want_le = labels.pop("le", None)
    for (sample_name, sample_labels), v in samples.items():
        if sample_name != name:
            continue
        got = dict(sample_labels)
        got_le = got.pop("le", None)
        if got != {k: str(v2) for k, v2 in labels.items()}:
            continue
        if want_le is None and got_le is None:
            return v
        if want_le is not None and got_le is not None and float(got_le) == float(want_le):
            return v
    return 0.0


def verdict_field(line: str, key: str) -> str:
    m = re.search(rf"\b{key}=(\S+)", line)
    return m.group(1) if m else ""


class Metrics(FloodgateTestCase):
    def test_scrape_moves_by_exactly_what_was_sent_and_gauges_match_freezes_and_spool(self):
        world = self.make_world(quarantine_mode="spool", metrics=True)
        fg = world.floodgates[0]
        before = parse_metrics(world.scrape_metrics())

        queue_ids = []
        for i in range(5):  # ordinary mail: a few recipients, distinct text, distinct clients
            rcpts = rcpt_list(2, f"friend{i}-")
            queue_ids.append(world.send(f"10.6.0.{i + 1}", k_sender, rcpts,
                                        make_message(k_sender, rcpts, f"Note {i}", f"Note number {i} for you.\n")))
        for i in range(2):  # over the recipient threshold: quarantined into the spool
            rcpts = rcpt_list(200, f"bulk{i}-")
            queue_ids.append(world.send(f"10.7.0.{i + 1}", k_sender, rcpts,
                                        make_message(k_sender, rcpts, f"Offer {i}", f"Offer {i}: buy now.\n")))
        world.wait_settled()

        verdicts = [world.verdict_for(qid) or "" for qid in queue_ids]
        self.assertTrue(all(verdicts), f"a verdict per queue id: {list(zip(queue_ids, verdicts))}")
        actions = [verdict_field(v, "action") for v in verdicts]
        self.assertEqual(actions[:5], ["accept"] * 5, f"ordinary mail verdicts: {verdicts[:5]}")
        self.assertEqual(actions[5:], ["quarantine"] * 2, f"bulk verdicts: {verdicts[5:]}")
        scores = [int(verdict_field(v, "score")) for v in verdicts]
        rcpts_rule_hits = sum(1 for v in verdicts if re.search(r"\brcpts_per_msg=", v))
        self.assertEqual(rcpts_rule_hits, 2, f"rcpts_per_msg in the bulk verdicts: {verdicts[5:]}")

        after = parse_metrics(world.scrape_metrics())

        def moved(name, **labels):
            return value(after, name, **labels) - value(before, name, **labels)

        for action in ("accept", "tag", "quarantine", "tempfail", "reject"):
            self.assertEqual(moved("floodgate_messages_total", action=action), actions.count(action),
                             f"messages_total{{action={action}}}")
        self.assertEqual(moved("floodgate_rule_hits_total", rule="rcpts_per_msg"), rcpts_rule_hits)
        self.assertEqual(moved("floodgate_score_count"), len(scores))
        for bound in (0, 5, 10, 20, 30, 50, 75, 100, 150, 200):
            self.assertEqual(moved("floodgate_score_bucket", le=bound), sum(1 for s in scores if s <= bound),
                             f"score bucket le={bound}, scores {scores}")
        self.assertEqual(moved("floodgate_score_sum"), sum(scores))
        self.assertEqual(moved("floodgate_decision_duration_seconds_count"), len(queue_ids))
        self.assertGreater(moved("floodgate_redis_request_duration_seconds_count"), 0)
        self.assertEqual(value(after, "floodgate_counter_store_state", state="redis"), 1)
        self.assertEqual(value(after, "floodgate_messages_in_flight"), 0)

        # A manual reject freeze: the client is refused at DATA, and the freeze
        # and its incident show in the gauges.
        proc = world.floodgatectl("freeze", "client=10.9.9.9", "--action", "reject", "--ttl", "1h",
                                  "--reason", "metrics test")
        self.assertEqual(proc.returncode, 0, f"floodgatectl freeze: {proc.stdout}{proc.stderr}")
        time.sleep(k_freeze_propagation)
        rcpt = ["someone@buyers.example"]
        with self.assertRaises(smtplib.SMTPDataError) as refused:
            world.send("10.9.9.9", k_sender, rcpt, make_message(k_sender, rcpt, "Hi", "Hello there.\n"))
        self.assertEqual(refused.exception.smtp_code, 550)

        frozen = json.loads(world.floodgatectl("frozen", "--json").stdout)
        open_incidents = json.loads(world.floodgatectl("incidents", "--open", "--json").stdout)
        self.assertGreaterEqual(len(frozen), 1)
        spool_entries = len(world.spool_entry_files())
        self.assertEqual(spool_entries, 2, "the two bulk messages are in the spool")

        def gauges_caught_up():
            now = parse_metrics(world.scrape_metrics())
            return now if (value(now, "floodgate_frozen_sources") == len(frozen)
                           and value(now, "floodgate_open_incidents") == len(open_incidents)
                           and value(now, "floodgate_quarantine_entries") == spool_entries) else None
        try:
            final = wait_for(gauges_caught_up, k_spool_scan_wait, "the gauges to match", interval=0.5)
        except TimeoutError:
            final = parse_metrics(world.scrape_metrics())
            self.fail(f"gauges: frozen_sources={value(final, 'floodgate_frozen_sources')} want {len(frozen)}, "
                      f"open_incidents={value(final, 'floodgate_open_incidents')} want {len(open_incidents)}, "
                      f"quarantine_entries={value(final, 'floodgate_quarantine_entries')} want {spool_entries}")
        self.assertGreater(value(final, "floodgate_quarantine_bytes"), 0)
        self.assertEqual(value(final, "floodgate_messages_total", action="reject")
                         - value(before, "floodgate_messages_total", action="reject"), 1,
                         f"the refusal at DATA ({fg.name} log: {[l for l in fg.log_text().splitlines() if 'stage=data' in l]})")


if __name__ == "__main__":
    unittest.main()
