#!/usr/bin/env python3
"""Writes the fuzz seed corpus: the sample messages of tests/unit/content/data
and a few tiny malformed ones, each in the input layout of each fuzz target.

    python3 tests/fuzz/corpus/make_seeds.py   # from anywhere; rewrites the seeds

content_fingerprint/: byte 0 picks the top-level Content-Type and transfer
encoding (see content_fingerprint_fuzz.cpp), byte 1 the chunking, then the
body; a message's own top-level boundary is renamed to the fuzz target's.
message_session/: NUL-separated fields (client address, client name,
auth_authen, sender, then recipient / header name / header value triples,
the body last), as message_session_fuzz.cpp splits them.
config_loader/: YAML files as they are: the shipped config, the benchmark's,
the YAML of tests/unit/config and a few hostile ones (see CONFIG_SEEDS).
header_address/: four selector bytes then NUL-separated fields (client
address, client name, SASL user, sender, header name and value, macro name
and value, Content-Type, Content-Disposition, source spec words), as
header_address_fuzz.cpp reads them (see HEADER_ADDRESS_SEEDS).
"""
import pathlib
import re

HERE = pathlib.Path(__file__).resolve().parent
DATA = HERE.parent.parent / "unit" / "content" / "data"

# Indexes into k_content_types and k_encodings of content_fingerprint_fuzz.cpp.
TEXT_PLAIN, TEXT_HTML, MIXED_B, ALTERNATIVE_X, MIXED_NO_BOUNDARY, IMAGE = range(6)
SEVEN_BIT, BASE64, QP, JUNK = range(4)

MALFORMED = {
    # name: (content type, encoding, body)
    "missing-close-boundary": (MIXED_B, SEVEN_BIT,
                               b"--b\r\nContent-Type: text/plain\r\n\r\nhello there friend\r\n--b\r\n"),
    "unused-boundary": (MIXED_B, SEVEN_BIT, b"no boundary line here at all\r\njust text\r\n"),
    "nested-unclosed": (MIXED_B, SEVEN_BIT,
                        b"--b\r\nContent-Type: multipart/mixed; boundary=c\r\n\r\n"
                        b"--c\r\nContent-Type: multipart/mixed; boundary=d\r\n\r\n"
                        b"--d\r\nContent-Type: text/html\r\n\r\n<p>deep</p>\r\n--b--\r\n"),
    "bad-base64": (TEXT_PLAIN, BASE64, b"SGVsbG8=gd29y==bGQ===\r\n!!!*\r\nSGVsbG8gd29ybG"),
    "bad-qp": (TEXT_PLAIN, QP, b"caf=E9 =ZZ =4 soft=\r\nbreak=\r\n="),
    "html-junk": (TEXT_HTML, SEVEN_BIT,
                  b"<html><!-- never closed <script>x<y</script><style>p{}</style>&#x41;&amp"
                  b"<a href='http://example.com/?q=1'>link</a"),
    "part-charsets": (MIXED_B, SEVEN_BIT,
                      b"--b\r\nContent-Type: text/plain; charset=shift_jis\r\n\r\n\x82\xb1\x82\r\n"
                      b"--b\r\nContent-Type: text/plain; charset=koi8-r\r\n"
                      b"Content-Transfer-Encoding: quoted-printable\r\n\r\n=F0=D2=C9\r\n"
                      b"--b\r\nContent-Type: text/plain; charset=x-unknown\r\n\r\n\xff\xfe\r\n--b--\r\n"),
    "empty": (TEXT_PLAIN, SEVEN_BIT, b""),
}


def split_message(raw):
    """Headers as (name, value) with folding kept, and the body."""
    match = re.search(rb"\r?\n\r?\n", raw)
    head, body = (raw[:match.start()], raw[match.end():]) if match else (raw, b"")
    headers = []
    for line in re.split(rb"\r?\n", head):
        if line[:1] in (b" ", b"\t") and headers:
            name, value = headers[-1]
            headers[-1] = (name, value + b"\r\n" + line)
        elif b":" in line:
            name, value = line.split(b":", 1)
            headers.append((name, value))
    return headers, body


def header(headers, name):
    for key, value in headers:
        if key.strip().lower() == name:
            return value
    return b""


def content_seed(headers, body):
    content_type = header(headers, b"content-type").lower()
    encoding = header(headers, b"content-transfer-encoding").strip().lower()
    boundary = re.search(rb'boundary\s*=\s*"?([^";\r\n]+)"?', header(headers, b"content-type"),
                         re.IGNORECASE)
    if b"multipart/alternative" in content_type:
        kind, new_boundary = ALTERNATIVE_X, b"=_x"
    elif b"multipart/" in content_type:
        kind, new_boundary = MIXED_B, b"b"
    elif b"text/html" in content_type:
        kind, new_boundary = TEXT_HTML, None
    else:
        kind, new_boundary = TEXT_PLAIN, None
    if boundary and new_boundary:
        body = body.replace(b"--" + boundary.group(1), b"--" + new_boundary)
    enc = {b"base64": BASE64, b"quoted-printable": QP}.get(encoding, SEVEN_BIT)
    return bytes([kind + 8 * enc, 7]) + body


def session_seed(headers, body):
    fields = [b"192.0.2.7", b"mail.example.net", b"", b"sender@example.net"]
    for i, (name, value) in enumerate(headers[:19]):
        fields += [b"rcpt%d@example.org" % i, name, value.replace(b"\0", b"")]
    return b"\0".join(fields + [body.replace(b"\0", b"")])


ROOT = HERE.parent.parent.parent
CONFIG_TEST = ROOT / "tests" / "unit" / "config" / "config_loader_test.cpp"

# Hostile YAML beside the real files: what a broken editor, a paste or a
# careless template can produce.
CONFIG_SEEDS = {
    "anchors-aliases": b"identities:\n  client: &c {parts: [client_address]}\n  again: *c\n"
                       b"rules:\n  - &r {name: r, signal: messages, identity: client, window: 10m,"
                       b" threshold: 5, score: 10}\n  - *r\n",
    "deep-nesting": b"redis: " + b"[" * 200 + b"]" * 200 + b"\n",
    "two-documents": b"log: {level: info}\n---\nlog: {level: debug}\n",
    "tags-and-merge": b"redis: !!map {<<: {url: redis://r}, pool_size: !!int 4}\n"
                      b"milter: {socket: !custom inet:1@h}\n",
    "numbers-at-the-edges": b"redis:\n  pool_size: 99999999999999999999\n  connect_timeout: -1ms\n"
                            b"  command_timeout: 18446744073709551616s\nrules:\n"
                            b"  - {name: r, signal: messages, threshold: 1e400, score: -0, window: 0x10m}\n",
    "bad-utf8-and-controls": b"milter:\n  socket: \"unix:/s\\x00\\u2028\"\nlog: {level: \xff\xfe}\n\t\x01:\n",
}


def config_seeds():
    """The raw strings and table rows of the config loader tests, and the two real files."""
    seeds = {"shipped-floodgate": (ROOT / "conf" / "floodgate.yaml").read_bytes(),
             "bench": (ROOT / "tests" / "bench" / "bench.yaml").read_bytes()}
    test = CONFIG_TEST.read_text()
    for i, text in enumerate(re.findall(r'R"\((.*?)\)"', test, re.S)):
        seeds["unit-raw-%d" % i] = text.encode()
    # Rows of the error table: {"Name", "yaml", line, "key", "message"}.
    for name, text in re.findall(r'\{"(\w+)", ((?:"(?:[^"\\]|\\.)*"\s*)+),', test):
        literal = "".join(re.findall(r'"((?:[^"\\]|\\.)*)"', text))
        seeds["unit-" + name] = literal.encode().decode("unicode_escape").encode("latin-1")
    seeds.update({"hostile-" + k: v for k, v in CONFIG_SEEDS.items()})
    # Found by config_loader_fuzz: yaml-cpp 0.7's LoadAll never returned on it
    # (jbeder/yaml-cpp#1040); the smoke test times out if that comes back.
    seeds["regression-yaml-cpp-1040-stray-comma"] = b",quarantineA\n  spool_directnry: spool\n"
    return seeds


def header_address_seed(selector, fields):
    return bytes(selector) + b"\0".join(fields)


# name: ((part mask, IPv4 prefix, IPv6 prefix, log cap), fields)
HEADER_ADDRESS_SEEDS = {
    "web-form-ipv4": ((0b11111111, 24, 64, 255), [
        b"192.0.2.7", b"Mail.Example.NET", b" Bob ", b"Web@Example.COM",
        b"X-PHP-Originating-Script", b" 12:contact.php ", b"daemon_name", b"smtpd",
        b'text/plain; charset="UTF-8"', b"attachment; filename=a.pdf",
        b"client=10.1.2.3", b"header:X-PHP-Originating-Script=12:contact.php"]),
    "ipv6-network": ((0b01000011, 16, 48, 40), [
        b"2001:DB8::1", b"unknown", b"", b"<>", b"x-mailer", b"PHPMailer",
        b"auth_authen", b"alice", b"multipart/mixed;\r\n boundary=\"=_x;y\"; charset=",
        b"  Attachment ;", b"network=2001:db8::/64", b"sasl=Alice", b"macro:{auth_authen}=x"]),
    "v4-mapped": ((0b00000011, 0, 128, 16), [
        b"::ffff:10.0.0.1", b"host", b"u", b"a@b", b"h", b"v", b"m", b"v",
        b"TEXT/HTML ; CHARSET=ISO-8859-1", b"inline", b"client_address=::ffff:10.0.0.1",
        b"sender=<Someone@Example.org>", b"sender_domain=Example.org", b"client_name=MX.example"]),
    "canonical-texts": ((0b00110000, 32, 0, 8), [
        b"client_address=10.1.2.3 header:x-php-originating-script=12:contact.php",
        b"client_network=10.1.2.0/24 sasl_user=bob", b"sender=a%20b@x", b"header:a%3Db=%25",
        b"macro:i=Q%0D%0A", b"sender=lower%2a", b"", b"", b";;;", b"",
        b"header:X=", b"sender=<>", b"client_name=unknown", b"client=10.0.0.1", b"client=10.0.0.2"]),
    "hostile-bytes": ((0b11111111, 33, 200, 0), [
        b"10.0.0.1\r\nfake=1", b"\x1b[31mred", b"\xc3\xa9\xff", b'a"b\\c@D\x7f',
        b"X-\x80", b"%%%===   ", b"{weird}", b"\t", b"multipart/; boundary=" + b"b" * 250
        + b"; charset=" + b"c" * 50, b";attachment",
        b"header:=x", b"macro:{}=y", b"network=10.0.0.1", b"client=999.1.1.1", b"=", b"x"]),
}


def main():
    out_content = HERE / "content_fingerprint"
    out_session = HERE / "message_session"
    for folder in (out_content, out_session):
        folder.mkdir(exist_ok=True)
        for old in folder.glob("*.seed"):
            old.unlink()
    for eml in sorted(DATA.glob("*.eml")):
        headers, body = split_message(eml.read_bytes())
        (out_content / (eml.stem + ".seed")).write_bytes(content_seed(headers, body))
        (out_session / (eml.stem + ".seed")).write_bytes(session_seed(headers, body))
    for name, (kind, enc, body) in MALFORMED.items():
        (out_content / ("malformed-" + name + ".seed")).write_bytes(bytes([kind + 8 * enc, 3]) + body)
        headers = [(b"Content-Type", b" multipart/mixed; boundary=b" if kind == MIXED_B else b" text/plain"),
                   (b"Subject", b" =?utf-8?b?w6k=?= \x1b[31m\r\n\tfolded")]
        (out_session / ("malformed-" + name + ".seed")).write_bytes(session_seed(headers, body))
    for folder, seeds in ((HERE / "config_loader", config_seeds()),
                          (HERE / "header_address",
                           {name: header_address_seed(*seed) for name, seed in HEADER_ADDRESS_SEEDS.items()})):
        folder.mkdir(exist_ok=True)
        for old in folder.glob("*.seed"):
            old.unlink()
        for name, data in seeds.items():
            (folder / (name + ".seed")).write_bytes(data)


if __name__ == "__main__":
    main()
