"""Per-source thresholds through a real Postfix (issue 9): `overrides.file` gives one
source its own threshold for a rule -- a newsletter script allowed more than the rule
says -- read from its own file at start and again with every reload.

The config adds one rule to the shipped ones: more than 2 messages per PHP script in
10 minutes scores 30 (quarantine at 20). The newsletter script is allowed 5, then
(after the file is edited and the daemon reloaded) 7; the contact form on the same
host keeps the rule's 2.
"""

import os
import signal
import tempfile
import unittest

from harness import FloodgateTestCase, floodgate_config, make_message, rcpt_list, wait_for
from test_incidents import with_edits

k_client = "10.8.0.1"
k_sender = "www-data@web08.hosting.example"
k_newsletter = "12:newsletter.php"
k_form = "33:contact-form.php"
k_rule = ("  - {name: msgs_per_script_strict, signal: messages, identity: php_script, window: 10m, "
          "threshold: 2, points: 30}\n")


def overrides_text(newsletter_threshold: int) -> str:
    return ("msgs_per_script_strict:\n"
            f'  "client={k_client} header:X-PHP-Originating-Script={k_newsletter}": {newsletter_threshold}\n')


class Overrides(FloodgateTestCase):
    def send(self, world, script: str, seq: int) -> str:
        rcpts = rcpt_list(1, f"{script.split(':')[1].split('.')[0]}{seq}-")
        return world.send(k_client, k_sender, rcpts,
                          make_message(k_sender, rcpts, f"Message {seq}", f"Message number {seq} of {script}.\n",
                                       {"X-PHP-Originating-Script": script, "X-Test-Seq": f"{script}-{seq}"}))

    def actions(self, world, queue_ids: list[str]) -> list[str]:
        world.wait_settled()
        lines = [world.verdict_for(q) or "" for q in queue_ids]
        return [next((w.removeprefix("action=") for w in l.split() if w.startswith("action=")), "?")
                for l in lines]

    def test_a_sources_own_threshold_applies_to_it_alone_and_a_reload_reads_the_file_again(self):
        directory = tempfile.mkdtemp(prefix="floodgate-overrides-")
        self.addCleanup(lambda: [os.unlink(os.path.join(directory, f)) for f in os.listdir(directory)]
                        and os.rmdir(directory))
        overrides = os.path.join(directory, "overrides.yaml")
        with open(overrides, "w", encoding="utf-8") as f:
            f.write(overrides_text(5))
        handle, config = tempfile.mkstemp(prefix="floodgate-overrides-", suffix=".yaml", dir=directory)
        with open(floodgate_config(), encoding="utf-8") as src, os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(src.read())
        with_edits(config, [("\nrules:\n", "\nrules:\n" + k_rule),
                            # Absolute: the harness runs a copy of the config from its own directory.
                            ("\nmode: enforce\n", f"\noverrides:\n  file: {overrides}\nmode: enforce\n")])
        world = self.make_world(config=config, quarantine_mode="spool")

        newsletter = [self.send(world, k_newsletter, seq) for seq in range(6)]
        form = [self.send(world, k_form, seq) for seq in range(3)]
        # The newsletter's 6th message is its first over 5; the form's 3rd is over 2.
        self.assertEqual(self.actions(world, newsletter), ["accept"] * 5 + ["quarantine"])
        self.assertEqual(self.actions(world, form), ["accept", "accept", "quarantine"])
        self.assertIn("msgs_per_script_strict=6>5 (+30, override)", world.verdict_for(newsletter[-1]))

        # Raised in the file, applied by a reload: with 5 still in force the next
        # three would all be quarantined.
        with open(overrides, "w", encoding="utf-8") as f:
            f.write(overrides_text(7))
        fg = world.floodgates[0]
        before = fg.log_text().count("applied to new messages")
        fg.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: fg.log_text().count("applied to new messages") > before, 10, "the reload")
        later = [self.send(world, k_newsletter, seq) for seq in range(6, 9)]
        self.assertEqual(self.actions(world, later), ["accept", "quarantine", "quarantine"])
        self.assertIn("msgs_per_script_strict=8>7 (+30, override)", world.verdict_for(later[1]))
        self.assert_alive(world)


if __name__ == "__main__":
    unittest.main()
