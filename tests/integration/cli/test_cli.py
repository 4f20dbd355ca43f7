"""The floodgate program's flags and exit statuses, run as a user would run it."""

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import unittest

k_binary = os.environ["FLOODGATE_BINARY"]
k_config = os.environ["FLOODGATE_CONFIG"]


def run(*args, timeout=20):
    return subprocess.run([k_binary, *args], capture_output=True, text=True, timeout=timeout)


def daemon_config_text(workdir: str) -> str:
    """The shipped config for a daemon started by a test: its spool under
    workdir (a test must not create /var/spool/floodgate) and no metrics
    endpoint (the shipped 127.0.0.1:9890 would be fought over by parallel tests)."""
    with open(k_config) as f:
        text = f.read()
    for old, new in (("  spool_directory: /var/spool/floodgate/quarantine\n", f"  spool_directory: {workdir}/spool\n"),
                     ("\nmetrics:\n  listen: 127.0.0.1:9890\n", "\nmetrics:\n  listen: \"off\"\n")):
        if old not in text:
            raise AssertionError(f"conf/floodgate.yaml no longer has {old!r}; update test_cli.py")
        text = text.replace(old, new)
    return text


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class CheckConfig(unittest.TestCase):
    def write_config(self, text):
        handle, path = tempfile.mkstemp(suffix=".yaml")
        with os.fdopen(handle, "w") as f:
            f.write(text)
        self.addCleanup(os.unlink, path)
        return path

    def test_shipped_config_is_valid(self):
        result = run("--config", k_config, "--check-config")
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn("configuration OK", result.stdout)

    def test_every_error_is_printed_with_file_line_and_key(self):
        path = self.write_config(
            "redis:\n"
            "  command_timeout: 5 minutes\n"          # line 2
            "rules:\n"
            "  - name: r1\n"
            "    signal: messages\n"
            "    identity: nobody\n"                  # line 6
            "    threshold: 10\n"
            "    points: 5\n"
            "colour: blue\n")                         # line 9
        result = run("--config", path, "--check-config")
        self.assertEqual(result.returncode, 1, result.stdout)
        lines = result.stderr.strip().splitlines()
        self.assertEqual(len(lines), 3, result.stderr)
        self.assertTrue(lines[0].startswith(f"{path}:2: redis.command_timeout: "), lines[0])
        self.assertTrue(lines[1].startswith(f"{path}:6: rules[0].identity: "), lines[1])
        self.assertIn("nobody", lines[1])
        self.assertTrue(lines[2].startswith(f"{path}:9: colour: "), lines[2])

    def test_bad_redis_url_on_the_command_line_is_reported(self):
        result = run("--config", k_config, "--redis", "redis://127.0.0.1:99999/0", "--check-config")
        self.assertEqual(result.returncode, 1)
        self.assertEqual(result.stderr,
                         f"{k_config}: --redis: redis URL 'redis://127.0.0.1:99999/0': port must be 1-65535\n")

    def test_bad_redis_url_in_the_file_is_reported_at_its_line(self):
        with open(k_config) as f:
            lines = f.read().splitlines(keepends=True)
        url_line = next(i for i, line in enumerate(lines, 1) if line.startswith("  url: redis://"))
        lines[url_line - 1] = "  url: redis://127.0.0.1:0/0\n"
        path = self.write_config("".join(lines))
        result = run("--config", path, "--check-config")
        self.assertEqual(result.returncode, 1)
        self.assertEqual(result.stderr,
                         f"{path}:{url_line}: redis.url: redis URL 'redis://127.0.0.1:0/0': port must be 1-65535\n")

    def test_bad_socket_spec_is_reported(self):
        result = run("--config", k_config, "--socket", "tcp://localhost:8890", "--check-config")
        self.assertEqual(result.returncode, 1)
        self.assertIn(f"{k_config}: --socket: ", result.stderr)

    def test_missing_config_file_is_an_error_naming_it(self):
        result = run("--config", "/nonexistent/floodgate.yaml", "--check-config")
        self.assertEqual(result.returncode, 1)
        self.assertIn("/nonexistent/floodgate.yaml", result.stderr)

    def test_unreadable_password_file_is_reported(self):
        with open(k_config) as f:
            text = f.read().replace("  url: redis://127.0.0.1:6379/0\n",
                                    "  url: redis://127.0.0.1:6379/0\n  password_file: /nonexistent/redis.pw\n")
        result = run("--config", self.write_config(text), "--check-config")
        self.assertEqual(result.returncode, 1)
        self.assertIn("redis.password_file", result.stderr)


    def test_a_world_writable_config_file_is_refused(self):
        with open(k_config) as f:
            path = self.write_config(f.read())
        os.chmod(path, 0o666)
        result = run("--config", path, "--check-config")
        self.assertEqual(result.returncode, 1, result.stdout)
        self.assertEqual(result.stderr.strip(), f"{path}: the configuration file is writable by everyone; "
                                                "chmod o-w it (Floodgate will not run with it)")
        os.chmod(path, 0o644)
        self.assertEqual(run("--config", path, "--check-config").returncode, 0)

    def test_a_world_writable_spool_directory_is_refused_at_its_line(self):
        spool = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, spool)
        os.chmod(spool, 0o777)
        with open(k_config) as f:
            text = f.read()
        self.assertEqual(text.count("  spool_directory: /var/spool/floodgate/quarantine\n"), 1)
        text = text.replace("  spool_directory: /var/spool/floodgate/quarantine\n", f"  spool_directory: {spool}\n")
        path = self.write_config(text)
        line = text[:text.index(f"spool_directory: {spool}")].count("\n") + 1
        result = run("--config", path, "--check-config")
        self.assertEqual(result.returncode, 1, result.stdout)
        self.assertEqual(result.stderr.strip(), f'{path}:{line}: quarantine.spool_directory: "{spool}" is writable '
                                                "by everyone; chmod o-w it (Floodgate will not run with it)")
        os.chmod(spool, 0o700)
        self.assertEqual(run("--config", path, "--check-config").returncode, 0)


class Flags(unittest.TestCase):
    def test_version(self):
        result = run("--version")
        self.assertEqual(result.returncode, 0)
        self.assertRegex(result.stdout, r"^floodgate \d+\.\d+\.\d+\n$")

    def test_unknown_flag_is_a_usage_error(self):
        result = run("--frobnicate")
        self.assertEqual(result.returncode, 2)
        self.assertIn("frobnicate", result.stderr)


class Daemon(unittest.TestCase):
    def start(self, port, redis_port):
        # The shipped config with the quarantine spool in a temporary
        # directory: a test must not create /var/spool/floodgate.
        workdir = tempfile.mkdtemp(prefix="floodgate-cli-")
        self.addCleanup(shutil.rmtree, workdir, True)
        config = os.path.join(workdir, "floodgate.yaml")
        with open(config, "w") as f:
            f.write(daemon_config_text(workdir))
        return subprocess.Popen(
            [k_binary, "--config", config, "--socket", f"inet:{port}@127.0.0.1",
             "--redis", f"redis://127.0.0.1:{redis_port}/0", "--foreground"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def wait_listening(self, port, deadline=10.0):
        end = time.monotonic() + deadline
        while time.monotonic() < end:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    return
            time.sleep(0.05)
        self.fail(f"floodgate did not listen on {port}")

    def test_sigterm_stops_the_daemon_cleanly(self):
        port = free_port()
        daemon = self.start(port, free_port())  # no Redis there: local counters
        try:
            self.wait_listening(port)
            daemon.send_signal(signal.SIGTERM)
            output, _ = daemon.communicate(timeout=15)
        finally:
            if daemon.poll() is None:
                daemon.kill()
        self.assertEqual(daemon.returncode, 0, output)
        self.assertIn("redis=unreachable", output)
        self.assertIn(f"listening on inet:{port}@127.0.0.1", output)
        self.assertIn("floodgate stopped", output)

    def test_socket_already_in_use_is_a_clear_startup_error(self):
        with socket.socket() as busy:
            busy.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            busy.bind(("127.0.0.1", 0))
            busy.listen()
            port = busy.getsockname()[1]
            daemon = self.start(port, free_port())
            try:
                output, _ = daemon.communicate(timeout=30)
            finally:
                if daemon.poll() is None:
                    daemon.kill()
        self.assertEqual(daemon.returncode, 1, output)
        self.assertIn(f"cannot listen on inet:{port}@127.0.0.1", output)


class Syslog(unittest.TestCase):
    """Without --foreground the log goes to syslog, mail facility. The daemon runs
    in a private mount namespace whose /dev/log is this test's datagram socket, so
    the test sees exactly what syslog(3) sends, and the machine's logging is left
    alone (there may be no syslog daemon at all)."""

    def test_without_foreground_the_log_goes_to_syslog_with_the_mail_facility(self):
        workdir = tempfile.mkdtemp(prefix="floodgate-syslog-")
        self.addCleanup(shutil.rmtree, workdir, True)
        config = os.path.join(workdir, "floodgate.yaml")
        with open(config, "w") as f:
            f.write(daemon_config_text(workdir))
        log_socket = os.path.join(workdir, "log")
        receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.addCleanup(receiver.close)
        receiver.bind(log_socket)
        receiver.settimeout(10)
        port = free_port()
        # The real /dev stays reachable under workdir/dev for the nodes a process
        # needs; /dev itself becomes a tmpfs holding those and our /dev/log.
        script = (
            "set -e; mkdir -p \"$W/realdev\"; mount --bind /dev \"$W/realdev\"; mount -t tmpfs none /dev; "
            "for n in null zero random urandom; do touch /dev/$n; mount --bind \"$W/realdev/$n\" /dev/$n; done; "
            "touch /dev/log; mount --bind \"$W/log\" /dev/log; "
            "exec \"$FG\" --config \"$W/floodgate.yaml\" --socket inet:$PORT@127.0.0.1 --redis redis://127.0.0.1:1/0"
        )
        daemon = subprocess.Popen(
            ["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
            env={**os.environ, "W": workdir, "FG": k_binary, "PORT": str(port)},
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            lines = []
            while not any("listening on" in l for l in lines):
                lines.append(receiver.recv(65536).decode("utf-8", "replace"))
            daemon.send_signal(signal.SIGTERM)
            while not any("floodgate stopped" in l for l in lines):
                lines.append(receiver.recv(65536).decode("utf-8", "replace"))
            output, _ = daemon.communicate(timeout=15)
        finally:
            if daemon.poll() is None:
                daemon.kill()
                daemon.communicate()
        self.assertEqual(daemon.returncode, 0, output)
        self.assertEqual(output, "", "nothing on stderr when logging to syslog")
        listening = next(l for l in lines if "listening on" in l)
        # <PRI> = facility * 8 + severity: mail (2) and info (6) make 22.
        self.assertRegex(listening, r"^<22>.*floodgate\[\d+\]: info floodgate [\d.]+ listening on inet:")
        warning = [l for l in lines if "redis=unreachable" in l]
        self.assertTrue(warning, lines)


class Retention(unittest.TestCase):
    """The daemon purges quarantine entries older than `retention` by itself,
    every `purge_interval`, and keeps the younger ones."""

    def test_daemon_purges_entries_past_retention_while_running(self):
        workdir = tempfile.mkdtemp(prefix="floodgate-retention-")
        self.addCleanup(shutil.rmtree, workdir, True)
        spool = os.path.join(workdir, "spool")
        text = daemon_config_text(workdir)
        for old, new in (("  retention: 14d\n", "  retention: 1h\n"),
                         ("  purge_interval: 1h\n", "  purge_interval: 1s\n")):
            self.assertIn(old, text)
            text = text.replace(old, new)
        config = os.path.join(workdir, "floodgate.yaml")
        with open(config, "w") as f:
            f.write(text)

        port = free_port()
        daemon = subprocess.Popen([k_binary, "--config", config, "--socket", f"inet:{port}@127.0.0.1",
                                   "--redis", f"redis://127.0.0.1:{free_port()}/0", "--foreground"],
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            Daemon.wait_listening(self, port)
            # Written after start, so only the periodic purge can remove them.
            entries = [{"sender": "old@example.com", "recipients": ["a@example.net"], "age_seconds": 7200,
                        "message": "Subject: old\r\n\r\nold\r\n"},
                       {"sender": "new@example.com", "recipients": ["b@example.net"], "age_seconds": 60,
                        "message": "Subject: new\r\n\r\nnew\r\n"}]
            made = subprocess.run([os.environ["MAKE_SPOOL_ENTRIES"], spool], input=json.dumps(entries),
                                  capture_output=True, text=True, timeout=20)
            self.assertEqual(made.returncode, 0, made.stderr)
            old_id, new_id = made.stdout.split()
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and os.path.exists(os.path.join(spool, old_id + ".fgq")):
                time.sleep(0.1)
            self.assertFalse(os.path.exists(os.path.join(spool, old_id + ".fgq")), "old entry not purged")
            self.assertTrue(os.path.exists(os.path.join(spool, new_id + ".fgq")), "young entry purged")
        finally:
            daemon.send_signal(signal.SIGTERM)
            output, _ = daemon.communicate(timeout=30)
        self.assertEqual(daemon.returncode, 0, output)
        self.assertIn("quarantine purged=1 older_than_s=3600", output)


k_examples = os.path.join(os.path.dirname(k_config), "examples")
k_example_message = ("From: {sender}\r\nTo: undisclosed-recipients:;\r\nSubject: Offer\r\n"
                     "X-PHP-Originating-Script: 33:contact.php\r\n\r\n"
                     "Dear friend, our premium watches are 80% off this week only. Visit the shop today "
                     "to claim yours before the offer ends on Sunday evening.\r\n")


class Examples(unittest.TestCase):
    """conf/examples: each policy passes --check-config, and gives what its comment
    says for a message that shows it (floodgatectl explain with a fresh store)."""

    def explain(self, example: str, rcpts: int, *envelope: str) -> dict:
        handle, path = tempfile.mkstemp(suffix=".eml")
        self.addCleanup(os.unlink, path)
        with os.fdopen(handle, "w") as f:
            f.write(k_example_message.format(sender="shop@example.com"))
        rcpt_args = [arg for i in range(rcpts) for arg in ("--rcpt", f"r{i}@people.example")]
        proc = subprocess.run([os.environ["FLOODGATECTL_BINARY"], "--config", os.path.join(k_examples, example),
                               "explain", path, *envelope, *rcpt_args, "--json"],
                              capture_output=True, text=True, timeout=60)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        return json.loads(proc.stdout)

    def test_every_example_passes_check_config(self):
        examples = sorted(f for f in os.listdir(k_examples) if f.endswith(".yaml") and "overrides" not in f)
        self.assertEqual(examples, ["corporate-submission.yaml", "relay-with-newsletters.yaml",
                                    "web-hosting-relay.yaml"])
        for example in examples:
            result = run("--config", os.path.join(k_examples, example), "--check-config")
            self.assertEqual(result.returncode, 0, f"{example}: {result.stdout}{result.stderr}")
            self.assertIn("configuration OK", result.stdout + result.stderr)

    def test_web_hosting_relay_quarantines_a_script_past_30_distinct_recipients(self):
        explained = self.explain("web-hosting-relay.yaml", 31, "--client", "10.20.0.5")
        self.assertEqual(explained["action"], "quarantine", explained["reasons"])
        self.assertIn("distinct_rcpts_per_script=31>30 (+40)", explained["reasons"])
        self.assertEqual(self.explain("web-hosting-relay.yaml", 3, "--client", "10.20.0.5")["score"], 0)

    def test_corporate_submission_tempfails_a_user_past_200_distinct_recipients(self):
        explained = self.explain("corporate-submission.yaml", 201, "--sasl", "alice")
        self.assertEqual(explained["action"], "tempfail", explained["reasons"])
        self.assertIn("distinct_rcpts_per_user=201>200 (+50)", explained["reasons"])
        self.assertEqual(self.explain("corporate-submission.yaml", 3, "--sasl", "alice")["score"], 0)

    def test_relay_with_newsletters_lets_the_list_server_send_what_stops_anyone_else(self):
        listserver = self.explain("relay-with-newsletters.yaml", 600, "--sasl", "listserver")
        self.assertEqual(listserver["action"], "accept", listserver["reasons"])
        other = self.explain("relay-with-newsletters.yaml", 600, "--sasl", "mallory")
        self.assertEqual(other["action"], "quarantine", other["reasons"])
        self.assertIn("same_content_rcpts_per_user=600>500 (+40)", other["reasons"])
        rules = {r["rule"]: r for r in listserver["rules"]}
        self.assertEqual(rules["same_content_rcpts_per_user"]["threshold"], 60000)
        self.assertTrue(rules["same_content_rcpts_per_user"]["threshold_override"])
        self.assertEqual(rules["msgs_per_user_monitor"]["mode"], "monitor")


if __name__ == "__main__":
    unittest.main()
