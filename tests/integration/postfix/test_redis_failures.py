"""Redis failing under load, and a Sentinel failover, with real Postfix (issue 6).

RedisKilledMidRun: thousands of messages flow through Postfix while the only
redis-server is SIGKILLed; the daemon stays up (same pid) and every message
Postfix accepted is accounted for: delivered at the sink or quarantined in the
spool (mail Postfix deferred is flushed with `postqueue -f` and must then be
delivered). Redis restarted on the same port gets counter keys again within
about redis.retry_interval.

SentinelFailover: the counter store reaches Redis through three sentinels
(master + replica); the master is SIGKILLed while mail flows; the sentinels
promote the replica and floodgate writes its counters there, without a
restart, and all mail is delivered.

Every wait polls with a deadline; figures (throughput, how long a failover
took to be followed) are printed for the report.
"""

from __future__ import annotations

import glob
import os
import random
import re
import shutil
import signal
import smtplib
import socket
import tempfile
import threading
import time
import unittest

import harness
from harness import FloodgateTestCase, make_message, rcpt_list, distinct_text, wait_for, run
from processes import Daemon, free_port, k_redis_bin, k_start_timeout

k_retry_interval_ms = 500
k_total_messages = 3000      # phase 1 of the kill test; more follow the restart
k_sender_threads = 6
k_block = 20                 # messages per SMTP session (one client address)
k_blocks_per_client = 4      # 80 messages per client: far below every per-client threshold
k_bulk_every = 15            # every 15th block is one 200-recipient message (quarantined)
k_follow_deadline = 15.0     # a failover must be followed within this (seconds)


# --------------------------------------------------------------------------- Redis protocol


class RedisError(Exception):
    pass


def _read_reply(f):
    line = f.readline()
    if not line.endswith(b"\r\n"):
        raise ConnectionError("connection closed mid-reply")
    kind, rest = line[:1], line[1:-2]
    if kind == b"+":
        return rest.decode()
    if kind == b"-":
        return RedisError(rest.decode())
    if kind == b":":
        return int(rest)
    if kind == b"$":
        n = int(rest)
        return None if n < 0 else f.read(n + 2)[:-2].decode("utf-8", "replace")
    if kind == b"*":
        n = int(rest)
        return None if n < 0 else [_read_reply(f) for _ in range(n)]
    raise ConnectionError(f"unexpected reply {line!r}")


def redis_call(port: int, *args: str, timeout: float = 5.0):
    """One command to 127.0.0.1:port; the decoded reply (a RedisError for -ERR)."""
    payload = f"*{len(args)}\r\n" + "".join(f"${len(a.encode())}\r\n{a}\r\n" for a in args)
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(payload.encode())
        with s.makefile("rb") as f:
            return _read_reply(f)


def redis_answers(port: int) -> bool:
    try:
        return redis_call(port, "PING", timeout=0.5) == "PONG"
    except OSError:
        return False


def dbsize(port: int) -> int:
    return redis_call(port, "DBSIZE")


def role(port: int) -> str:
    try:
        reply = redis_call(port, "ROLE", timeout=1.0)
    except OSError:
        return ""
    return reply[0] if isinstance(reply, list) and reply else ""


def fields(flat: list) -> dict:
    """A flat [name, value, name, value...] reply (SENTINEL replicas entries) as a dict."""
    return dict(zip(flat[0::2], flat[1::2]))


class RedisProcess(Daemon):
    """A redis-server on a given port (the same port after a kill), optionally a
    replica or a sentinel. A sentinel's config file must be writable: it is in `dir`."""

    def __init__(self, name: str, dir: str, port: int, extra: list[str] | None = None,
                 sentinel_config: str | None = None):
        os.makedirs(dir, exist_ok=True)
        self.port = port
        argv = [k_redis_bin]
        if sentinel_config is not None:
            config = os.path.join(dir, "sentinel.conf")
            with open(config, "w", encoding="utf-8") as f:
                f.write(sentinel_config)
            argv += [config, "--sentinel"]
        argv += ["--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                 "--dir", dir, *(extra or [])]
        super().__init__(name, argv, os.path.join(dir, f"{name}.log"))
        wait_for(lambda: redis_answers(port) or self._dead(), k_start_timeout, name)

    def _dead(self):
        if not self.alive():
            raise RuntimeError(f"{self.name} died:\n{self.log_text()}")
        return False

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)


# --------------------------------------------------------------------------- mail


class MailFlow:
    """Sender threads sending distinct messages, one client address per few
    sessions, until `limit` messages were tried or stop() is called. Records the
    Message-ID of every message Postfix accepted (250) and refused."""

    def __init__(self, world: harness.PostfixWorld, tag: str, limit: int | None,
                 threads: int = k_sender_threads, first_block: int = 0):
        self.world = world
        self.tag = tag
        self.limit = limit
        self.accepted: list[str] = []
        self.refused: dict[str, str] = {}
        self.bulk: list[str] = []
        self.errors: list[str] = []
        self._lock = threading.Lock()
        self._next_block = first_block
        self._tried = 0
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]
        self.started = time.monotonic()
        for t in self._threads:
            t.start()

    def stop(self):
        self._stop.set()

    def join(self, timeout: float):
        deadline = time.monotonic() + timeout
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))
        if any(t.is_alive() for t in self._threads):
            raise AssertionError(f"senders still running after {timeout:.0f}s "
                                 f"({len(self.accepted)} accepted)")
        self.elapsed = time.monotonic() - self.started

    def count(self) -> int:
        with self._lock:
            return len(self.accepted)

    def _take_block(self) -> int | None:
        with self._lock:
            if self._stop.is_set() or (self.limit is not None and self._tried >= self.limit):
                return None
            block = self._next_block
            self._next_block += 1
            self._tried += 1 if block % k_bulk_every == 7 else k_block
            return block

    def _run(self):
        while (block := self._take_block()) is not None:
            try:
                self._send_block(block)
            except Exception as e:  # noqa: BLE001 - recorded, the test fails on it
                with self._lock:
                    self.errors.append(f"block {block}: {type(e).__name__}: {e}")

    def _send_block(self, block: int):
        if block % k_bulk_every == 7:
            # A 200-recipient message from a client of its own: quarantined by
            # rcpts_per_msg_high, whatever the counters say.
            client = f"10.99.{block // 250 % 250}.{block % 250 + 1}"
            ids = [f"{self.tag}.{block}.bulk"]
            rcpts = [rcpt_list(200, f"b{block}-")]
        else:
            c = block // k_blocks_per_client
            client = f"10.77.{c // 250 % 250}.{c % 250 + 1}"
            ids = [f"{self.tag}.{block}.{i}" for i in range(k_block)]
            rcpts = [[f"r{block}-{i}@friends.example"] for i in range(k_block)]
        session = self.world.connect(client, f"c{block}.example", timeout=60)
        try:
            for message_id, to in zip(ids, rcpts):
                body = distinct_text(random.Random(message_id))
                message = make_message(f"s{block}@clients.example", to, f"note {message_id}", body,
                                       {"Message-ID": f"<{message_id}@harness.test>"})
                try:
                    harness.send_on(session, f"s{block}@clients.example", to, message)
                except smtplib.SMTPResponseException as e:
                    with self._lock:
                        self.refused[message_id] = f"{e.smtp_code} {e.smtp_error!r}"
                    continue
                with self._lock:
                    self.accepted.append(message_id)
                    if len(to) > 1:
                        self.bulk.append(message_id)
        finally:
            try:
                session.quit()
            except smtplib.SMTPException:
                session.close()


k_message_id = re.compile(rb"^Message-ID:\s*<([^>@]+)@harness\.test>", re.IGNORECASE | re.MULTILINE)


def message_ids_in(paths: list[str]) -> list[str]:
    """The harness Message-IDs in these files (sink dumps or spool entries), one per file."""
    ids = []
    for path in paths:
        with open(path, "rb") as f:
            found = k_message_id.search(f.read(256 * 1024))
        if found:
            ids.append(found.group(1).decode())
    return ids


def flush_deferred_and_settle(world: harness.PostfixWorld) -> int:
    """Waits for Postfix to finish what is in flight; mail it deferred (a
    tempfail while Redis went away) is flushed with postqueue -f and must then
    be delivered. Returns how many were deferred."""
    busy = ("incoming", "active", "maildrop")
    wait_for(lambda: not any(world.postfix.queue_names().get(n, 0) for n in busy),
             harness.k_settle_timeout, "Postfix to finish the mail in flight", interval=0.2)
    deferred = world.postfix.queue_names().get("deferred", 0)
    if deferred:
        run([harness.k_postqueue_bin, "-c", world.postfix.config_dir, "-f"])
    world.wait_settled()
    return deferred


def with_redis_lines(config_text: str, lines: list[str]) -> str:
    """config_text with `lines` (already indented under redis:) replacing the
    keys of the same names in its top-level redis: section, or added to it."""
    names = {l.strip().split(":", 1)[0] for l in lines}
    out, in_redis, skipping_nested = [], False, False
    for line in config_text.splitlines(keepends=True):
        if line.startswith("redis:"):
            out.append(line)
            out.extend(l + "\n" for l in lines)
            in_redis = True
            continue
        if in_redis and line[:1] not in (" ", "\t", "\n", "\r", ""):
            in_redis = False
        if in_redis:
            key = line.strip().split(":", 1)[0]
            if line.startswith("  ") and not line.startswith("   ") and key in names:
                skipping_nested = True
                continue
            if skipping_nested and line.startswith("    "):
                continue
            skipping_nested = False
        out.append(line)
    return "".join(out)


class RedisFailureTestCase(FloodgateTestCase):
    def write_config(self, redis_lines: list[str]) -> str:
        dir = tempfile.mkdtemp(prefix="floodgate-redis-failures-")
        self.addCleanup(shutil.rmtree, dir, True)
        path = os.path.join(dir, "floodgate.yaml")
        with open(harness.floodgate_config(), encoding="utf-8") as f:
            text = with_redis_lines(f.read(), redis_lines)
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        return path

    def account(self, world: harness.PostfixWorld, flows: list[MailFlow]) -> tuple[int, int, int]:
        """Asserts every accepted message was delivered exactly once or quarantined;
        returns (accepted, delivered, quarantined)."""
        accepted = [m for flow in flows for m in flow.accepted]
        refused = {k: v for flow in flows for k, v in flow.refused.items()}
        errors = [e for flow in flows for e in flow.errors]
        delivered = message_ids_in(world.sink.files())
        quarantined = message_ids_in(world.spool_entry_files())
        accepted_set, delivered_set, quarantined_set = set(accepted), set(delivered), set(quarantined)
        lost = accepted_set - delivered_set - quarantined_set
        both = delivered_set & quarantined_set
        twice = len(delivered) - len(delivered_set)
        breakdown = (f"accepted={len(accepted)} delivered={len(delivered_set)} "
                     f"quarantined={len(quarantined_set)} lost={len(lost)} (e.g. {sorted(lost)[:5]}) "
                     f"delivered_and_quarantined={len(both)} delivered_twice={twice} "
                     f"refused={len(refused)} (e.g. {list(refused.items())[:3]}) "
                     f"sender_errors={errors[:3]} queue={world.postfix.queue_names()}")
        self.assertEqual(errors, [], breakdown)
        self.assertEqual(refused, {}, breakdown)
        self.assertEqual(len(delivered_set) + len(quarantined_set), len(accepted), breakdown)
        self.assertEqual((lost, both, twice), (set(), set(), 0), breakdown)
        print(f"\naccounting: {breakdown}")
        return len(accepted), len(delivered_set), len(quarantined_set)


# --------------------------------------------------------------------------- tests


class RedisKilledMidRun(RedisFailureTestCase):
    def test_redis_killed_mid_run_daemon_stays_up_nothing_lost_and_counting_resumes(self):
        config = self.write_config([f"  retry_interval: {k_retry_interval_ms}ms"])
        world = self.make_world(config=config, quarantine_mode="spool")
        fg = world.floodgates[0]
        pid = fg.pid
        redis_port = world.redis.port
        redis_dir = os.path.join(world.dir, "redis-again")

        flow = MailFlow(world, "kill", k_total_messages)
        wait_for(lambda: flow.count() >= k_total_messages // 3 or flow.errors, 60,
                 "a third of the messages to be accepted")
        self.assertGreater(dbsize(redis_port), 0, "no counter keys in Redis before the kill")
        world.redis.proc.send_signal(signal.SIGKILL)
        world.redis.proc.wait(timeout=10)
        accepted_at_kill = flow.count()
        flow.join(90)
        print(f"\nphase 1: {len(flow.accepted)} accepted in {flow.elapsed:.1f}s "
              f"({len(flow.accepted) / flow.elapsed:.0f} msg/s), Redis killed after {accepted_at_kill}")
        self.assertGreaterEqual(len(flow.accepted) - accepted_at_kill, k_total_messages // 3,
                                "too few messages went through after the kill to show anything")
        self.assertTrue(fg.alive(), f"floodgate died: {fg.proc.returncode}")
        self.assertEqual(fg.pid, pid)
        deferred = flush_deferred_and_settle(world)
        print(f"deferred then flushed: {deferred}")
        self.account(world, [flow])

        # Redis back on the same port, empty: counting resumes within about
        # retry_interval of mail arriving (plus one message's way through Postfix).
        restarted = RedisProcess("redis-again", redis_dir, redis_port)
        world.daemons.append(restarted)
        started = time.monotonic()
        more = MailFlow(world, "after", None, threads=2, first_block=100_000)
        try:
            wait_for(lambda: dbsize(redis_port) > 0 or more.errors, k_retry_interval_ms / 1000 + 5.0,
                     "counter keys in the restarted Redis")
            resumed = time.monotonic() - started
            keys_then = dbsize(redis_port)
            wait_for(lambda: dbsize(redis_port) > keys_then or more.errors, 10.0,
                     "the counter keys to keep growing")
        finally:
            more.stop()
            more.join(60)
        print(f"restarted Redis got counter keys {resumed * 1000:.0f} ms after it answered "
              f"(retry_interval {k_retry_interval_ms} ms); {dbsize(redis_port)} keys now")
        self.assertTrue(fg.alive())
        self.assertEqual(fg.pid, pid)
        self.assertTrue(fg.accepts(), "floodgate no longer accepts milter connections")
        flush_deferred_and_settle(world)
        self.account(world, [flow, more])


class SentinelFailover(RedisFailureTestCase):
    master_name = "fgmaster"

    def start_sentinel_group(self) -> tuple[RedisProcess, RedisProcess, list[RedisProcess]]:
        dir = tempfile.mkdtemp(prefix="floodgate-sentinel-")
        os.chmod(dir, 0o755)
        self.addCleanup(shutil.rmtree, dir, True)
        processes: list[RedisProcess] = []

        def stop_all():
            for p in reversed(processes):
                p.stop()
        self.addCleanup(stop_all)
        master = RedisProcess("master", os.path.join(dir, "master"), free_port())
        processes.append(master)
        replica = RedisProcess("replica", os.path.join(dir, "replica"), free_port(),
                               ["--replicaof", "127.0.0.1", str(master.port)])
        processes.append(replica)
        sentinels = []
        for i in range(3):
            conf = (f"sentinel monitor {self.master_name} 127.0.0.1 {master.port} 2\n"
                    f"sentinel down-after-milliseconds {self.master_name} 1000\n"
                    f"sentinel failover-timeout {self.master_name} 5000\n")
            s = RedisProcess(f"sentinel{i}", os.path.join(dir, f"sentinel{i}"), free_port(),
                             sentinel_config=conf)
            processes.append(s)
            sentinels.append(s)

        def ready():
            info = redis_call(replica.port, "INFO", "replication")
            if "master_link_status:up" not in info:
                return False
            for s in sentinels:
                replicas = redis_call(s.port, "SENTINEL", "replicas", self.master_name)
                others = redis_call(s.port, "SENTINEL", "sentinels", self.master_name)
                if len(replicas) != 1 or fields(replicas[0]).get("flags") != "slave" or len(others) != 2:
                    return False
            return True
        wait_for(ready, 30, "the sentinels to know the replica and each other", interval=0.2)
        return master, replica, sentinels

    def test_sentinel_failover_while_mail_flows_counters_follow_the_new_master(self):
        master, replica, sentinels = self.start_sentinel_group()
        addresses = ", ".join(f'"127.0.0.1:{s.port}"' for s in sentinels)
        config = self.write_config([
            f"  retry_interval: {k_retry_interval_ms}ms",
            "  sentinel:",
            f"    master_name: {self.master_name}",
            f"    addresses: [{addresses}]",
        ])
        world = self.make_world(config=config, quarantine_mode="spool")
        fg = world.floodgates[0]
        pid = fg.pid

        flow = MailFlow(world, "failover", None)
        try:
            wait_for(lambda: dbsize(master.port) > 0 or flow.errors, 30,
                     "counter keys on the master the sentinels name")
            wait_for(lambda: flow.count() >= 500 or flow.errors, 60, "500 messages accepted")
            killed_at = time.monotonic()
            accepted_at_kill = flow.count()
            master.kill()
            wait_for(lambda: role(replica.port) == "master", 30, "the sentinels to promote the replica")
            promoted = time.monotonic() - killed_at
            keys_at_promotion = dbsize(replica.port)
            wait_for(lambda: dbsize(replica.port) > keys_at_promotion or flow.errors, k_follow_deadline,
                     "floodgate to write counter keys on the promoted replica")
            followed = time.monotonic() - killed_at
            wait_for(lambda: flow.count() >= accepted_at_kill + 500 or flow.errors, 60,
                     "500 more messages after the failover")
        finally:
            flow.stop()
            flow.join(90)
        named = redis_call(sentinels[0].port, "SENTINEL", "get-master-addr-by-name", self.master_name)
        self.assertEqual(named, ["127.0.0.1", str(replica.port)])
        print(f"\nmaster killed after {accepted_at_kill} messages; replica promoted after "
              f"{promoted * 1000:.0f} ms; floodgate wrote to it {followed * 1000:.0f} ms after the kill; "
              f"{dbsize(replica.port)} keys on the new master; "
              f"{len(flow.accepted)} accepted in {flow.elapsed:.1f}s")
        self.assertTrue(fg.alive(), f"floodgate died: {fg.proc.returncode}")
        self.assertEqual(fg.pid, pid)
        flush_deferred_and_settle(world)
        self.account(world, [flow])


if __name__ == "__main__":
    unittest.main()
