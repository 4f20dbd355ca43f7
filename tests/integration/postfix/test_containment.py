"""Containment (issue 4) through a real Postfix: a source that trips a containment
rule is frozen in Redis, and from then on all its outbound mail gets the containment
action, whatever it scores, on every Floodgate instance sharing that Redis; ops freeze
and unfreeze sources by hand with floodgatectl.

The config is a copy of conf/floodgate.yaml with one rule added, the one a web form
trips: distinct recipients per PHP script (header X-PHP-Originating-Script + client
address) over 30 in 10 minutes. It is the containment rule, besides the shipped
same-content ones. A web form mailing "Dear <name>" with the name changed is one
content to the near-duplicate fingerprint, but the same-content rules wait for 100
recipients; the per-script rule trips first, at 30.

What a freeze promises (issue 4, conf/floodgate.yaml `containment:`): the message that
trips the rule gets the containment action, and so does every later message from the
source (all parts of the freeze match), its verdict giving the reason frozen(<rule>);
each daemon re-reads freezes from Redis every refresh_interval (1 s here); with
tempfail or reject, a source that can be matched without headers (a client address)
is refused at DATA, before the body is sent.
"""

import json
import os
import random
import re
import smtplib
import tempfile
import time
import unittest

from harness import FloodgateTestCase, distinct_text, floodgate_config, make_message, rcpt_list, wait_for

k_form_client = "10.2.2.2"
k_form_client_name = "web01.hosting.example"
k_form_sender = "www-data@web01.hosting.example"
k_form_script = "33:contact-form.php"
k_form_source = f"client_address={k_form_client} header:x-php-originating-script={k_form_script}"
k_form_rule = "distinct_rcpts_per_script"
k_form_threshold = 30  # distinct recipients in 10 minutes, the rule below
# The shipped containment rules on content (more than 100 recipients of one content).
k_same_content_rules = "same_content_rcpts_per_client|same_content_rcpts_per_user|same_content_rcpts_per_script"

k_other_client = "10.4.4.4"
k_other_sender = "alice@office.example"

# Longer than refresh_interval (1 s), with room for a loaded CI machine.
k_freeze_propagation = 3.0

k_names = ("Anna Berg", "Bruno Costa", "Chen Wei", "Dara Okafor", "Emil Novak", "Fatima Haddad",
           "Gustav Lind", "Hana Sato", "Ivan Petrov", "Julia Moreau")

k_form_text = ("Dear {name},\n\n"
               "your friend thought you would like this offer: our premium watches are 80% off\n"
               "this week only. Visit http://watches.example/offer to claim yours.\n\n"
               "Best regards,\nThe Watch Team\n")


def containment_config(action: str = "quarantine") -> str:
    """conf/floodgate.yaml plus the per-script distinct-recipients rule, which joins the
    containment rules; `action` is containment.action. Returns the path of the copy."""
    with open(floodgate_config(), encoding="utf-8") as f:
        text = f.read()
    edits = [
        ("rules:\n",
         "rules:\n"
         f"  - {{name: {k_form_rule}, signal: distinct_recipients, identity: php_script, "
         f"window: 10m, threshold: {k_form_threshold}, points: 20}}\n"),
        ("containment:\n  rules:\n", f"containment:\n  rules:\n    - {k_form_rule}\n"),
        ("  action: quarantine\n", f"  action: {action}\n"),
        # Not an edit: k_freeze_propagation assumes the shipped 1 s.
        ("  refresh_interval: 1s\n", "  refresh_interval: 1s\n"),
    ]
    for old, new in edits:
        # Anchored at a line start; every passage must be there exactly once.
        where = [m.start() for m in re.finditer("^" + re.escape(old), text, re.MULTILINE)]
        if len(where) != 1:
            raise AssertionError(f"conf/floodgate.yaml: want the passage {old!r} once at a line "
                                 f"start, found it {len(where)} times")
        text = text[:where[0]] + new + text[where[0] + len(old):]
    handle, path = tempfile.mkstemp(prefix="floodgate-containment-", suffix=".yaml")
    with os.fdopen(handle, "w") as f:
        f.write(text)
    return path


def form_message(seq: int, rcpts: list[str]) -> bytes:
    """The web form's mail: the same text, only the name changes."""
    return make_message(k_form_sender, rcpts, "A gift from a friend",
                        k_form_text.format(name=k_names[seq % len(k_names)] + f" {seq}"),
                        {"X-PHP-Originating-Script": k_form_script, "X-Test-Seq": f"form-{seq}"})


def freeze_lines(log: str) -> list[str]:
    return [line for line in log.splitlines() if re.search(r"\bfreeze source=", line)]


class ContainmentTestCase(FloodgateTestCase):
    def make_containment_world(self, action: str = "quarantine", **kw):
        config = containment_config(action)
        self.addCleanup(os.unlink, config)
        return self.make_world(config=config, **kw)

    def assert_ctl(self, proc, want_exit: int, what: str):
        self.assertEqual(proc.returncode, want_exit,
                         f"floodgatectl {what}: exit status got {proc.returncode}, want {want_exit}\n"
                         f"stdout: {proc.stdout}\nstderr: {proc.stderr}")

    def frozen(self, world) -> list[dict]:
        proc = world.floodgatectl("frozen", "--json")
        self.assert_ctl(proc, 0, "frozen --json")
        try:
            listing = json.loads(proc.stdout)
        except json.JSONDecodeError as e:
            self.fail(f"floodgatectl frozen --json: not JSON ({e}): {proc.stdout!r}")
        self.assertIsInstance(listing, list, f"frozen --json: got {proc.stdout}, want an array")
        return listing

    def send_form(self, world, seq: int, rcpts: list[str], listener: int = 0) -> str:
        """One web-form message; returns its queue id (the client sees 250 whether the
        message is delivered or quarantined)."""
        return world.send(k_form_client, k_form_sender, rcpts, form_message(seq, rcpts),
                          listener=listener, client_name=k_form_client_name)

    def trip_form_rule(self, world, listener: int = 0) -> int:
        """Sends web-form messages of 3 new recipients each through `listener` until
        the daemon behind it logs the freeze; returns how many it sent."""
        fg = world.floodgates[listener]
        for seq in range(k_form_threshold // 3 + 5):
            self.send_form(world, seq, rcpt_list(3, f"r{seq:03d}-"), listener=listener)
            if freeze_lines(fg.log_text()):
                return seq + 1
        self.fail(f"{fg.name} logged no freeze after {seq + 1} web-form messages of 3 recipients "
                  f"(rule {k_form_rule}, threshold {k_form_threshold})")

    def wait_freeze_propagated(self, since: float):
        """Sleeps until k_freeze_propagation seconds after `since` (time.monotonic())."""
        left = since + k_freeze_propagation - time.monotonic()
        if left > 0:
            time.sleep(left)

    def sink_seqs(self, world) -> list[str]:
        return [m.header("X-Test-Seq") or "" for m in world.sink.messages()]

    def open_data(self, world, client: str, sender: str, rcpt: str):
        """MAIL, RCPT, then the DATA command alone; returns (session, code, reply).
        The caller sends the body only on 354."""
        s = world.connect(client)
        code, resp = s.mail(sender)
        self.assertEqual(code, 250, f"MAIL FROM from {client}: got {code} {resp!r}, want 250")
        code, resp = s.rcpt(rcpt)
        self.assertEqual(code, 250, f"RCPT TO from {client}: got {code} {resp!r}, want 250")
        code, resp = s.docmd("DATA")
        return s, code, resp

    def finish_data(self, s, message: bytes) -> tuple[int, bytes]:
        """After a 354: the body (CRLF lines, as make_message writes it) and the dot."""
        data = message.replace(b"\r\n.", b"\r\n..")
        s.send(data + (b"" if data.endswith(b"\r\n") else b"\r\n") + b".\r\n")
        return s.getreply()


class WebFormFrozen(ContainmentTestCase):
    def test_web_form_is_frozen_after_threshold_and_other_client_is_untouched(self):
        world = self.make_containment_world(quarantine_mode="spool")
        rng = random.Random(4)

        def send_other(i: int) -> str:
            rcpts = [f"colleague{i}@partner.example", f"boss{i}@partner.example"]
            return world.send(k_other_client, k_other_sender, rcpts,
                              make_message(k_other_sender, rcpts, f"Notes {i}", distinct_text(rng),
                                           {"X-Test-Seq": f"other-{i}"}),
                              client_name="desk.office.example")

        # 40 web-form messages of 3 new recipients each (120 in all); after every
        # 8th-ish one, an ordinary message from the other client (15 in all).
        form_ids: list[str] = []
        other_ids: list[str] = []
        for seq in range(40):
            form_ids.append(self.send_form(world, seq, rcpt_list(3, f"r{seq:03d}-", "people.example")))
            while len(other_ids) < (seq + 1) * 15 // 40:
                other_ids.append(send_other(len(other_ids)))
        world.wait_settled(expect_sink=15)
        self.assert_alive(world)

        seqs = self.sink_seqs(world)
        delivered_form = sorted(int(s.removeprefix("form-")) for s in seqs if s.startswith("form-"))
        delivered_other = sorted(int(s.removeprefix("other-")) for s in seqs if s.startswith("other-"))
        self.assertEqual(delivered_other, list(range(15)),
                         f"other client's messages at the sink: got {delivered_other}, want all 15")

        form_rcpts = {r for m in world.sink.messages()
                      if (m.header("X-Test-Seq") or "").startswith("form-") for r in m.rcpts}
        self.assertLessEqual(len(form_rcpts), k_form_threshold,
                             f"web form: got {len(form_rcpts)} distinct recipients delivered, "
                             f"want at most the threshold {k_form_threshold}")
        self.assertGreater(len(delivered_form), 0, "web form: got nothing delivered, want the "
                           "messages before the threshold delivered")
        first_stopped = len(delivered_form)
        self.assertEqual(delivered_form, list(range(first_stopped)),
                         f"web form: delivered messages got {delivered_form}, want exactly those "
                         f"before the first stopped one (form-{first_stopped}), nothing after it")

        # Every later one is in the spool, quarantined by the freeze.
        spooled = {e["queue_id"] for e in world.quarantine_list()}
        stopped_ids = form_ids[first_stopped:]
        self.assertEqual(sorted(set(stopped_ids) - spooled), [],
                         f"web form messages form-{first_stopped}..form-39 not in the spool")
        self.assertEqual(sorted(spooled & set(other_ids)), [], "other client's messages in the spool")
        # The first stopped message is stopped by the script's freeze. Later ones may
        # be stopped by a freeze of the whole client too: the form's text with the
        # names changed is one content to the near-duplicate fingerprint, and past
        # 100 recipients the same-content rules freeze the client as well.
        by_freeze = re.compile(rf"frozen\(({k_form_rule}|{k_same_content_rules})\)")
        for seq, qid in enumerate(form_ids[first_stopped:], start=first_stopped):
            verdict = world.verdict_for(qid) or ""
            self.assertIn("action=quarantine", verdict, f"form-{seq} ({qid}) verdict: {verdict}")
            want = f"frozen({k_form_rule})" if seq == first_stopped else None
            if want:
                self.assertIn(want, verdict, f"form-{seq} ({qid}) verdict: {verdict}")
            else:
                self.assertRegex(verdict, by_freeze, f"form-{seq} ({qid}) verdict")

        lines = freeze_lines(world.floodgates[0].log_text())
        new_lines = [l for l in lines if re.search(r"\bnew=1\b", l)]
        self.assertGreaterEqual(len(new_lines), 1, "want a freeze ... new=1 line, got:\n" + "\n".join(lines))
        self.assertIn(f'source="{k_form_source}"', new_lines[0].lower())
        self.assertIn(f"rule={k_form_rule}", new_lines[0])
        self.assertIn("action=quarantine", new_lines[0])
        self.assertIn("ttl_s=3600", new_lines[0])
        for later in new_lines[1:]:
            self.assertRegex(later, rf"rule=({k_same_content_rules}) ", "a later freeze by another rule")
            self.assertIn(k_form_client, later)
        self.assertEqual([l for l in lines if k_other_client in l], [], "the other client was frozen")

        listing = self.frozen(world)
        self.assertEqual([(f.get("source", "").lower(), f.get("rule"), f.get("action")) for f in listing][:1],
                         [(k_form_source, k_form_rule, "quarantine")],
                         f"frozen --json: got {listing}")
        self.assertEqual(len(listing), len(new_lines), f"frozen --json: got {listing}")


class TwoDaemonsOneRedis(ContainmentTestCase):
    def test_freeze_made_by_one_daemon_is_enforced_by_the_other(self):
        world = self.make_containment_world(floodgates=2, quarantine_mode="spool")
        self.trip_form_rule(world, listener=0)
        frozen_at = time.monotonic()
        self.assertEqual(freeze_lines(world.floodgates[1].log_text()), [],
                         "daemon B logged a freeze: it never saw the rule trip")
        self.wait_freeze_propagated(frozen_at)

        # On its own this scores 0 (one recipient, new text, a source B has no counts for).
        rcpt = ["someone@elsewhere.example"]
        qid = world.send(k_form_client, k_form_sender, rcpt,
                         make_message(k_form_sender, rcpt, "Hello", "Something different entirely.\n",
                                      {"X-PHP-Originating-Script": k_form_script, "X-Test-Seq": "via-b"}),
                         listener=1, client_name=k_form_client_name)
        # Control: the same web server, another script, through B: not frozen.
        other_script = world.send(k_form_client, k_form_sender, rcpt,
                                  make_message(k_form_sender, rcpt, "Hello", "Another script.\n",
                                               {"X-PHP-Originating-Script": "33:newsletter.php",
                                                "X-Test-Seq": "via-b-other-script"}),
                                  listener=1, client_name=k_form_client_name)
        world.wait_settled()
        self.assert_alive(world)

        verdict = world.verdict_for(qid) or ""
        self.assertTrue(qid and qid in world.floodgates[1].log_text(),
                        f"{qid!r}: no verdict from daemon B (floodgate1)")
        self.assertIn("action=quarantine", verdict, f"daemon B's verdict for {qid}: {verdict}")
        self.assertIn(f"frozen({k_form_rule})", verdict, f"daemon B's verdict for {qid}: {verdict}")
        seqs = self.sink_seqs(world)
        self.assertNotIn("via-b", seqs, "the frozen source's message through daemon B reached the sink")
        self.assertIn(qid, {e["queue_id"] for e in world.quarantine_list()})
        self.assertIn("via-b-other-script", seqs,
                      f"another script of the same client ({other_script}) was stopped: "
                      f"{world.verdict_for(other_script)}")

        # Daemon B recorded its stopped message into the incident daemon A opened.
        def recorded_by_b():
            listing = json.loads(world.floodgatectl("incidents", "--json").stdout or "[]")
            if len(listing) != 1:
                return None
            incident = json.loads(world.floodgatectl("incident", listing[0]["id"], "--json").stdout)
            outcomes = {q["queue_id"]: q["outcome"] for q in incident["queue_ids"]}
            return incident if outcomes.get(qid) == "quarantined" else None
        try:
            wait_for(recorded_by_b, 10, "daemon B's message in daemon A's incident")
        except TimeoutError:
            self.fail(f"incidents: want one listing {qid} as quarantined, got "
                      f"{world.floodgatectl('incidents', '--json').stdout}")


class ManualFreeze(ContainmentTestCase):
    def test_manual_reject_freeze_refuses_at_data_and_unfreeze_lets_mail_through(self):
        world = self.make_containment_world()
        client, sender = "10.3.3.3", "shop@shop.example"
        rcpt = "customer@buyers.example"

        def message(tag: str) -> bytes:
            return make_message(sender, [rcpt], f"Order {tag}", f"Your order {tag} has shipped.\n",
                                {"X-Test-Seq": tag})

        world.send(client, sender, [rcpt], message("before"))
        proc = world.floodgatectl("freeze", "client=10.3.3.3", "--action", "reject", "--reason", "test")
        self.assert_ctl(proc, 0, "freeze client=10.3.3.3 --action reject --reason test")
        frozen_at = time.monotonic()
        listing = self.frozen(world)
        self.assertEqual([(f.get("source"), f.get("action"), f.get("reason")) for f in listing],
                         [("client_address=10.3.3.3", "reject", "test")], f"frozen --json: got {listing}")
        self.wait_freeze_propagated(frozen_at)

        s, code, resp = self.open_data(world, client, sender, rcpt)
        try:
            self.assertEqual(code, 550, f"DATA from the frozen client: got {code} {resp!r}, want 550 "
                             "before any body is sent")
            self.assertIn(b"5.7.1 Message refused by outbound policy", resp)
        finally:
            if code == 354:
                self.finish_data(s, message("frozen"))
            s.quit()
        world.send("10.4.4.4", "alice@office.example", [rcpt],
                   make_message("alice@office.example", [rcpt], "Lunch", "Lunch at noon?\n",
                                {"X-Test-Seq": "other-client"}))
        world.wait_settled(expect_sink=2)
        self.assertEqual(sorted(self.sink_seqs(world)), ["before", "other-client"])

        proc = world.floodgatectl("unfreeze", "client=10.3.3.3")
        self.assert_ctl(proc, 0, "unfreeze client=10.3.3.3")
        unfrozen_at = time.monotonic()
        self.assertEqual(self.frozen(world), [], "frozen --json after unfreeze")
        self.wait_freeze_propagated(unfrozen_at)
        try:
            world.send(client, sender, [rcpt], message("after"))
        except smtplib.SMTPException as e:
            self.fail(f"after unfreeze, mail from {client} got {e!r}, want it accepted")
        world.wait_settled(expect_sink=3)
        self.assertEqual(sorted(self.sink_seqs(world)), ["after", "before", "other-client"])
        self.assert_alive(world)


class TempfailFreeze(ContainmentTestCase):
    def test_tempfail_freeze_answers_451_at_data_without_the_body(self):
        # Trips the shipped same_content_rcpts_per_client (over 100 recipients of one
        # content from one client): a client-address freeze, decidable before headers.
        world = self.make_containment_world(action="tempfail")
        client, sender = "10.5.5.5", "mailer@bulk.example"
        body = "Limited offer: cheap pills at http://pills.example/now\n"
        codes = []
        for i in range(3):
            rcpts = rcpt_list(40, f"batch{i}-")
            try:
                world.send(client, sender, rcpts, make_message(sender, rcpts, "Offer", body,
                                                               {"X-Test-Seq": f"batch-{i}"}))
                codes.append(250)
            except smtplib.SMTPDataError as e:
                codes.append(e.smtp_code)
                self.assertIn(b"4.7.1", e.smtp_error)
        self.assertEqual(codes, [250, 250, 451],
                         "the third batch (recipients 81..120 of one content) trips the rule and "
                         "gets the containment action tempfail; got " + str(codes))
        frozen_at = time.monotonic()
        lines = freeze_lines(world.floodgates[0].log_text())
        self.assertEqual(len(lines), 1, "\n".join(lines))
        self.assertIn(f'source="client_address={client}"', lines[0])
        self.assertIn("action=tempfail", lines[0])
        # Made by this daemon: in force at once, but allow for the refresh too.
        self.wait_freeze_propagated(frozen_at)

        rcpt = "friend@friends.example"
        s, code, resp = self.open_data(world, client, sender, rcpt)
        try:
            self.assertEqual(code, 451, f"DATA from the frozen client: got {code} {resp!r}, want 451")
            self.assertIn(b"4.7.1 Too much mail from this source, try again later", resp)
        finally:
            if code == 354:
                self.finish_data(s, make_message(sender, [rcpt], "Hi", "A new text.\n"))
            s.quit()
        world.wait_settled()
        self.assertEqual(sorted(self.sink_seqs(world)), ["batch-0", "batch-1"])
        maillog = world.postfix.maillog_text()
        at_data = [l for l in maillog.splitlines()
                   if re.search(r"milter-reject: DATA from \S+\[" + re.escape(client) + r"\]: 451 4\.7\.1", l)]
        self.assertEqual(len(at_data), 1, "want one milter-reject at DATA in the maillog, got:\n"
                         + "\n".join(l for l in maillog.splitlines() if "milter-reject" in l))
        self.assertIn(f"to=<{rcpt}>", at_data[0])
        self.assert_alive(world)


class UnfreezeReleasesQuarantined(ContainmentTestCase):
    def test_unfreeze_release_quarantined_delivers_the_frozen_sources_mail(self):
        # A false positive: the form is frozen, ops lift the freeze and release
        # what it quarantined in one step.
        world = self.make_containment_world(quarantine_mode="spool")
        sent = self.trip_form_rule(world)
        tripped_at = time.monotonic()
        for seq in range(sent, sent + 3):  # stopped by the freeze
            self.send_form(world, seq, rcpt_list(3, f"r{seq:03d}-"))
        world.wait_settled()
        delivered_before = world.sink.count()
        seqs_before = set(self.sink_seqs(world))
        entries = world.quarantine_list()
        frozen_entries = [e for e in entries if e.get("frozen_source") == k_form_source]
        self.assertEqual(len(frozen_entries), 4, f"want the tripping message and 3 more: {entries}")
        self.wait_freeze_propagated(tripped_at)

        proc = world.floodgatectl("unfreeze", f"client={k_form_client}",
                                  f"header:X-PHP-Originating-Script={k_form_script}", "--release-quarantined")
        self.assert_ctl(proc, 0, "unfreeze --release-quarantined")
        self.assertIn("released 4 of 4", proc.stdout)
        world.wait_settled(expect_sink=delivered_before + 4)

        released = [m for m in world.sink.messages() if m.header("X-Test-Seq") not in seqs_before]
        self.assertEqual(sorted(m.header("X-Test-Seq") for m in released),
                         sorted(f"form-{seq}" for seq in range(sent - 1, sent + 3)))
        for m in released:
            self.assertEqual(len(m.rcpts), 3, m.rcpts)
        self.assertEqual(world.quarantine_list(), [], "entries left after the release")
        self.assertEqual(self.frozen(world), [], "the freeze is still listed")



class RefuseAtMailFrom(ContainmentTestCase):
    def test_with_refuse_at_mail_from_a_frozen_client_is_refused_at_mail_from(self):
        config = containment_config()
        self.addCleanup(os.unlink, config)
        with open(config, encoding="utf-8") as f:
            text = f.read()
        self.assertEqual(text.count("  refuse_at: data\n"), 1, "conf/floodgate.yaml: want refuse_at: data once")
        with open(config, "w", encoding="utf-8") as f:
            f.write(text.replace("  refuse_at: data\n", "  refuse_at: mail_from\n"))
        world = self.make_world(config=config)
        client, sender, rcpt = "10.3.3.5", "shop@shop.example", "customer@buyers.example"
        proc = world.floodgatectl("freeze", f"client={client}", "--action", "tempfail")
        self.assert_ctl(proc, 0, f"freeze client={client} --action tempfail")
        self.wait_freeze_propagated(time.monotonic())

        s = world.connect(client)
        try:
            code, resp = s.mail(sender)
            self.assertEqual(code, 451, f"MAIL FROM from the frozen client: got {code} {resp!r}, want 451")
            self.assertIn(b"4.7.1", resp)
        finally:
            s.close()
        # Another client is not asked to wait for anything but its own verdict.
        world.send("10.4.4.4", "alice@office.example", [rcpt],
                   make_message("alice@office.example", [rcpt], "Lunch", "Lunch at noon?\n",
                                {"X-Test-Seq": "other-client"}))
        world.wait_settled(expect_sink=1)
        self.assertEqual(self.sink_seqs(world), ["other-client"])
        self.assertRegex(world.floodgates[0].log_text(),
                         rf"action=tempfail .*client={re.escape(client)} .*frozen\(manual\).* stage=mail")
        self.assert_alive(world)


if __name__ == "__main__":
    unittest.main()
