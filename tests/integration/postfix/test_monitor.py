"""Monitor mode through a real Postfix (issue 9): before enforcing a policy, an admin
runs it in monitor mode and sees what it would do to real traffic.

- The whole policy (top-level `mode: monitor`): every message reaches the sink
  untouched by the rules -- the 200-recipient message and a same-content burst that
  would freeze its client -- while each verdict line says what the policy would have
  done (monitor=, monitor_score=, monitor_reasons=, monitor_freeze=), the metrics
  count it (floodgate_monitor_messages_total by that action), nothing is spooled or
  frozen, and with monitor.add_header the delivered mail says it in
  X-Floodgate-Monitor.
- One rule (`mode: monitor` on the rule): a new, stricter rule runs beside the
  shipped ones; it only reports, and the shipped rules still quarantine.

Thresholds from conf/floodgate.yaml: one message to 200 recipients scores 50
(rcpts_per_msg +10, rcpts_per_msg_high +20, and same_content_rcpts_per_client +20:
the same text to more than 100 recipients from one client, a containment rule).
"""

import os
import re
import tempfile
import unittest

from harness import FloodgateTestCase, floodgate_config, make_message, rcpt_list
from test_incidents import with_edits
from test_metrics import parse_metrics, value

k_sender = "shop@hosting.example"
k_burst_text = ("Dear customer,\n\nour spring sale starts today: every item in the shop is "
                "half price until Sunday. Visit the shop to see the offers.\n\nThe Shop Team\n")


def config_copy(edits: list[tuple[str, str]]) -> str:
    """conf/floodgate.yaml with `edits` (each passage found exactly once)."""
    handle, path = tempfile.mkstemp(prefix="floodgate-monitor-", suffix=".yaml")
    with open(floodgate_config(), encoding="utf-8") as f, os.fdopen(handle, "w", encoding="utf-8") as out:
        out.write(f.read())
    return with_edits(path, edits)


def field(line: str, key: str) -> str:
    m = re.search(rf'\b{key}=("(?:[^"\\]|\\.)*"|\S+)', line)
    return m.group(1).strip('"') if m else ""


class MonitorMode(FloodgateTestCase):
    def test_whole_policy_in_monitor_mode_lets_a_burst_through_and_logs_and_counts_what_it_would_have_done(self):
        config = config_copy([("\nmode: enforce\n", "\nmode: monitor\n"),
                              ("  add_header: false\n", "  add_header: true\n")])
        self.addCleanup(os.unlink, config)
        world = self.make_world(config=config, quarantine_mode="spool", metrics=True)
        before = parse_metrics(world.scrape_metrics())

        big_rcpts = rcpt_list(200, "big-")
        big = world.send("10.7.0.1", k_sender, big_rcpts,
                         make_message(k_sender, big_rcpts, "Spring sale", k_burst_text, {"X-Test-Seq": "big"}))
        burst = []
        for seq in range(40):  # the same text to 120 recipients from one client
            rcpts = rcpt_list(3, f"b{seq:02d}-")
            burst.append(world.send("10.7.0.2", k_sender, rcpts,
                                    make_message(k_sender, rcpts, "Spring sale", k_burst_text,
                                                 {"X-Test-Seq": f"burst-{seq}"})))
        world.wait_settled(expect_sink=41)
        self.assert_alive(world)

        # Everything delivered, nothing spooled, held or frozen.
        self.assertEqual(world.sink.count(), 41)
        self.assertEqual(world.quarantine_list(), [])
        self.assertEqual(world.postfix.held(), [])
        log = world.floodgates[0].log_text()
        self.assertNotRegex(log, r"\bfreeze source=", "monitor mode froze a source")

        # What it would have done, per message.
        big_line = world.verdict_for(big) or ""
        self.assertEqual(field(big_line, "action"), "accept", big_line)
        self.assertEqual(field(big_line, "monitor"), "quarantine", big_line)
        self.assertIn("rcpts_per_msg_high=200>150 (+20, monitor)", field(big_line, "monitor_reasons"))
        burst_lines = [world.verdict_for(q) or "" for q in burst]
        self.assertTrue(all(field(l, "action") == "accept" for l in burst_lines), burst_lines[-1])
        would_freeze = [i for i, l in enumerate(burst_lines) if field(l, "monitor_freeze")]
        self.assertTrue(would_freeze, "no burst message says it would freeze its client:\n" + burst_lines[-1])
        first = would_freeze[0]
        self.assertEqual(would_freeze, list(range(first, 40)), "every message past the threshold says so")
        self.assertEqual(field(burst_lines[first], "monitor_freeze"), "client_address=10.7.0.2")
        self.assertIn("same_content_rcpts_per_client=", field(burst_lines[first], "monitor_reasons"))
        # Past 100 recipients of the same content: the 34th message (102).
        self.assertEqual(first, 33, burst_lines[first])

        # The delivered copies say it too.
        delivered = {m.header("X-Test-Seq"): m for m in world.sink.messages()}
        self.assertTrue((delivered["big"].header("X-Floodgate-Monitor") or "").startswith("quarantine score=50: "),
                        delivered["big"].header("X-Floodgate-Monitor"))
        self.assertIsNone(delivered["burst-0"].header("X-Floodgate-Monitor"), "burst-0 would have been accepted")
        self.assertIsNone(delivered["big"].header("X-Floodgate-Score"), "monitor mode tagged the message")

        # The metrics count what was applied and what would have been.
        after = parse_metrics(world.scrape_metrics())
        lines = [big_line] + burst_lines
        for action in ("accept", "tag", "quarantine", "tempfail", "reject"):
            applied = value(after, "floodgate_messages_total", action=action) - \
                value(before, "floodgate_messages_total", action=action)
            self.assertEqual(applied, 41 if action == "accept" else 0, action)
            monitored = value(after, "floodgate_monitor_messages_total", action=action) - \
                value(before, "floodgate_monitor_messages_total", action=action)
            self.assertEqual(monitored, sum((field(l, "monitor") or "accept") == action for l in lines), action)
        self.assertGreater(value(after, "floodgate_monitor_messages_total", action="quarantine"), 0)

    def test_a_rule_in_monitor_mode_reports_beside_the_enforced_rules_which_still_act(self):
        new_rule = ("  - {name: strict_rcpts_per_msg, signal: recipients_per_message, threshold: 5, "
                    "points: 30, mode: monitor}\n")
        config = config_copy([("\nrules:\n", "\nrules:\n" + new_rule)])
        self.addCleanup(os.unlink, config)
        world = self.make_world(config=config, quarantine_mode="spool")
        rcpts = rcpt_list(10, "team-")
        ten = world.send("10.7.1.1", k_sender, rcpts,
                         make_message(k_sender, rcpts, "Team lunch", "Lunch on Friday at noon.\n",
                                      {"X-Test-Seq": "ten"}))
        big_rcpts = rcpt_list(200, "big-")
        big = world.send("10.7.1.2", k_sender, big_rcpts,
                         make_message(k_sender, big_rcpts, "Spring sale", k_burst_text, {"X-Test-Seq": "big"}))
        world.wait_settled(expect_sink=1)
        self.assert_alive(world)

        ten_line = world.verdict_for(ten) or ""
        self.assertEqual(field(ten_line, "action"), "accept", ten_line)
        self.assertEqual(field(ten_line, "monitor"), "quarantine", ten_line)
        self.assertEqual(field(ten_line, "monitor_reasons"), "strict_rcpts_per_msg=10>5 (+30, monitor)")
        self.assertEqual([m.header("X-Test-Seq") for m in world.sink.messages()], ["ten"])
        # The enforced rules still quarantine; the monitored one is reported beside them.
        big_line = world.verdict_for(big) or ""
        self.assertEqual(field(big_line, "action"), "quarantine", big_line)
        self.assertEqual(field(big_line, "score"), "50", big_line)
        self.assertEqual(field(big_line, "monitor_score"), "80", big_line)
        self.assertEqual([e["queue_id"] for e in world.quarantine_list()], [big])


if __name__ == "__main__":
    unittest.main()
