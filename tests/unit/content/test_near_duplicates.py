#!/usr/bin/env python3
"""Near-duplicate quality of the content fingerprint on the SpamAssassin corpus.

(a) Variant recall: spam messages are varied the way spammers vary a
    campaign (greeting and name, random words inserted, URL query strings,
    quoted-printable <-> base64, MIME boundaries, text <-> HTML alternative,
    and all of those at once); a variant "matches" its original when the two
    share an LSH band key (or, for texts too short for MinHash, the exact
    digest). Asserts at least MIN_RECALL of the variants match.
(b) False matches: across all pairs of distinct ham messages, asserts at most
    MAX_HAM_PAIR_RATE of the pairs match, and lists those that do so a person
    can judge whether they are real near-duplicates (list footers, quoted
    replies).
Both figures are printed for tracking. Messages without text to fingerprint
are counted and left out. Everything random uses SEED.

usage: test_near_duplicates.py --tool FINGERPRINT_TOOL --corpus DIR/package/data
"""

import argparse
import base64
import collections
import email
import email.policy
import html
import html.parser
import itertools
import json
import pathlib
import quopri
import random
import re
import subprocess
import sys
import tempfile

SEED = 20261127
SPAM_MESSAGES = 400
MIN_SPAM_MESSAGES = 300
MIN_HAM_MESSAGES = 2000
MIN_RECALL = 0.95
MAX_HAM_PAIR_RATE = 0.0001  # 0.01%

FIRST_NAMES = ["John", "Anna", "Maria", "Wei", "Olusegun", "Priya", "Jean-Luc", "Sven",
               "Fatima", "Carlos", "Yuki", "Dmitri", "Aoife", "Kwame", "Lena"]
LAST_NAMES = ["Smith", "Garcia", "Okafor", "Nakamura", "O'Brien", "Schmidt", "Rossi",
              "Kowalski", "Haddad", "Dubois"]


def load_folder(corpus, folder):
    """(name, raw bytes) of every message of a corpus folder, mbox From_ line
    removed. The JSON holds the text decoded; UTF-8 gives bytes back."""
    messages = []
    for path in sorted((corpus / folder).glob("*.json")):
        text = json.loads(path.read_text(encoding="utf-8"))["text"]
        if text.startswith("From "):
            text = text.split("\n", 1)[1] if "\n" in text else ""
        messages.append((f"{folder}/{path.name}", text.encode("utf-8")))
    return messages


def parse(raw):
    return email.message_from_bytes(raw, policy=email.policy.compat32)


def text_parts(message):
    parts = []
    for part in message.walk():
        if part.is_multipart() or part.get_content_maintype() != "text":
            continue
        if part.get_content_subtype() not in ("plain", "html"):
            continue
        if (part.get("Content-Disposition") or "").lower().startswith("attachment"):
            continue
        parts.append(part)
    return parts


def transfer_encoding(part):
    return (part.get("Content-Transfer-Encoding") or "7bit").strip().lower()


def get_text(part):
    # latin-1 maps bytes to code points one to one: any charset survives the
    # round trip through str unchanged.
    return (part.get_payload(decode=True) or b"").decode("latin-1")


def set_text(part, text, encoding=None):
    data = text.encode("latin-1")
    encoding = encoding or transfer_encoding(part)
    if encoding == "base64":
        payload = base64.encodebytes(data).decode("ascii")
    elif encoding == "quoted-printable" or not data.isascii():
        encoding = "quoted-printable"
        payload = quopri.encodestring(data).decode("ascii")
    else:
        encoding = "7bit"
        payload = text
    del part["Content-Transfer-Encoding"]
    part["Content-Transfer-Encoding"] = encoding
    part.set_payload(payload)


class VisibleText(html.parser.HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.chunks = []
        self.hidden = 0

    def handle_starttag(self, tag, attrs):
        if tag in ("script", "style"):
            self.hidden += 1
        if tag in ("br", "p", "div", "tr"):
            self.chunks.append("\n")

    def handle_endtag(self, tag):
        if tag in ("script", "style") and self.hidden:
            self.hidden -= 1

    def handle_data(self, data):
        if not self.hidden:
            self.chunks.append(data)


def html_to_text(markup):
    parser = VisibleText()
    try:
        parser.feed(markup)
        parser.close()
    except Exception:  # html.parser gives up on some spam; keep what it read
        pass
    text = re.sub(r"[ \t]+", " ", "".join(parser.chunks))
    # Character references beyond latin-1 ("&#8482;") become their UTF-8
    # bytes, as the rest of the text holds bytes as latin-1 code points.
    return "".join(c if ord(c) < 256 else c.encode("utf-8").decode("latin-1") for c in text)


def text_to_html(text):
    lines = "<br>\n".join(html.escape(line) for line in text.split("\n"))
    return f"<html><body>\n{lines}\n</body></html>\n"


def new_boundary(rng):
    return "----=_NextPart_%012x" % rng.getrandbits(48)


# --- the variations -----------------------------------------------------------

GREETING_LINE = re.compile(r"^\s*(dear|hi|hello|hey)\b[^\n]{0,60}\n", re.IGNORECASE)


def vary_greeting(message, rng, _words):
    name = rng.choice(FIRST_NAMES)
    if rng.random() < 0.5:
        name += " " + rng.choice(LAST_NAMES)
    greeting = rng.choice(["Dear {},", "Hi {},", "Hello {}!", "Dear {}:"]).format(name)
    for part in text_parts(message):
        text = get_text(part)
        if part.get_content_subtype() == "html":
            body = re.search(r"<body[^>]*>", text, re.IGNORECASE)
            at = body.end() if body else 0
            text = text[:at] + f"<p>{html.escape(greeting)}</p>" + text[at:]
        elif GREETING_LINE.match(text):
            text = GREETING_LINE.sub(greeting + "\n", text, count=1)
        else:
            text = greeting + "\n\n" + text
        set_text(part, text)
    return True


def insertion_points(text, is_html):
    if is_html:
        return [m.end() for m in re.finditer(r">(?=[^<\s])", text)] or [len(text)]
    return [m.start() for m in re.finditer(r" ", text)] or [len(text)]


def vary_random_words(message, rng, words):
    inserted = rng.sample(words, rng.randint(1, 10))
    for part in text_parts(message):
        text = get_text(part)
        points = insertion_points(text, part.get_content_subtype() == "html")
        for word in inserted:
            at = rng.choice(points)
            text = text[:at] + " " + word + " " + text[at:]
            points = [p + len(word) + 2 if p > at else p for p in points]
        set_text(part, text)
    return True


URL = re.compile(r"(https?://[^\s\"'<>?#]+)(\?[^\s\"'<>#]*)?", re.IGNORECASE)


def vary_url_queries(message, rng, _words):
    changed = False
    for part in text_parts(message):
        text = get_text(part)
        if not URL.search(text):
            continue
        changed = True
        text = URL.sub(lambda m: m.group(1) + "?uid=%d&r=%08x" % (
            rng.randint(1, 10**6), rng.getrandbits(32)), text)
        set_text(part, text)
    return changed


def vary_transfer_encoding(message, rng, _words):
    for part in text_parts(message):
        current = transfer_encoding(part)
        if current == "base64":
            target = "quoted-printable"
        elif current == "quoted-printable":
            target = "base64"
        else:
            target = rng.choice(["base64", "quoted-printable"])
        set_text(part, get_text(part), target)
    return bool(text_parts(message))


CONTENT_HEADERS = ("Content-Type", "Content-Transfer-Encoding", "Content-Disposition")


def single_part_of(message):
    part = email.message.Message(policy=email.policy.compat32)
    for name in CONTENT_HEADERS:
        if message[name]:
            part[name] = message[name]
    # Decoded and encoded again: the raw payload may hold 8-bit bytes that a
    # new part cannot carry as they are.
    set_text(part, get_text(message))
    return part


def replace_body(message, content_type, parts, rng):
    for name in CONTENT_HEADERS:
        del message[name]
    message["Content-Type"] = f'{content_type}; boundary="{new_boundary(rng)}"'
    if not message["MIME-Version"]:
        message["MIME-Version"] = "1.0"
    message.set_payload(parts)


def vary_boundaries(message, rng, _words):
    if message.is_multipart():
        for part in message.walk():
            if part.is_multipart():
                part.set_boundary(new_boundary(rng))
    else:
        replace_body(message, "multipart/mixed", [single_part_of(message)], rng)
    return True


def vary_text_html(message, rng, _words):
    """text only -> alternative(text, html); html only -> alternative(text,
    html); an alternative of both -> its html alone."""
    if message.is_multipart():
        if message.get_content_type() != "multipart/alternative":
            return False
        html_parts = [p for p in text_parts(message) if p.get_content_subtype() == "html"]
        if not html_parts:
            return False
        replace_body(message, "multipart/mixed", [html_parts[0]], rng)
        return True
    if message.get_content_maintype() != "text":
        return False
    source = single_part_of(message)
    text = get_text(source)
    if message.get_content_subtype() == "html":
        plain_text, html_text = html_to_text(text), text
    else:
        plain_text, html_text = text, text_to_html(text)
    plain = email.message.Message(policy=email.policy.compat32)
    plain["Content-Type"] = "text/plain; charset=iso-8859-1"
    set_text(plain, plain_text, "quoted-printable")
    rich = email.message.Message(policy=email.policy.compat32)
    rich["Content-Type"] = "text/html; charset=iso-8859-1"
    set_text(rich, html_text, "quoted-printable")
    replace_body(message, "multipart/alternative", [plain, rich], rng)
    return True


def vary_everything(message, rng, words):
    vary_greeting(message, rng, words)
    vary_random_words(message, rng, words)
    vary_url_queries(message, rng, words)
    vary_transfer_encoding(message, rng, words)
    vary_boundaries(message, rng, words)
    return True


VARIATIONS = {
    "greeting": vary_greeting,
    "random-words": vary_random_words,
    "url-query": vary_url_queries,
    "reencoding": vary_transfer_encoding,
    "boundaries": vary_boundaries,
    "text-html": vary_text_html,
    "combined": vary_everything,
}


# --- fingerprinting -------------------------------------------------------------

Fingerprint = collections.namedtuple("Fingerprint", "method digest bands reason")


def fingerprint_files(tool, paths):
    listing = "".join(f"{p}\n" for p in paths)
    run = subprocess.run([tool], input=listing, capture_output=True, text=True, check=False)
    if run.returncode != 0:
        sys.exit(f"fingerprint_tool failed ({run.returncode}): {run.stderr.strip()}")
    results = {}
    for line in run.stdout.splitlines():
        fields = line.split("\t")
        if fields[1] == "none":
            results[fields[0]] = Fingerprint("none", None, (), fields[2])
        else:
            bands = tuple(fields[3].split(",")) if len(fields) > 3 and fields[3] else ()
            results[fields[0]] = Fingerprint(fields[1], fields[2], bands, "")
    return results


def keys_of(fp):
    """The keys under which two fingerprints count as the same content."""
    if fp.method == "minhash":
        return {f"band{i}:{key}" for i, key in enumerate(fp.bands)}
    if fp.method == "exact":
        return {f"exact:{fp.digest}"}
    return set()


def subject_of(text):
    subject = parse(text).get("Subject", "") or ""
    return " ".join(str(subject).split())[:70]


def vocabulary(messages):
    words = set()
    for _, text in messages[:300]:
        body = text.split(b"\n\n", 1)[-1].decode("latin-1")
        words.update(re.findall(r"\b[a-z]{4,10}\b", body))
    return sorted(words)


def measure_recall(tool, spam, words, work, rng):
    originals = {}
    variants = []  # (variation, original path, variant path)
    for index, (name, text) in enumerate(spam):
        original = work / f"spam-{index:04d}.eml"
        original.write_bytes(text)
        originals[name] = original
        for variation, vary in VARIATIONS.items():
            message = parse(text)
            try:
                if not vary(message, rng, words):
                    continue
                varied = message.as_bytes()
            except Exception as error:  # a message the email package cannot redo
                print(f"  skipped {variation} of {name}: {type(error).__name__}: {error}")
                continue
            path = work / f"spam-{index:04d}-{variation}.eml"
            path.write_bytes(varied)
            variants.append((variation, name, path))
    results = fingerprint_files(tool, [*originals.values(), *(p for _, _, p in variants)])

    unfingerprintable = [n for n, p in originals.items() if results[str(p)].method == "none"]
    methods = collections.Counter(results[str(p)].method for p in originals.values())
    per_variation = collections.defaultdict(lambda: [0, 0])
    misses = []
    for variation, name, path in variants:
        original = results[str(originals[name])]
        if original.method == "none":
            continue
        matched = bool(keys_of(original) & keys_of(results[str(path)]))
        per_variation[variation][0] += matched
        per_variation[variation][1] += 1
        if not matched:
            misses.append((variation, name))
    return per_variation, misses, unfingerprintable, methods


def measure_ham_pairs(tool, ham, work):
    paths = {}
    for index, (name, text) in enumerate(ham):
        path = work / f"ham-{index:04d}.eml"
        path.write_bytes(text)
        paths[name] = path
    results = fingerprint_files(tool, paths.values())
    fingerprints = {n: results[str(p)] for n, p in paths.items()}
    unfingerprintable = [n for n, fp in fingerprints.items() if fp.method == "none"]
    by_key = collections.defaultdict(list)
    for name, fp in fingerprints.items():
        for key in keys_of(fp):
            by_key[key].append(name)
    pairs = set()
    for names in by_key.values():
        pairs.update(itertools.combinations(sorted(names), 2))
    counted = len(fingerprints) - len(unfingerprintable)
    return pairs, counted, unfingerprintable, collections.Counter(
        fp.method for fp in fingerprints.values())


def main():
    arguments = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    arguments.add_argument("--tool", required=True)
    arguments.add_argument("--corpus", required=True, type=pathlib.Path)
    options = arguments.parse_args()
    rng = random.Random(SEED)

    spam_all = load_folder(options.corpus, "spam-1") + load_folder(options.corpus, "spam-2")
    ham_all = [m for folder in ("easy-ham-1", "easy-ham-2", "hard-ham-1")
               for m in load_folder(options.corpus, folder)]
    # Distinct: the corpus holds a few messages twice (same body, other
    # headers); those are true duplicates, not false matches.
    seen_bodies = set()
    ham = []
    for name, text in ham_all:
        body = text.split(b"\n\n", 1)[-1]
        if body not in seen_bodies:
            seen_bodies.add(body)
            ham.append((name, text))
    spam = rng.sample(spam_all, SPAM_MESSAGES)
    words = vocabulary(ham)
    failures = []

    with tempfile.TemporaryDirectory(prefix="floodgate-near-dup-") as tmp:
        work = pathlib.Path(tmp)
        per_variation, misses, spam_none, spam_methods = measure_recall(
            options.tool, spam, words, work, rng)
        pairs, ham_counted, ham_none, ham_methods = measure_ham_pairs(options.tool, ham, work)

    ham_text = dict(ham)
    matched = sum(m for m, _ in per_variation.values())
    total = sum(t for _, t in per_variation.values())
    recall = matched / total if total else 0.0
    spam_counted = len(spam) - len(spam_none)
    print(f"spam: {len(spam)} sampled (seed {SEED}), {len(spam_none)} without text left out, "
          f"methods {dict(spam_methods)}")
    for variation, (m, t) in per_variation.items():
        print(f"  {variation:13} {m:5d}/{t:<5d} = {m / t:.2%}")
    print(f"VARIANT RECALL: {matched}/{total} = {recall:.2%} (want >= {MIN_RECALL:.0%})")
    for variation, name in misses[:40]:
        print(f"  missed: {variation} of {name}")
    if len(misses) > 40:
        print(f"  ... and {len(misses) - 40} more misses")

    ham_pairs = ham_counted * (ham_counted - 1) // 2
    rate = len(pairs) / ham_pairs if ham_pairs else 1.0
    print(f"ham: {len(ham_all)} messages, {len(ham)} distinct, {len(ham_none)} without text "
          f"left out, methods {dict(ham_methods)}")
    print(f"HAM FALSE MATCHES: {len(pairs)}/{ham_pairs} pairs = {rate:.5%} "
          f"(want <= {MAX_HAM_PAIR_RATE:.2%})")
    for a, b in sorted(pairs):
        print(f"  {a} [{subject_of(ham_text[a])}] ~ {b} [{subject_of(ham_text[b])}]")

    if spam_counted < MIN_SPAM_MESSAGES:
        failures.append(f"spam messages with text: got {spam_counted}, want >= {MIN_SPAM_MESSAGES}")
    if recall < MIN_RECALL:
        failures.append(f"variant recall: got {recall:.4f}, want >= {MIN_RECALL}")
    if ham_counted < MIN_HAM_MESSAGES:
        failures.append(f"ham messages with text: got {ham_counted}, want >= {MIN_HAM_MESSAGES}")
    if rate > MAX_HAM_PAIR_RATE:
        failures.append(f"ham pairs matching: got {rate:.6f}, want <= {MAX_HAM_PAIR_RATE}")
    for failure in failures:
        print("FAIL:", failure)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
