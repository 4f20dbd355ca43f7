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


if __name__ == "__main__":
    main()
