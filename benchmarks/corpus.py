"""A seeded, deterministic corpus of mail for the parsing benchmarks: nothing large is committed.

``message(kind, size, seed)`` builds one CRLF message of about ``size`` bytes:

- ``"plain"``: text/plain, ASCII, with lines that begin with ``.`` and ``From `` (so that
  dot-stuffing and mboxrd quoting have work to do);
- ``"multipart"``: multipart/mixed, a text part and a base64 attachment (76-column lines,
  RFC 2045 6.8);
- ``"intl"``: non-ASCII headers, RFC 2047 encoded words and raw UTF-8 (RFC 6532), and a
  UTF-8 8bit body.

The same ``(kind, size, seed)`` always gives the same bytes (``random.Random(seed)``, a fixed
date, no ``email`` boundary randomness).  ``python benchmarks/corpus.py`` prints a summary.
"""

from __future__ import annotations

import base64
import random

KINDS = ("plain", "multipart", "intl")
SEED = 5321  # RFC 5321
DATE = "Mon, 01 Jan 2024 10:00:00 +0000"
WORDS = (
    "the of and to in is was for on that with as by at from it his an were are which this "
    "be or has had not first one their its new after who they have her she two been other when "
    "there all during into school time may years more most only over city some world would "
    "where later up such used many can state about national out known university united then"
).split()
INTL_WORDS = "Grüße naïve café Ελληνικά Русский 日本語 中文 עברית العربية façade Zürich".split()
# Lines that exercise the quoting rules: transparency (RFC 5321 4.5.2) and mboxrd.
TRICKY_LINES = (".", "..", ".signature follows", "From the desk of the editor", ">From quoted")


def text_lines(rng: random.Random, size: int, words: list[str] | tuple[str, ...]) -> list[str]:
    """About ``size`` bytes of text in lines of at most 76 characters; some lines are tricky."""
    lines: list[str] = []
    total = 0
    while total < size:
        if rng.random() < 0.03:
            line = rng.choice(TRICKY_LINES)
        elif rng.random() < 0.08:
            line = ""
        else:
            parts: list[str] = []
            length = 0
            target = rng.randint(30, 76)
            while length < target:
                word = rng.choice(words)
                parts.append(word)
                length += len(word) + 1
            line = " ".join(parts)[:76].rstrip()
        lines.append(line)
        total += len(line.encode()) + 2
    return lines


def common_headers(rng: random.Random, subject: str, sender: str) -> list[str]:
    """A realistic header block: trace fields (one folded), addresses, ids."""
    serial = rng.randrange(10**12)
    return [
        f"Return-Path: <bounce-{serial}@lists.example.org>",
        f"Received: from mx.example.org (mx.example.org [192.0.2.{rng.randint(1, 254)}])",
        f"\tby mx.example.test with ESMTPS id {serial:012d}",
        "\tfor <bob@example.test>; " + DATE,
        "From: " + sender,
        "To: Bob <bob@example.test>, carol@example.test,",
        " dave@example.test",
        "Subject: " + subject,
        "Date: " + DATE,
        f"Message-ID: <{serial}.{rng.randrange(10**6)}@example.org>",
        "MIME-Version: 1.0",
    ]


def message(kind: str, size: int, seed: int = SEED) -> bytes:
    """One deterministic CRLF message of roughly ``size`` bytes (see the module docstring)."""
    rng = random.Random(f"{kind}:{size}:{seed}")
    if kind == "plain":
        headers = common_headers(rng, "Quarterly report", "Alice <alice@example.org>")
        headers += ["Content-Type: text/plain; charset=us-ascii", "Content-Transfer-Encoding: 7bit"]
        body = text_lines(rng, size - 700, WORDS)
    elif kind == "multipart":
        boundary = f"=_refmail_{rng.getrandbits(64):016x}"
        headers = common_headers(rng, "Photos attached", "Alice <alice@example.org>")
        headers.append(f'Content-Type: multipart/mixed; boundary="{boundary}"')
        text_size = min(2000, size // 4)
        attachment = rng.randbytes(max(0, (size - text_size - 1200) * 3 // 4))
        encoded = base64.encodebytes(attachment).decode("ascii").splitlines()
        body = [
            "This is a multi-part message in MIME format.",
            "",
            "--" + boundary,
            "Content-Type: text/plain; charset=us-ascii",
            "",
            *text_lines(rng, text_size, WORDS),
            "--" + boundary,
            'Content-Type: application/octet-stream; name="photo.jpg"',
            "Content-Transfer-Encoding: base64",
            'Content-Disposition: attachment; filename="photo.jpg"',
            "",
            *encoded,
            "--" + boundary + "--",
        ]
    elif kind == "intl":
        headers = common_headers(
            rng,
            "=?UTF-8?B?" + base64.b64encode("Grüße aus Zürich".encode()).decode() + "?=",
            "=?UTF-8?Q?J=C3=B6rg_M=C3=BCller?= <joerg@example.org>",
        )
        headers += [
            "X-Original-Subject: Grüße aus Zürich — 日本語",
            "Content-Type: text/plain; charset=utf-8",
            "Content-Transfer-Encoding: 8bit",
        ]
        body = text_lines(rng, size - 900, INTL_WORDS + list(WORDS))
    else:
        raise ValueError(f"unknown kind {kind!r}; one of {KINDS}")
    return ("\r\n".join(headers) + "\r\n\r\n" + "\r\n".join(body) + "\r\n").encode("utf-8")


def smtp_commands(seed: int = SEED) -> list[bytes]:
    """One SMTP transaction's command lines (RFC 5321 4.1.1), as a client sends them."""
    rng = random.Random(seed)
    recipients = [b"<%s@example.test>" % rng.choice([b"bob", b"carol", b"dave"]) for _ in range(3)]
    return [
        b"EHLO client.example.org\r\n",
        b"MAIL FROM:<alice@example.org> SIZE=%d BODY=8BITMIME\r\n" % rng.randint(1000, 10**6),
        *(b"RCPT TO:%s NOTIFY=FAILURE ORCPT=rfc822;bob@example.test\r\n" % r for r in recipients),
        b"DATA\r\n",
        b"RSET\r\n",
        b"NOOP\r\n",
        b"QUIT\r\n",
    ]


def smtp_paths() -> list[tuple[bytes, bytes]]:
    """MAIL/RCPT arguments as ``parse_smtp_path`` gets them, from plain to RFC 6531."""
    return [
        (b"FROM:<alice@example.org>", b"FROM"),
        (b"FROM:<alice@example.org> SIZE=12345 BODY=8BITMIME", b"FROM"),
        (b"FROM:<>", b"FROM"),
        (b"TO:<bob@example.test>", b"TO"),
        (b"TO:<bob@example.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;bob@example.test", b"TO"),
        (b"TO:<@relay.example.net:carol@example.test>", b"TO"),
        (b'TO:<"dave smith"@example.test>', b"TO"),
        ("TO:<jörg@bücher.example> SMTPUTF8".encode(), b"TO"),
    ]


if __name__ == "__main__":
    for kind in KINDS:
        for size in (4096, 1 << 20):
            data = message(kind, size)
            lines = data.count(b"\n")
            print(f"{kind:10} {size:>8} -> {len(data):>8} bytes, {lines:>6} lines")
