"""The mailbox the IMAP benchmarks read: ``count`` seeded messages from ``corpus.message``.

A mix like a real INBOX: mostly short text mail, some multipart mail with an attachment, some
international mail (RFC 2047 words, raw UTF-8).  One message in ``MARKER_EVERY`` holds the word
``MARKER`` in its body, so ``SEARCH BODY`` has a known, small answer.  The list is cached in the
temporary directory (nothing large is committed); the same ``(count, seed)`` gives the same
bytes on every run and machine.
"""

from __future__ import annotations

import random
import struct
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import corpus  # noqa: E402 - after the path set-up above

SEED = 3501  # RFC 3501
MARKER = "zeppelin"
MARKER_EVERY = 100
#: (kind, weight, smallest, largest size in bytes)
MIX = (
    ("plain", 70, 1_200, 16_000),
    ("multipart", 15, 4_000, 48_000),
    ("intl", 15, 1_500, 8_000),
)
_LENGTH = struct.Struct("<I")


def make_messages(count: int, seed: int = SEED) -> list[bytes]:
    """``count`` CRLF messages; every ``MARKER_EVERY``-th (from the first) is text/plain and
    has the marker in its body."""
    rng = random.Random(seed)
    kinds = [kind for kind, _, _, _ in MIX]
    weights = [weight for _, weight, _, _ in MIX]
    sizes = {kind: (low, high) for kind, _, low, high in MIX}
    messages = []
    for number in range(count):
        kind = rng.choices(kinds, weights)[0]
        if number % MARKER_EVERY == 0:
            kind = "plain"  # a multipart preamble is not searched by every server
        low, high = sizes[kind]
        size = int(low * (high / low) ** rng.random())  # log-uniform: many small, few large
        message = corpus.message(kind, size, seed=seed * 100_003 + number)
        if number % MARKER_EVERY == 0:
            head, blank, body = message.partition(b"\r\n\r\n")
            line = f"Status of project {MARKER} for this week.\r\n".encode()
            message = head + blank + line + body
        messages.append(message)
    return messages


def messages(count: int, seed: int = SEED) -> list[bytes]:
    """``make_messages`` through a cache file in the temporary directory."""
    cache = Path(tempfile.gettempdir()) / f"refmail-bench-imap-{count}-{seed}.bin"
    if cache.exists():
        data = cache.read_bytes()
        found = []
        pos = 0
        while pos < len(data):
            (size,) = _LENGTH.unpack_from(data, pos)
            pos += _LENGTH.size
            found.append(data[pos : pos + size])
            pos += size
        if len(found) == count:
            return found
    made = make_messages(count, seed)
    partial = cache.with_suffix(".tmp")
    partial.write_bytes(b"".join(_LENGTH.pack(len(m)) + m for m in made))
    partial.replace(cache)
    return made


def marked(count: int) -> int:
    """How many of ``count`` messages hold the marker word."""
    return (count + MARKER_EVERY - 1) // MARKER_EVERY


if __name__ == "__main__":
    for n in (2_000, 10_000):
        box = messages(n)
        total = sum(len(m) for m in box)
        print(f"{n:>6} messages, {total / 2**20:6.1f} MiB, {marked(n)} with {MARKER!r}")
