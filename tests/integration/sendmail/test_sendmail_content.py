"""Content fingerprints through a real Sendmail (issue 8): the hash-buster campaign of
tests/integration/postfix/test_near_duplicates.py (another greeting, a random word
inserted, another tracking query in every copy), here as MIME -- multipart/alternative,
the text quoted-printable and the HTML base64 -- sent to Sendmail, which hands the
milter the headers and the body as it got them. The MIME-aware MinHash fingerprint
still sees one content, and the shipped same-content rule per client (more than 100
recipients in 10 minutes) stops the campaign, as it does behind Postfix."""

import base64
import os
import quopri
import random
import re
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from sendmail_harness import SendmailTestCase  # noqa: E402
from harness import rcpt_list, wait_for  # noqa: E402
from test_near_duplicates import variant  # noqa: E402

k_sender = "promo@bulk.example"
k_messages = 60  # 180 recipients in all


def mime_message(rcpts: list[str], text: str, seq: int) -> bytes:
    """`text` as multipart/alternative: quoted-printable plain text, base64 HTML."""
    html = "<html><body>" + "".join(f"<p>{p}</p>" for p in text.split("\n\n")) + "</body></html>"
    boundary = f"=_part_{seq:04d}"
    lines = [
        f"From: {k_sender}", "To: undisclosed-recipients:;", "Subject: Your account qualifies",
        "Date: Thu, 01 Jan 2026 00:00:00 +0000", f"Message-ID: <campaign-{seq}@bulk.example>",
        f"X-Test-Seq: spam-{seq}", "MIME-Version: 1.0",
        # A folded header, as Sendmail passes it on.
        f'Content-Type: multipart/alternative;\r\n\tboundary="{boundary}"', "",
        f"--{boundary}", "Content-Type: text/plain; charset=utf-8",
        "Content-Transfer-Encoding: quoted-printable", "",
        quopri.encodestring(text.encode()).decode().replace("\n", "\r\n"),
        f"--{boundary}", "Content-Type: text/html; charset=utf-8", "Content-Transfer-Encoding: base64", "",
        base64.encodebytes(html.encode()).decode().replace("\n", "\r\n"),
        f"--{boundary}--", "",
    ]
    return "\r\n".join(lines).encode()


class HashBusterCampaignAsMime(SendmailTestCase):
    def test_reworded_mime_copies_are_one_content_and_the_campaign_is_stopped(self):
        world = self.make_world(quarantine_mode="spool")
        rng = random.Random(5)
        qids = []
        for seq in range(k_messages):
            rcpts = rcpt_list(3, f"c{seq:03d}-", "targets.example")
            code, reply = world.send(k_sender, rcpts, mime_message(rcpts, variant(rng, seq), seq))
            self.assertEqual(code, 250, reply)
            qids.append(re.search(r"(\w{14}) Message accepted", reply).group(1))

        def all_decided():
            verdicts = [world.verdict_for(qid) for qid in qids]
            return verdicts if all(verdicts) else None
        verdicts = wait_for(all_decided, 30, "a verdict for every message")
        self.assertTrue(world.floodgate.alive())

        self.assertTrue(all("fp=minhash:" in v for v in verdicts), "want every verdict fp=minhash:...")
        digests = {re.search(r"\bfp=(\S+)", v).group(1) for v in verdicts}
        self.assertGreater(len(digests), 50, f"want > 50 distinct exact digests, got {len(digests)}")
        stopped = [i for i, v in enumerate(verdicts) if "action=quarantine" in v]
        self.assertTrue(stopped, "no message of the campaign was stopped:\n" + "\n".join(verdicts[-3:]))
        first = stopped[0]
        self.assertRegex(verdicts[first], r"same_content_rcpts_per_client=\d+>100 \(\+20\)")
        self.assertEqual(stopped, list(range(first, k_messages)),
                         "after the first stopped message every later one must be stopped too")
        self.assertLessEqual(3 * first, 100 + 30, f"the campaign was stopped only after {3 * first} recipients")
        world.wait_delivered(first)
        delivered = [m for m in world.sink.messages() if (m.header("X-Test-Seq") or "").startswith("spam-")]
        self.assertEqual(len(delivered), first)


if __name__ == "__main__":
    unittest.main()
