"""A seeded, deterministic corpus of mail for the parsing benchmarks: nothing large is committed.

``message(kind, size, seed)`` builds one CRLF message of about ``size`` bytes:

- ``"plain"``: text/plain, ASCII, with lines that begin with ``.`` and ``From `` (so that
  dot-stuffing and mboxrd quoting have work to do);
- ``"multipart"``: multipart/mixed, a text part and a base64 attachment (76-column lines,
  RFC 2045 6.8);
- ``"intl"``: non-ASCII headers, RFC 2047 encoded words and raw UTF-8 (RFC 6532), and a
  UTF-8 8bit body.

- ``"thread"``: a reply deep in a long thread: ``Re:`` subject, ``In-Reply-To`` and a folded
  ``References`` chain (RFC 5322 3.6.4), new text above quoted levels (``> > ...``).

The same ``(kind, size, seed)`` always gives the same bytes (``random.Random(seed)``, a fixed
date, no ``email`` boundary randomness).

``mailbox(count=10_000, seed=SEED)`` is THE corpus every benchmark shares (micro benchmarks,
and the IMAP/POP3/IDLE maildrops of the end-to-end ones): ``count`` messages mixed like a real
INBOX (``MIX``: mostly short text, some multipart with a base64 attachment, some international,
a good share of replies in long threads whose ``References``/``In-Reply-To`` really chain to
earlier messages of the corpus and whose bodies quote them).  One message in ``MARKER_EVERY``
(from the first) is text/plain with the word ``MARKER`` in its body, and no other message has
it, so ``SEARCH BODY MARKER`` has a known answer (``marked(count)``); the marker convention is
``bench_imap_corpus``'s, so ``bench_imap_e2e`` can read this corpus as is.  Cached under the
temporary directory (nothing large is committed).

    python benchmarks/corpus.py                    # summary of the 10,000-message corpus
    python benchmarks/corpus.py --mbox [PATH]      # also write it as an mboxrd file
"""

from __future__ import annotations

import argparse
import base64
import random
import re
import struct
import tempfile
from pathlib import Path

KINDS = ("plain", "multipart", "intl", "thread")
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
    elif kind == "thread":
        # A reply 5-60 messages deep into a thread of its own (mailbox() chains real ones).
        depth = rng.randint(5, 60)
        chain = [f"<t{seed}.{n}.{rng.randrange(10**9)}@example.org>" for n in range(depth)]
        quoted = text_lines(rng, size // 2, WORDS)
        return thread_message(rng, size, "Planning the next release", chain, quoted)[0]
    else:
        raise ValueError(f"unknown kind {kind!r}; one of {KINDS}")
    return ("\r\n".join(headers) + "\r\n\r\n" + "\r\n".join(body) + "\r\n").encode("utf-8")


PEOPLE = (
    "Alice <alice@example.org>",
    "Bob <bob@example.test>",
    "Carol Smith <carol@example.test>",
    '"Dave, the release manager" <dave@example.test>',
    "=?UTF-8?Q?J=C3=B6rg_M=C3=BCller?= <joerg@example.org>",
)


def fold_ids(name: str, ids: list[str]) -> list[str]:
    """A header of message ids folded at about 78 columns (RFC 5322 2.2.3, 3.6.4)."""
    lines = [name + ":"]
    for msgid in ids:
        if len(lines[-1]) + 1 + len(msgid) > 78 and lines[-1] != name + ":":
            lines.append("")
        lines[-1] += " " + msgid
    return lines


def thread_message(
    rng: random.Random, size: int, subject: str, chain: list[str], quoted: list[str]
) -> tuple[bytes, str, list[str]]:
    """A reply to ``chain[-1]`` (``chain``: every earlier id of the thread, oldest first) that
    quotes ``quoted`` (the parent's body lines) under an attribution line; about ``size``
    bytes.  Returns (message, its Message-ID, its body lines for the next reply to quote)."""
    serial = rng.randrange(10**12)
    msgid = f"<{serial}.{len(chain)}@example.org>"
    sender = rng.choice(PEOPLE)
    headers = common_headers(rng, ("Re: " if chain else "") + subject, sender)
    headers = [h for h in headers if not h.startswith("Message-ID:")]
    headers.append(f"Message-ID: {msgid}")
    if chain:
        headers.append(f"In-Reply-To: {chain[-1]}")
        headers += fold_ids("References", chain)
    headers += ["Content-Type: text/plain; charset=us-ascii", "Content-Transfer-Encoding: 7bit"]
    own = text_lines(rng, max(200, size // 4), WORDS)
    body = list(own)
    if chain:
        body += ["", f"On {DATE}, {rng.choice(PEOPLE)} wrote:"]
        budget = size - 900 - sum(len(line) + 2 for line in own) - 100 * len(chain) // 2
        for line in quoted:
            quote = ">" + (line if line.startswith(">") else " " + line) if line else ">"
            budget -= len(quote) + 2
            if budget < 0:
                break
            body.append(quote)
    text = "\r\n".join(headers) + "\r\n\r\n" + "\r\n".join(body) + "\r\n"
    return text.encode("utf-8"), msgid, body


# ---------------------------------------------------------------------------- the corpus

COUNT = 10_000
MARKER = "zeppelin"  # bench_imap_corpus's marker word: in none of the word lists
MARKER_EVERY = 100
#: (kind, weight, smallest, largest size in bytes); sizes are drawn log-uniform.
MIX = (
    ("plain", 50, 1_200, 16_000),
    ("multipart", 12, 4_000, 48_000),
    ("intl", 13, 1_500, 8_000),
    ("thread", 25, 1_500, 12_000),
)
#: A new thread is started with this chance (else an open one gets a reply); at most
#: OPEN_THREADS are open at a time, the oldest closed first.
NEW_THREAD = 0.04
OPEN_THREADS = 8
_LENGTH = struct.Struct("<I")


def make_mailbox(count: int = COUNT, seed: int = SEED) -> tuple[list[bytes], list[str]]:
    """The corpus (module doc) and the kind of each message, generated (see ``mailbox``)."""
    rng = random.Random(f"mailbox:{seed}")
    kinds = [kind for kind, _, _, _ in MIX]
    weights = [weight for _, weight, _, _ in MIX]
    sizes = {kind: (low, high) for kind, _, low, high in MIX}
    threads: list[dict] = []
    messages: list[bytes] = []
    drawn: list[str] = []
    for number in range(count):
        kind = "plain" if number % MARKER_EVERY == 0 else rng.choices(kinds, weights)[0]
        low, high = sizes[kind]
        size = int(low * (high / low) ** rng.random())
        if kind == "thread":
            if not threads or rng.random() < NEW_THREAD:
                threads.append({"subject": f"Topic {number}: release planning", "chain": []})
                threads[:] = threads[-OPEN_THREADS:]
                threads[-1]["quoted"] = []
            thread = rng.choice(threads)
            message, msgid, body = thread_message(
                rng, size, thread["subject"], thread["chain"], thread["quoted"]
            )
            thread["chain"].append(msgid)
            thread["quoted"] = body
        else:
            message = globals()["message"](kind, size, seed=seed * 100_003 + number)
        if number % MARKER_EVERY == 0:
            head, blank, body_bytes = message.partition(b"\r\n\r\n")
            line = f"Status of project {MARKER} for this week.\r\n".encode()
            message = head + blank + line + body_bytes
        messages.append(message)
        drawn.append(kind)
    return messages, drawn


def cache_path(count: int = COUNT, seed: int = SEED) -> Path:
    return Path(tempfile.gettempdir()) / f"refmail-corpus-{count}-{seed}.bin"


def mailbox(count: int = COUNT, seed: int = SEED) -> list[bytes]:
    """The shared corpus (module doc): ``count`` CRLF messages, through a cache file in the
    temporary directory (generating 10,000 takes ~15 s, reading them back ~0.1 s)."""
    return mailbox_with_kinds(count, seed)[0]


def mailbox_with_kinds(count: int = COUNT, seed: int = SEED) -> tuple[list[bytes], list[str]]:
    """``mailbox`` and the kind of each message."""
    cache = cache_path(count, seed)
    if cache.exists():
        data = cache.read_bytes()
        found: list[bytes] = []
        pos = 0
        while pos < len(data):
            (size,) = _LENGTH.unpack_from(data, pos)
            pos += _LENGTH.size
            found.append(data[pos : pos + size])
            pos += size
        if len(found) == count + 1:
            return found[:-1], found[-1].decode("ascii").split()
    made, kinds = make_mailbox(count, seed)
    partial = cache.with_suffix(".tmp")
    items = [*made, " ".join(kinds).encode("ascii")]
    partial.write_bytes(b"".join(_LENGTH.pack(len(m)) + m for m in items))
    partial.replace(cache)
    return made, kinds


def marked(count: int) -> int:
    """How many of the first ``count`` messages hold ``MARKER``."""
    return (count + MARKER_EVERY - 1) // MARKER_EVERY


FROM_LINE = b"From MAILER-DAEMON Mon Jan  1 10:00:00 2024\n"
_MBOXRD = re.compile(rb"(?m)^(>*From )")


def mbox_bytes(messages: list[bytes]) -> bytes:
    """The messages as an mboxrd file (RFC 4155): From_ line, LF line ends, every
    ``^>*From `` line given one more ``>``, a blank line after each message."""
    parts = []
    for message in messages:
        body = _MBOXRD.sub(rb">\1", message.replace(b"\r\n", b"\n"))
        parts.append(FROM_LINE + body + (b"" if body.endswith(b"\n") else b"\n") + b"\n")
    return b"".join(parts)


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


def main() -> None:
    parser = argparse.ArgumentParser(description="the shared benchmark corpus (module doc)")
    parser.add_argument("--count", type=int, default=COUNT)
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument(
        "--mbox", type=Path, nargs="?", const=True, help="write it as mboxrd (default: temp dir)"
    )
    args = parser.parse_args()
    messages, kinds = mailbox_with_kinds(args.count, args.seed)
    total = sum(len(m) for m in messages)
    where = cache_path(args.count, args.seed)
    print(f"{len(messages)} messages, {total / 2**20:.1f} MiB, cached in {where}")
    for kind in KINDS:
        sizes = sorted(len(m) for m, k in zip(messages, kinds, strict=True) if k == kind)
        if sizes:
            print(
                f"  {kind:10} {len(sizes):>6} messages, median {sizes[len(sizes) // 2]:>6} bytes,"
                f" largest {sizes[-1]:>6}"
            )
    depth = max(
        m.count(b"\r\n ") + 1 for m, k in zip(messages, kinds, strict=True) if k == "thread"
    )
    print(f"  {marked(len(messages))} hold {MARKER!r}; longest References field: {depth} lines")
    if args.mbox:
        path = (
            args.mbox
            if args.mbox is not True
            else cache_path(args.count, args.seed).with_suffix(".mbox")
        )
        path.write_bytes(mbox_bytes(messages))
        print(f"mboxrd written to {path}")


if __name__ == "__main__":
    main()
