"""floodgatectl run as ops run it, against spools written by the daemon's own
SpoolStore (through make_spool_entries), a fake SMTP release target and a fake
postsuper; the freeze commands against a throwaway redis-server. No Postfix
needed."""

import calendar
import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import unittest

k_ctl = os.environ["FLOODGATECTL_BINARY"]
k_make_entries = os.environ["MAKE_SPOOL_ENTRIES"]
k_shipped_config = os.environ["FLOODGATE_CONFIG"]

k_message = (b"From: Alice <alice@example.org>\n"
             b"To: bob@example.net\n"
             b"Subject: quarterly report\n"
             b"\n"
             b"Hello Bob,\n"
             b".a line starting with a dot\n"
             b"caf\xc3\xa9\n")


def entry(**fields):
    """An entry description for make_spool_entries with ordinary defaults."""
    described = {
        "client_address": "192.0.2.10",
        "client_name": "web1.example.org",
        "helo": "web1.example.org",
        "sasl_user": "",
        "sender": "alice@example.org",
        "recipients": ["bob@example.net"],
        "subject": "quarterly report",
        "score": 30,
        "reasons": ["rcpts_per_msg=200>50 (+30)"],
        "queue_id": "4AbCdEf123",
        "message": k_message.decode("utf-8"),
    }
    described.update(fields)
    return described


def quarantine_section(config_text, settings):
    """The shipped config with its quarantine section's keys set to `settings`."""
    for key, value in settings.items():
        config_text, count = re.subn(rf"(?m)^  {key}: .*$", f"  {key}: {value}", config_text)
        assert count == 1, f"quarantine.{key} not found once in the shipped config"
    return config_text


class FakeReleaseTarget:
    """A tiny SMTP server in a thread: offers 8BITMIME, refuses the recipients
    in `refused`, and records each delivered envelope and message."""

    def __init__(self, refused=()):
        self.refused = set(refused)
        self.deliveries = []  # (sender, [recipients], data bytes without the final dot)
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(5)
        self.listener.settimeout(0.2)
        self.port = self.listener.getsockname()[1]
        self.stopping = False
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def stop(self):
        self.stopping = True
        self.thread.join(5)
        self.listener.close()

    def serve(self):
        while not self.stopping:
            try:
                connection, _ = self.listener.accept()
            except socket.timeout:
                continue
            with connection:
                connection.settimeout(10)
                try:
                    self.session(connection.makefile("rb"), connection)
                except (OSError, ValueError):
                    pass

    def session(self, reader, connection):
        def reply(text):
            connection.sendall(text.encode() + b"\r\n")

        reply("220 fake.test ESMTP")
        sender, recipients = None, []
        while True:
            line = reader.readline()
            if not line:
                return
            command = line.rstrip(b"\r\n").decode("latin-1")
            verb = command.split(" ", 1)[0].upper()
            if verb == "EHLO":
                reply("250-fake.test\r\n250-8BITMIME\r\n250 SIZE 10240000")
            elif verb == "MAIL":
                sender = re.match(r"MAIL FROM:<(.*?)>", command).group(1)
                recipients = []
                reply("250 2.1.0 Ok")
            elif verb == "RCPT":
                recipient = re.match(r"RCPT TO:<(.*?)>", command).group(1)
                if recipient in self.refused:
                    reply(f"550 5.1.1 <{recipient}>: Recipient address rejected: User unknown")
                else:
                    recipients.append(recipient)
                    reply("250 2.1.5 Ok")
            elif verb == "DATA":
                reply("354 End data with <CR><LF>.<CR><LF>")
                data = b""
                while not data.endswith(b"\r\n.\r\n") and data != b".\r\n":
                    chunk = reader.readline()
                    if not chunk:
                        return
                    data += chunk
                self.deliveries.append((sender, recipients, data[:-3]))
                reply("250 2.0.0 Ok: queued as FAKE1")
            elif verb == "RSET":
                reply("250 2.0.0 Ok")
            elif verb == "QUIT":
                reply("221 2.0.0 Bye")
                return
            else:
                reply("502 5.5.2 Error: command not recognized")


class CtlTestCase(unittest.TestCase):
    """A private spool and config per test; the release target is a port
    nothing listens on unless a test starts a FakeReleaseTarget."""

    def setUp(self):
        self.directory = tempfile.mkdtemp(prefix="floodgatectl-test-")
        self.addCleanup(shutil.rmtree, self.directory, True)
        self.spool = os.path.join(self.directory, "spool")
        self.use_config(release_port=self.unused_port())

    def use_config(self, release_port, mode="spool", postfix_config_directory='""'):
        with open(k_shipped_config) as f:
            text = f.read()
        text = quarantine_section(text, {
            "mode": mode,
            "spool_directory": self.spool,
            "release_target": f"127.0.0.1:{release_port}",
            "release_timeout": "5s",
            "postfix_config_directory": postfix_config_directory,
        })
        # No report mail on freeze/unfreeze: the fake release target must see only
        # releases (notifications have tests of their own, test_incidents.py).
        text = text.replace("    mail_to: [postmaster@localhost]\n", "    mail_to: []\n")
        self.config = os.path.join(self.directory, "floodgate.yaml")
        with open(self.config, "w") as f:
            f.write(text)

    @staticmethod
    def unused_port():
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]

    def add_entries(self, *entries):
        """Stores the entries; returns their ids. Entries without an age are a
        minute or so old, each a second older than the next, so that the
        listing order is the order given."""
        entries = [dict(e) for e in entries]
        for index, described in enumerate(entries):
            described.setdefault("age_seconds", 60 + len(entries) - index)
        proc = subprocess.run([k_make_entries, self.spool], input=json.dumps(list(entries)).encode(),
                              capture_output=True, timeout=30)
        self.assertEqual(proc.returncode, 0, proc.stderr.decode())
        return proc.stdout.decode().split()

    def ctl(self, *args, env=None):
        return subprocess.run([k_ctl, "--config", self.config, *args], capture_output=True, timeout=60, env=env)

    def ctl_ok(self, *args):
        proc = self.ctl(*args)
        self.assertEqual(proc.returncode, 0, f"floodgatectl {' '.join(args)}: {proc.stderr.decode()}")
        return proc.stdout.decode()

    def fake_postsuper(self, exit_status):
        """A postsuper on PATH that records its arguments."""
        bin_dir = os.path.join(self.directory, "bin")
        os.makedirs(bin_dir, exist_ok=True)
        self.postsuper_log = os.path.join(self.directory, "postsuper.args")
        script = os.path.join(bin_dir, "postsuper")
        with open(script, "w") as f:
            f.write(f"#!/bin/sh\nfor a in \"$@\"; do printf '%s\\n' \"$a\"; done > '{self.postsuper_log}'\n"
                    f"exit {exit_status}\n")
        os.chmod(script, 0o755)
        return dict(os.environ, PATH=bin_dir + os.pathsep + os.environ.get("PATH", ""))

    def listed(self, *args):
        return json.loads(self.ctl_ok("list", "--json", *args))

    def listed_ids(self, *args):
        return [e["id"] for e in self.listed(*args)]


class Usage(CtlTestCase):
    def test_every_command_has_help_and_exits_0(self):
        for command in ["list", "show", "release", "delete", "purge", "stats", "frozen", "freeze", "unfreeze"]:
            with self.subTest(command=command):
                proc = self.ctl(command, "--help")
                self.assertEqual(proc.returncode, 0, proc.stderr)
                self.assertIn(f"Usage: floodgatectl [--config FILE] {command}", proc.stdout.decode())

    def test_global_help_names_every_command(self):
        proc = subprocess.run([k_ctl, "--help"], capture_output=True, timeout=10)
        self.assertEqual(proc.returncode, 0)
        for command in ["list", "show", "release", "delete", "purge", "stats", "frozen", "freeze", "unfreeze"]:
            self.assertIn(f"\n  {command} ", proc.stdout.decode())

    def test_usage_errors_exit_2_with_a_hint(self):
        cases = [
            [],
            ["frobnicate"],
            ["list", "--bogus"],
            ["list", "--since", "5 minutes"],
            ["list", "--since", "0s"],
            ["list", "--limit", "-1"],
            ["list", "--limit", "many"],
            ["show"],
            ["show", "a", "b"],
            ["show", "--raw", "--json", "20261127T101500Z-0123456789abcdef"],
            ["release"],
            ["release", "--all", "20261127T101500Z-0123456789abcdef"],
            ["release", "--sender", "a@x", "20261127T101500Z-0123456789abcdef"],
            ["release", "--all", "--to", "two words@x"],
            ["delete"],
            ["purge"],
            ["purge", "--older-than", "yesterday"],
            ["stats", "extra"],
            ["frozen", "extra"],
            ["freeze"],
            ["freeze", "client=192.0.2.1", "--ttl", "soon"],
            ["freeze", "client=192.0.2.1", "--ttl", "0s"],
            ["freeze", "client=192.0.2.1", "--action", "accept"],
            ["freeze", "client=192.0.2.1", "--bogus"],
            ["unfreeze"],
            ["unfreeze", "client=192.0.2.1", "--ttl", "1h"],
        ]
        for args in cases:
            with self.subTest(args=args):
                proc = self.ctl(*args)
                self.assertEqual(proc.returncode, 2, proc.stderr)
                self.assertEqual(proc.stdout, b"")
        # A usage error does not need a readable config: it comes first.
        proc = subprocess.run([k_ctl, "--config", "/nonexistent.yaml", "list", "--bogus"],
                              capture_output=True, timeout=10)
        self.assertEqual(proc.returncode, 2)
        self.assertIn(b"Try 'floodgatectl list --help'", proc.stderr)

    def test_config_errors_are_printed_like_the_daemon_and_exit_1(self):
        path = os.path.join(self.directory, "bad.yaml")
        with open(path, "w") as f:
            f.write("quarantine:\n  mode: sideways\ncolour: blue\n")
        proc = subprocess.run([k_ctl, "--config", path, "list"], capture_output=True, timeout=10, text=True)
        self.assertEqual(proc.returncode, 1)
        lines = proc.stderr.strip().splitlines()
        self.assertEqual(len(lines), 2, proc.stderr)
        self.assertTrue(lines[0].startswith(f"{path}:2: quarantine.mode: "), lines[0])
        self.assertTrue(lines[1].startswith(f"{path}:3: colour: "), lines[1])


class Ids(CtlTestCase):
    def test_path_traversal_ids_are_refused_and_nothing_outside_the_spool_is_touched(self):
        self.add_entries(entry())
        victim = os.path.join(self.directory, "victim.fgq")
        with open(victim, "w") as f:
            f.write("not yours")
        hostile = ["../../etc/passwd", "../victim", "../victim.fgq", victim, "",
                   "20261127T101500Z-0123456789abcdef/../../victim",
                   "20261127T101500Z-0123456789ABCDEF", "20261127t101500z-0123456789abcdef"]
        for command in ["show", "delete", "release"]:
            for bad in hostile:
                with self.subTest(command=command, id=bad):
                    proc = self.ctl(command, bad)
                    self.assertEqual(proc.returncode, 1, proc.stderr)
                    self.assertEqual(proc.stderr.decode(), f"floodgatectl: {bad} is not a quarantine id\n")
        self.assertTrue(os.path.exists(victim))
        self.assertEqual(len(self.listed()), 1)

    def test_a_malformed_id_stops_the_command_before_any_valid_one_is_acted_on(self):
        [good] = self.add_entries(entry())
        proc = self.ctl("delete", good, "../../etc/passwd")
        self.assertEqual(proc.returncode, 1)
        self.assertEqual(self.listed_ids(), [good])

    def test_unknown_id_is_reported_and_the_others_are_still_done(self):
        [good] = self.add_entries(entry())
        unknown = "20261127T101500Z-0123456789abcdef"
        proc = self.ctl("delete", unknown, good)
        self.assertEqual(proc.returncode, 1)
        self.assertIn(f"floodgatectl: no quarantined message with id {unknown}\n", proc.stderr.decode())
        self.assertEqual(proc.stdout.decode(), "deleted 1 entry\n")
        self.assertEqual(self.listed_ids(), [])

    def test_control_characters_in_a_bad_id_are_escaped(self):
        proc = self.ctl("show", "\x1b[2J../x")
        self.assertEqual(proc.returncode, 1)
        self.assertEqual(proc.stderr.decode(), "floodgatectl: \\x1b[2J../x is not a quarantine id\n")


class Inspect(CtlTestCase):
    def test_list_shows_a_table_with_the_metadata(self):
        [first, second] = self.add_entries(
            entry(age_seconds=3 * 3600, sasl_user="carol", recipients=[f"r{i}@example.net" for i in range(200)]),
            entry(age_seconds=300, client_name="", client_address="198.51.100.7", sender="",
                  reasons=[], cause="freeze:burst"))
        lines = self.ctl_ok("list").splitlines()
        self.assertEqual(len(lines), 3, lines)
        self.assertEqual(lines[0].split(), ["ID", "AGE", "CLIENT", "SASL", "USER", "SENDER", "RCPTS", "SUBJECT",
                                            "SCORE", "REASON"])
        self.assertEqual(lines[1].split()[:10],
                         [first, "3h", "web1.example.org[192.0.2.10]", "carol", "alice@example.org", "200",
                          "quarterly", "report", "30", "rcpts_per_msg=200>50"])
        self.assertEqual(lines[2].split()[:9],
                         [second, "5m", "[198.51.100.7]", "-", "<>", "1", "quarterly", "report", "30"])
        self.assertTrue(lines[2].endswith("freeze:burst"), lines[2])

    def test_list_escapes_control_characters_and_truncates_long_subjects(self):
        self.add_entries(entry(subject="\x1b[31mred alert\x1b[0m\r\nX-Forged: yes " + "x" * 80,
                               sender="evil\x07@example.org", sasl_user={"hex": "ff00fe"}))
        out = self.ctl_ok("list")
        self.assertNotIn("\x1b", out)
        self.assertNotIn("\x07", out)
        self.assertNotIn("\r", out)
        self.assertEqual(len(out.splitlines()), 2)
        self.assertIn("  \\x1b[31mred alert\\x1b[0m\\x0d\\x0aX-For...  ", out)
        self.assertIn("evil\\x07@example.org", out)
        self.assertIn("\\xff\\x00\\xfe", out)
        self.assertNotIn("x" * 50, out)

    def test_list_filters(self):
        ids = self.add_entries(
            entry(age_seconds=7200, client_address="192.0.2.1", client_name="a.example", sender="One@Example.org",
                  reasons=["messages_per_hour=90>50 (+10)"]),
            entry(age_seconds=1800, client_address="192.0.2.2", client_name="b.example", sasl_user="newsletter",
                  sender="two@example.org", reasons=["rcpts_per_msg=200>50 (+30)", "same_content=120>100 (+20)"]),
            entry(age_seconds=60, client_address="192.0.2.3", client_name="c.example", sender="three@example.org",
                  reasons=[], cause="freeze:burst"))
        self.assertEqual(self.listed_ids(), ids)
        self.assertEqual(self.listed_ids("--source", "192.0.2.1"), [ids[0]])
        self.assertEqual(self.listed_ids("--source", "B.EXAMPLE"), [ids[1]])
        self.assertEqual(self.listed_ids("--source", "newsletter"), [ids[1]])
        self.assertEqual(self.listed_ids("--source", "192.0.2"), [])
        self.assertEqual(self.listed_ids("--sender", "one@example.org"), [ids[0]])
        self.assertEqual(self.listed_ids("--sender", "one@example"), [])
        self.assertEqual(self.listed_ids("--reason", "same_content"), [ids[1]])
        self.assertEqual(self.listed_ids("--reason", "FREEZE"), [ids[2]])
        self.assertEqual(self.listed_ids("--since", "1h"), ids[1:])
        self.assertEqual(self.listed_ids("--since", "10m"), ids[2:])
        self.assertEqual(self.listed_ids("--limit", "2"), ids[1:])
        self.assertEqual(self.listed_ids("--since", "1d", "--reason", "per", "--limit", "1"), [ids[1]])
        self.assertEqual(self.ctl_ok("list", "--sender", "nobody@x"), "no quarantined messages match\n")

    def test_list_json_holds_the_stored_metadata(self):
        [only] = self.add_entries(entry(recipients=["b@example.net", "c@example.net"], score=42,
                                        fingerprint="exact:1a2b3c4d5e6f7a8b"))
        [listed] = self.listed()
        self.assertEqual(listed["id"], only)
        self.assertEqual(listed["recipients"], ["b@example.net", "c@example.net"])
        self.assertEqual(listed["score"], 42)
        self.assertEqual(listed["sender"], "alice@example.org")
        self.assertEqual(listed["fingerprint"], "exact:1a2b3c4d5e6f7a8b")
        self.assertEqual(listed["size_bytes"], len(k_message))
        self.assertEqual(json.loads(self.ctl_ok("list", "--json", "--sender", "x@y")), [])

    def test_show_prints_metadata_and_only_the_headers(self):
        [only] = self.add_entries(entry(recipients=["b@example.net", "c@example.net"],
                                        message="Subject: hello\n\tfolded \x1b[1m\nFrom: a@x\n\nsecret body\n"))
        out = self.ctl_ok("show", only)
        self.assertIn(f"id:          {only}\n", out)
        self.assertIn("client:      web1.example.org[192.0.2.10]\n", out)
        self.assertIn("recipients:  2\n  <b@example.net>\n  <c@example.net>\n", out)
        self.assertIn("reasons:     1\n  rcpts_per_msg=200>50 (+30)\n", out)
        self.assertTrue(out.endswith("\nSubject: hello\n\tfolded \\x1b[1m\nFrom: a@x\n"), out)
        self.assertNotIn("secret body", out)

    def test_show_raw_prints_the_exact_stored_bytes(self):
        message = k_message + b"\r\nbare cr\r end\x00nul\xff"
        [only] = self.add_entries(entry(message={"hex": message.hex()}))
        proc = self.ctl("show", only, "--raw")
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertEqual(proc.stdout, message)

    def test_show_json_adds_the_headers(self):
        [only] = self.add_entries(entry())
        shown = json.loads(self.ctl_ok("show", "--json", only))
        self.assertEqual(shown["id"], only)
        self.assertEqual(shown["headers"], k_message[:k_message.index(b"\n\n") + 2].decode())

    def test_hold_entry_has_no_raw_message(self):
        [held] = self.add_entries(entry(mode="hold", message=""))
        self.assertIn("(the message is in the MTA's hold queue)", self.ctl_ok("show", held))
        proc = self.ctl("show", "--raw", held)
        self.assertEqual(proc.returncode, 1)
        self.assertIn(b"hold queue (queue id 4AbCdEf123)", proc.stderr)

    def test_stats_counts_by_reason_and_source(self):
        self.add_entries(
            entry(age_seconds=86400 * 2, reasons=["rcpts_per_msg=200>50 (+30)"]),
            entry(sasl_user="newsletter", reasons=["rcpts_per_msg=90>50 (+10)", "same_content=120>100 (+20)"]),
            entry(client_address="198.51.100.7", reasons=[], cause="freeze:burst"))
        stats = json.loads(self.ctl_ok("stats", "--json"))
        self.assertEqual(stats["entries"], 3)
        self.assertGreaterEqual(stats["bytes"], 3 * len(k_message))
        self.assertIsNotNone(stats["oldest"])
        self.assertEqual(stats["by_reason"], {"rcpts_per_msg": 2, "same_content": 1, "freeze:burst": 1})
        self.assertEqual(stats["by_source"], {"192.0.2.10": 1, "sasl:newsletter": 1, "198.51.100.7": 1})
        text = self.ctl_ok("stats")
        self.assertIn("entries: 3\n", text)
        self.assertIn("(2d ago)", text)
        self.assertRegex(text, r"by reason:\n +2  rcpts_per_msg\n")


class Change(CtlTestCase):
    def test_delete_by_id_reports_the_count(self):
        ids = self.add_entries(entry(), entry(), entry())
        self.assertEqual(self.ctl_ok("delete", ids[0], ids[2]), "deleted 2 entries\n")
        self.assertEqual(self.listed_ids(), [ids[1]])

    def test_delete_all_with_filters_only_takes_matching_entries(self):
        ids = self.add_entries(entry(sender="spammer@example.org"), entry(), entry(sender="SPAMMER@example.org"))
        out = json.loads(self.ctl_ok("delete", "--all", "--sender", "spammer@example.org", "--json"))
        self.assertEqual(out, {"deleted": 2, "ids": [ids[0], ids[2]]})
        self.assertEqual(self.listed_ids(), [ids[1]])
        self.assertEqual(self.ctl_ok("delete", "--all"), "deleted 1 entry\n")
        self.assertEqual(self.listed_ids(), [])

    def test_purge_removes_only_entries_older_than_the_age(self):
        ids = self.add_entries(entry(age_seconds=3 * 86400), entry(age_seconds=2 * 3600), entry(age_seconds=10))
        self.assertEqual(self.ctl_ok("purge", "--older-than", "1d"), "purged 1 entry\n")
        self.assertEqual(self.listed_ids(), ids[1:])
        self.assertEqual(json.loads(self.ctl_ok("purge", "--older-than", "1h", "--json")), {"purged": 1})
        self.assertEqual(self.listed_ids(), ids[2:])
        self.assertEqual(self.ctl_ok("purge", "--older-than", "1w"), "purged 0 entries\n")


class Release(CtlTestCase):
    def start_target(self, refused=()):
        target = FakeReleaseTarget(refused)
        self.addCleanup(target.stop)
        self.use_config(release_port=target.port)
        return target

    def test_release_delivers_with_the_original_envelope_and_removes_the_entry(self):
        target = self.start_target()
        [kept, released] = self.add_entries(
            entry(), entry(sender="news@example.org", recipients=["b@example.net", "c@example.net"]))
        out = self.ctl_ok("release", released)
        self.assertEqual(out, f"released {released} to 2 recipients (250 2.0.0 Ok: queued as FAKE1)\n")
        self.assertEqual(len(target.deliveries), 1)
        sender, recipients, data = target.deliveries[0]
        self.assertEqual(sender, "news@example.org")
        self.assertEqual(recipients, ["b@example.net", "c@example.net"])
        expected = k_message.replace(b"\n", b"\r\n").replace(b"\r\n.a line", b"\r\n..a line")
        self.assertEqual(data, expected)
        self.assertEqual(self.listed_ids(), [kept])

    def test_refused_recipient_is_reported_and_kept_in_the_entry(self):
        target = self.start_target(refused={"gone@example.net"})
        [only] = self.add_entries(entry(recipients=["b@example.net", "gone@example.net", "c@example.net"]))
        proc = self.ctl("release", only)
        self.assertEqual(proc.returncode, 1)
        stderr = proc.stderr.decode()
        self.assertIn(f"floodgatectl: {only}: refused <gone@example.net>: 550 5.1.1 <gone@example.net>: "
                      "Recipient address rejected: User unknown\n", stderr)
        self.assertIn("1 refused recipient kept in the entry", stderr)
        self.assertEqual(target.deliveries[0][1], ["b@example.net", "c@example.net"])
        [listed] = self.listed()
        self.assertEqual(listed["id"], only)
        self.assertEqual(listed["recipients"], ["gone@example.net"])
        # The message itself is unchanged, ready for a second attempt.
        self.assertEqual(self.ctl("show", "--raw", only).stdout, k_message)

    def test_release_json_reports_each_outcome(self):
        self.start_target(refused={"gone@example.net"})
        ids = self.add_entries(entry(), entry(recipients=["gone@example.net"]))
        proc = self.ctl("release", "--all", "--json")
        self.assertEqual(proc.returncode, 1)
        outcomes = json.loads(proc.stdout)
        self.assertEqual([o["id"] for o in outcomes], ids)
        self.assertEqual([o["released"] for o in outcomes], [True, False])
        self.assertEqual(outcomes[1]["refused"][0]["recipient"], "gone@example.net")
        self.assertIn("none of the recipients", outcomes[1]["error"])
        self.assertEqual(self.listed_ids(), ids[1:])

    def test_release_to_another_address_sends_one_copy_and_keeps_the_entry(self):
        target = self.start_target()
        [only] = self.add_entries(entry(recipients=["b@example.net", "c@example.net"]))
        out = self.ctl_ok("release", only, "--to", "<postmaster@example.org>")
        self.assertIn(f"sent a copy of {only} to <postmaster@example.org>; the entry is kept", out)
        self.assertEqual([(s, r) for s, r, _ in target.deliveries],
                         [("alice@example.org", ["postmaster@example.org"])])
        self.assertEqual(self.listed()[0]["recipients"], ["b@example.net", "c@example.net"])

    def test_release_all_with_a_filter(self):
        target = self.start_target()
        ids = self.add_entries(entry(sasl_user="newsletter"), entry(), entry(sasl_user="newsletter"))
        proc = self.ctl("release", "--all", "--source", "newsletter")
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertEqual(len(target.deliveries), 2)
        self.assertEqual(self.listed_ids(), [ids[1]])

    def test_unreachable_target_keeps_the_entry_and_fails(self):
        [only] = self.add_entries(entry())
        started = time.monotonic()
        proc = self.ctl("release", only)
        self.assertEqual(proc.returncode, 1)
        self.assertLess(time.monotonic() - started, 10)
        self.assertIn(f"floodgatectl: {only}: not released: cannot connect to 127.0.0.1:", proc.stderr.decode())
        self.assertEqual(self.listed_ids(), [only])

    def test_hold_entry_is_released_with_postsuper_and_removed(self):
        self.use_config(release_port=self.unused_port(), mode="hold", postfix_config_directory="/etc/postfix-out")
        [held] = self.add_entries(entry(mode="hold", message="", queue_id="4XyZ12AbC"))
        env = self.fake_postsuper(0)
        proc = self.ctl("release", held, env=env)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        with open(self.postsuper_log) as f:
            self.assertEqual(f.read().splitlines(), ["-c", "/etc/postfix-out", "-H", "4XyZ12AbC"])
        self.assertIn(f"released {held} from the hold queue (queue id 4XyZ12AbC)", proc.stdout.decode())
        self.assertEqual(self.listed_ids(), [])

    def test_hold_entry_stays_when_postsuper_fails_or_the_queue_id_is_odd(self):
        [held, odd] = self.add_entries(entry(mode="hold", message=""),
                                       entry(mode="hold", message="", queue_id="-d ALL"))
        env = self.fake_postsuper(1)
        proc = self.ctl("release", held, odd, env=env)
        self.assertEqual(proc.returncode, 1)
        stderr = proc.stderr.decode()
        self.assertIn(f"{held}: not released: postsuper -H failed with exit status 1", stderr)
        self.assertIn(f"{odd}: not released: the recorded queue id is not a Postfix queue id", stderr)
        with open(self.postsuper_log) as f:
            self.assertEqual(f.read().splitlines(), ["-H", "4AbCdEf123"])
        self.assertEqual(self.listed_ids(), [held, odd])


class RedisCtlTestCase(CtlTestCase):
    """A CtlTestCase with a real redis-server of the test's own, named by the config."""

    def setUp(self):
        super().setUp()
        self.redis_port = self.unused_port()
        self.redis = subprocess.Popen(
            ["redis-server", "--port", str(self.redis_port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.addCleanup(self.stop_redis)
        self.wait_for_redis()
        self.use_redis(self.redis_port)

    def stop_redis(self):
        if self.redis.poll() is None:
            self.redis.kill()
        self.redis.wait(10)

    def wait_for_redis(self):
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.redis_port), timeout=1) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(64).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            time.sleep(0.05)
        self.fail(f"redis-server did not answer on port {self.redis_port}")

    def use_redis(self, port):
        """The test's config with redis.url pointing at `port`."""
        with open(self.config) as f:
            text = f.read()
        text, count = re.subn(r"(?m)^  url: .*$", f"  url: redis://127.0.0.1:{port}/0", text)
        self.assertEqual(count, 1, "redis.url not found once in the shipped config")
        with open(self.config, "w") as f:
            f.write(text)



class Freeze(RedisCtlTestCase):
    """freeze, frozen and unfreeze against a real redis-server of the test's own."""

    def frozen(self):
        return json.loads(self.ctl_ok("frozen", "--json"))

    def test_freeze_list_refreeze_unfreeze(self):
        before = int(time.time() * 1000)
        out = self.ctl_ok("freeze", "client=192.0.2.7", "--ttl", "2h", "--action", "tempfail",
                          "--reason", "abuse report #123")
        self.assertRegex(out, r"^frozen: client_address=192\.0\.2\.7 until \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC "
                              r"\(tempfail\)\nincident: \d{8}-\d{6}-[0-9a-f]{8}\n$")

        [listed] = self.frozen()
        after = int(time.time() * 1000)
        self.assertEqual(listed["source"], "client_address=192.0.2.7")
        self.assertRegex(listed["source_digest"], r"^[0-9a-f]{16}$")
        self.assertEqual(listed["rule"], "manual")
        self.assertEqual(listed["reason"], "abuse report #123")
        self.assertEqual(listed["action"], "tempfail")
        self.assertTrue(before <= listed["since_ms"] <= after, (before, listed["since_ms"], after))
        self.assertEqual(listed["until_ms"] - listed["since_ms"], 2 * 3600 * 1000)
        for field in ["since", "until"]:
            self.assertRegex(listed[field], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
            parsed = time.strptime(listed[field][:19], "%Y-%m-%dT%H:%M:%S")
            seconds = calendar.timegm(parsed) + int(listed[field][20:23]) / 1000
            self.assertEqual(round(seconds * 1000), listed[field + "_ms"])

        lines = self.ctl_ok("frozen").splitlines()
        self.assertEqual(len(lines), 2, lines)
        self.assertEqual(lines[0].split(), ["SOURCE", "SINCE", "TTL", "LEFT", "ACTION", "RULE", "MESSAGES", "RCPTS",
                                            "STOPPED/SLIPPED", "REASON"])
        # Nothing sent from it yet: its incident counts nothing.
        self.assertRegex(lines[1], r"^client_address=192\.0\.2\.7 +[0-9]s +1h  tempfail  manual +0 +0 +0/0  "
                                   r"abuse report #123$")
        self.assertEqual(listed["incident"], re.search(r"incident: (\S+)", out).group(1))
        self.assertEqual(listed["counts"], {"messages": 0, "recipients": 0, "quarantined": 0, "tempfailed": 0,
                                            "rejected": 0, "slipped": 0})

        out = self.ctl_ok("freeze", "client=192.0.2.7", "--ttl", "5m", "--reason", "second try")
        self.assertTrue(out.startswith("already frozen: client_address=192.0.2.7 until "), out)
        self.assertIn("(tempfail)", out)
        self.assertEqual(self.frozen(), [listed])  # the first freeze stays as it was

        self.assertRegex(self.ctl_ok("unfreeze", "client=192.0.2.7"),
                         r"^unfrozen: client_address=192\.0\.2\.7\nincident closed: \d{8}-\d{6}-[0-9a-f]{8}\n$")
        self.assertEqual(self.frozen(), [])
        self.assertEqual(self.ctl_ok("frozen"), "no frozen sources\n")
        proc = self.ctl("unfreeze", "client=192.0.2.7")
        self.assertEqual(proc.returncode, 1)
        self.assertEqual(proc.stderr.decode(), "floodgatectl: not frozen: client_address=192.0.2.7\n")

    def test_a_header_floodgate_does_not_read_cannot_be_frozen_on(self):
        proc = self.ctl("freeze", "client=192.0.2.9", "header:X-Mailer=spamtool")
        self.assertEqual(proc.returncode, 1)
        self.assertIn("floodgatectl: Floodgate does not read the header x-mailer", proc.stderr.decode())
        self.assertEqual(self.frozen(), [])

    def test_defaults_come_from_the_containment_section(self):
        self.ctl_ok("freeze", "sasl=bob")
        [listed] = self.frozen()
        self.assertEqual(listed["action"], "quarantine")
        self.assertEqual(listed["reason"], "frozen by hand")
        self.assertEqual(listed["until_ms"] - listed["since_ms"], 3600 * 1000)  # shipped ttl: 1h

    def test_the_same_source_in_another_spelling_is_one_freeze(self):
        self.ctl_ok("freeze", "header:X-PHP-Originating-Script=12:contact.php", "client=192.0.2.8")
        out = self.ctl_ok("freeze", "client_address=192.0.2.8", "header:x-php-originating-script=12:contact.php")
        self.assertTrue(out.startswith("already frozen: "), out)
        self.assertEqual(len(self.frozen()), 1)
        self.assertTrue(self.ctl_ok("unfreeze", "client=192.0.2.8", "header:X-PHP-Originating-Script=12:contact.php")
                        .startswith("unfrozen: "))

    def test_a_short_ttl_expires(self):
        self.ctl_ok("freeze", "client=192.0.2.9", "--ttl", "1s")
        self.assertEqual(len(self.frozen()), 1)
        time.sleep(2)
        self.assertEqual(self.frozen(), [])
        self.assertEqual(self.ctl_ok("frozen"), "no frozen sources\n")

    def test_bad_sources_are_usage_errors_with_the_reason(self):
        for words, named in [(["clinet=1.2.3.4"], "clinet"), (["client=999.1.1.1"], "999.1.1.1")]:
            for command in ["freeze", "unfreeze"]:
                with self.subTest(command=command, words=words):
                    proc = self.ctl(command, *words)
                    self.assertEqual(proc.returncode, 2, proc.stderr)
                    self.assertEqual(proc.stdout, b"")
                    stderr = proc.stderr.decode()
                    self.assertTrue(stderr.startswith(f"floodgatectl {command}: "), stderr)
                    self.assertIn(named, stderr)
                    self.assertTrue(stderr.endswith(f"Try 'floodgatectl {command} --help'.\n"), stderr)
        self.assertEqual(self.frozen(), [])

    def test_hostile_values_are_printed_escaped(self):
        value = "12:contact form\x1b[2J.php\nX-Forged: yes"
        out = self.ctl_ok("freeze", f"header:X-PHP-Originating-Script={value}",
                          "--reason", "bell\x07 and\r\nfake line")
        [listed] = self.frozen()
        # The source is printed in its canonical spelling: one line, no
        # blanks or control characters inside, the same as --json gives.
        source = listed["source"]
        self.assertRegex(source, r"^header:x-php-originating-script=12:contact[\x21-\x7e]*$")
        self.assertTrue(out.startswith(f"frozen: {source} until "), out)
        self.assertRegex(out, r"\nincident: \d{8}-\d{6}-[0-9a-f]{8}\n$")
        self.assertEqual(out.count("\n"), 2, out)
        self.assertNotIn("\x1b", out)

        table = self.ctl_ok("frozen")
        self.assertEqual(len(table.splitlines()), 2, table)
        for raw in ["\x1b", "\x07", "\r"]:
            self.assertNotIn(raw, table)
        self.assertIn(source[:40], table)
        self.assertIn("bell\\x07 and\\x0d\\x0afake line", table)
        self.assertEqual(listed["reason"], "bell\x07 and\r\nfake line")

        # Unfrozen by the words as typed, or by the source as printed.
        closed = r"incident closed: \d{8}-\d{6}-[0-9a-f]{8}\n$"
        self.assertRegex(self.ctl_ok("unfreeze", f"header:X-PHP-Originating-Script={value}"),
                         "^" + re.escape(f"unfrozen: {source}\n") + closed)
        self.ctl_ok("freeze", f"header:X-PHP-Originating-Script={value}", "client=192.0.2.10")
        printed = self.frozen()[0]["source"]
        self.assertRegex(self.ctl_ok("unfreeze", *printed.split(" ")),
                         "^" + re.escape(f"unfrozen: {printed}\n") + closed)
        self.assertEqual(self.frozen(), [])

    # unfreeze --release-quarantined: a false positive's mail goes out.
    def start_target(self, refused=()):
        """A FakeReleaseTarget as the release target; the config keeps this
        test's Redis."""
        target = FakeReleaseTarget(refused)
        self.addCleanup(target.stop)
        self.use_config(release_port=target.port)
        self.use_redis(self.redis_port)
        return target

    def test_unfreeze_release_quarantined_releases_exactly_the_sources_entries(self):
        target = self.start_target()
        self.ctl_ok("freeze", "client=192.0.2.7")
        ids = self.add_entries(
            entry(client_address="192.0.2.7", sender="form@example.org", recipients=["a@example.net"],
                  cause="freeze:manual", frozen_source="client_address=192.0.2.7"),
            entry(client_address="192.0.2.8", sasl_user="bob", sender="bob@example.org",
                  recipients=["x@example.net"], cause="freeze:manual", frozen_source="sasl_user=bob"),
            # The same client, stopped by its score: not the freeze's doing.
            entry(client_address="192.0.2.7", sender="score@example.org", recipients=["s@example.net"]),
            # A freeze of a narrower source that includes the client.
            entry(client_address="192.0.2.7", sasl_user="bob", sender="both@example.org",
                  recipients=["y@example.net"], cause="freeze:manual",
                  frozen_source="client_address=192.0.2.7 sasl_user=bob"),
            entry(client_address="192.0.2.7", sender="form@example.org",
                  recipients=["b@example.net", "c@example.net"], cause="freeze:manual",
                  frozen_source="client_address=192.0.2.7"))
        proc = self.ctl("unfreeze", "client=192.0.2.7", "--release-quarantined")
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertEqual(proc.stderr, b"")
        lines = proc.stdout.decode().splitlines()
        self.assertEqual(lines[0], "unfrozen: client_address=192.0.2.7")
        self.assertRegex(lines[1], r"^incident closed: \d{8}-\d{6}-[0-9a-f]{8}$")
        self.assertEqual(lines[2], f"released {ids[0]} to 1 recipient (250 2.0.0 Ok: queued as FAKE1)")
        self.assertEqual(lines[3], f"released {ids[4]} to 2 recipients (250 2.0.0 Ok: queued as FAKE1)")
        self.assertEqual(lines[4], "released 2 of 2 entries quarantined from client_address=192.0.2.7")
        self.assertEqual(len(lines), 5, lines)

        expected = k_message.replace(b"\n", b"\r\n").replace(b"\r\n.a line", b"\r\n..a line")
        self.assertEqual(target.deliveries, [("form@example.org", ["a@example.net"], expected),
                                             ("form@example.org", ["b@example.net", "c@example.net"], expected)])
        self.assertEqual(self.listed_ids(), [ids[1], ids[2], ids[3]])
        self.assertEqual(self.frozen(), [])
        # Nothing left of it: a second run says so and releases nothing more.
        out = self.ctl_ok("unfreeze", "client=192.0.2.7", "--release-quarantined")
        self.assertEqual(out, "not frozen (any more): client_address=192.0.2.7; releasing its quarantined mail "
                              "all the same\nno quarantined mail from client_address=192.0.2.7\n")
        self.assertEqual(len(target.deliveries), 2)

    def test_without_release_quarantined_the_entries_stay(self):
        target = self.start_target()
        self.ctl_ok("freeze", "sasl=bob")
        ids = self.add_entries(entry(sasl_user="bob", frozen_source="sasl_user=bob"))
        self.assertRegex(self.ctl_ok("unfreeze", "sasl=bob"),
                         r"^unfrozen: sasl_user=bob\nincident closed: \d{8}-\d{6}-[0-9a-f]{8}\n$")
        self.assertEqual(self.listed_ids(), ids)
        self.assertEqual(target.deliveries, [])
        self.assertIn("--release-quarantined", self.ctl_ok("unfreeze", "--help"))

    def test_a_source_no_longer_frozen_is_said_so_and_its_mail_released_with_json_ids(self):
        target = self.start_target()
        ids = self.add_entries(entry(sasl_user="bob", sender="bob@example.org", frozen_source="sasl_user=bob"),
                               entry(sasl_user="bob", sender="bob@example.org"),
                               entry(sasl_user="bob", sender="bob@example.org", frozen_source="sasl_user=bob"))
        proc = self.ctl("unfreeze", "sasl=bob", "--release-quarantined", "--json")
        self.assertEqual(proc.returncode, 0, proc.stderr)
        outcome = json.loads(proc.stdout)
        self.assertEqual(outcome["unfrozen"], False)
        self.assertEqual(outcome["source"], "sasl_user=bob")
        self.assertEqual(outcome["released"], [ids[0], ids[2]])
        self.assertEqual(outcome["not_released"], [])
        self.assertEqual([o["id"] for o in outcome["outcomes"]], [ids[0], ids[2]])
        self.assertEqual([(s, r) for s, r, _ in target.deliveries],
                         [("bob@example.org", ["bob@example.net"])] * 2)
        self.assertEqual(self.listed_ids(), [ids[1]])

    def test_the_printed_spelling_finds_the_entries_after_the_freeze_is_gone(self):
        target = self.start_target()
        # As frozen prints it: %20 is a space, so typed words would mean "a%20b".
        source = "header:x-php-originating-script=12:contact%20form.php"
        [only] = self.add_entries(entry(frozen_source=source))
        self.assertIn(f"\nfrozen by:   {source}\n", self.ctl_ok("show", only))
        out = self.ctl_ok("unfreeze", source, "--release-quarantined")
        self.assertIn(f"released 1 of 1 entry quarantined from {source}\n", out)
        self.assertEqual(len(target.deliveries), 1)
        self.assertEqual(self.listed_ids(), [])

    def test_refused_recipients_stay_in_the_entry_and_the_exit_status_is_1(self):
        target = self.start_target(refused={"gone@example.net"})
        self.ctl_ok("freeze", "client=192.0.2.7")
        ids = self.add_entries(
            entry(recipients=["ok@example.net", "gone@example.net"], frozen_source="client_address=192.0.2.7"),
            entry(recipients=["fine@example.net"], frozen_source="client_address=192.0.2.7"))
        proc = self.ctl("unfreeze", "client=192.0.2.7", "--release-quarantined")
        self.assertEqual(proc.returncode, 1)
        stdout, stderr = proc.stdout.decode(), proc.stderr.decode()
        self.assertTrue(stdout.startswith("unfrozen: client_address=192.0.2.7\n"), stdout)
        self.assertIn("released 1 of 2 entries quarantined from client_address=192.0.2.7\n", stdout)
        self.assertIn(f"floodgatectl: {ids[0]}: refused <gone@example.net>: 550 5.1.1", stderr)
        self.assertIn("1 refused recipient kept in the entry", stderr)
        self.assertTrue(stderr.endswith(f"floodgatectl: 1 entry not released: {ids[0]}\n"), stderr)
        self.assertEqual([r for _, r, _ in target.deliveries], [["ok@example.net"], ["fine@example.net"]])
        [kept] = self.listed()
        self.assertEqual((kept["id"], kept["recipients"]), (ids[0], ["gone@example.net"]))
        self.assertEqual(self.frozen(), [])

    def test_hold_mode_entries_are_released_with_postsuper(self):
        self.use_config(release_port=self.unused_port(), mode="hold", postfix_config_directory="/etc/postfix-out")
        self.use_redis(self.redis_port)
        self.ctl_ok("freeze", "client=192.0.2.7")
        [held, other] = self.add_entries(
            entry(mode="hold", message="", queue_id="4XyZ12AbC", frozen_source="client_address=192.0.2.7"),
            entry(mode="hold", message="", queue_id="5XyZ12AbC"))
        proc = self.ctl("unfreeze", "client=192.0.2.7", "--release-quarantined", env=self.fake_postsuper(0))
        self.assertEqual(proc.returncode, 0, proc.stderr)
        with open(self.postsuper_log) as f:
            self.assertEqual(f.read().splitlines(), ["-c", "/etc/postfix-out", "-H", "4XyZ12AbC"])
        self.assertIn(f"released {held} from the hold queue (queue id 4XyZ12AbC)\n", proc.stdout.decode())
        self.assertEqual(self.listed_ids(), [other])

    def test_redis_down_releases_nothing(self):
        target = self.start_target()
        ids = self.add_entries(entry(frozen_source="client_address=192.0.2.7"))
        self.stop_redis()
        proc = self.ctl("unfreeze", "client=192.0.2.7", "--release-quarantined")
        self.assertEqual(proc.returncode, 1)
        self.assertIn("nothing was unfrozen", proc.stderr.decode())
        self.assertEqual(proc.stdout, b"")
        self.assertEqual(target.deliveries, [])
        self.assertEqual(self.listed_ids(), ids)

    def test_redis_down_is_an_error_that_says_so(self):
        self.stop_redis()
        for args in [["frozen"], ["frozen", "--json"], ["freeze", "client=192.0.2.7"],
                     ["unfreeze", "client=192.0.2.7"]]:
            with self.subTest(args=args):
                started = time.monotonic()
                proc = self.ctl(*args)
                self.assertEqual(proc.returncode, 1, proc.stderr)
                self.assertLess(time.monotonic() - started, 10)
                self.assertEqual(proc.stdout, b"")
                self.assertIn(f"floodgatectl: cannot reach Redis at 127.0.0.1:{self.redis_port}",
                              proc.stderr.decode())
        proc = self.ctl("freeze", "client=192.0.2.7")
        self.assertIn("nothing was frozen", proc.stderr.decode())


if __name__ == "__main__":
    unittest.main()
