"""Modified UTF-7 mailbox names (RFC 3501 5.1.3).

Printable US-ASCII (0x20-0x7e) but ``&`` stands for itself; ``&`` is ``&-``; every other
character is UTF-16BE in modified BASE64 (``,`` for ``/``, no ``=`` padding) between ``&`` and
``-``.  ``decode`` accepts only the one canonical form ``encode`` produces, so a name has
exactly one spelling on the wire and one file name on disk.
"""

from __future__ import annotations

import base64
import binascii

# RFC 3501 5.1.3: "modified BASE64 ... with a further modification from [UTF-7] that ","
# is used instead of "/"".
_B64_ALPHABET = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,")
_SHIFT = "&"
_UNSHIFT = "-"


def _is_direct(ch: str) -> bool:
    """Characters 0x20-0x25 and 0x27-0x7e represent themselves (RFC 3501 5.1.3)."""
    return 0x20 <= ord(ch) <= 0x7E and ch != _SHIFT


def _encode_run(run: str) -> str:
    utf16 = run.encode("utf-16-be")  # UnicodeEncodeError (a ValueError) on lone surrogates
    b64 = base64.b64encode(utf16).rstrip(b"=").replace(b"/", b",")
    return _SHIFT + b64.decode("ascii") + _UNSHIFT


def encode(name: str) -> str:
    """Encode a mailbox name to modified UTF-7 (RFC 3501 5.1.3).

    Runs of non-printable-ASCII characters become one base64 run each (the encoding is
    minimal); ``&`` becomes ``&-``.  Raises ``ValueError`` for a lone surrogate.
    """
    out: list[str] = []
    run: list[str] = []
    for ch in name:
        if _is_direct(ch):
            if run:
                out.append(_encode_run("".join(run)))
                run.clear()
            out.append(ch)
        elif ch == _SHIFT:
            if run:
                out.append(_encode_run("".join(run)))
                run.clear()
            out.append("&-")
        else:
            run.append(ch)
    if run:
        out.append(_encode_run("".join(run)))
    return "".join(out)


def _decode_run(b64: str, where: int) -> str:
    """One base64 run between ``&`` and ``-`` (already known non-empty)."""
    raw = b64.encode("ascii")
    if any(c not in _B64_ALPHABET for c in raw):
        raise ValueError(f"invalid modified BASE64 character in run at offset {where}")
    if len(raw) % 4 == 1:
        raise ValueError(f"truncated modified BASE64 run at offset {where}")
    padded = raw.replace(b",", b"/") + b"=" * (-len(raw) % 4)
    try:
        utf16 = base64.b64decode(padded, validate=True)
    except binascii.Error as exc:
        raise ValueError(f"bad modified BASE64 at offset {where}: {exc}") from None
    # Unused low bits of the last character must be zero, or the run is not the canonical one.
    if base64.b64encode(utf16).rstrip(b"=") != raw.replace(b",", b"/"):
        raise ValueError(f"non-canonical modified BASE64 (nonzero pad bits) at offset {where}")
    if len(utf16) % 2:
        raise ValueError(f"modified BASE64 run at offset {where} is not whole UTF-16 units")
    try:
        text = utf16.decode("utf-16-be")
    except UnicodeDecodeError:
        raise ValueError(f"unpaired UTF-16 surrogate in run at offset {where}") from None
    for ch in text:
        if _is_direct(ch) or ch == _SHIFT:
            # RFC 3501 5.1.3: "Modified BASE64 MUST NOT be used to represent any printing
            # US-ASCII character which can represent itself."
            raise ValueError(f"printable ASCII {ch!r} encoded in BASE64 at offset {where}")
    return text


def decode(name: str) -> str:
    """Decode a modified UTF-7 mailbox name (RFC 3501 5.1.3).

    Raises ``ValueError`` with a short reason for: a character outside 0x20-0x7e, an ``&``
    without its ``-``, bad or non-canonical base64, an encoded printable ASCII character,
    two adjacent base64 runs (``&AOk-&AOk-``: the encoder would have made one), odd UTF-16.
    """
    out: list[str] = []
    i = 0
    previous_was_run = False
    while i < len(name):
        ch = name[i]
        if ch != _SHIFT:
            if not 0x20 <= ord(ch) <= 0x7E:
                raise ValueError(f"character {ch!r} at offset {i} must be encoded")
            out.append(ch)
            previous_was_run = False
            i += 1
            continue
        end = name.find(_UNSHIFT, i + 1)
        if end < 0:
            raise ValueError(f"unterminated '&' at offset {i}")
        if end == i + 1:
            out.append(_SHIFT)
            previous_was_run = False
        else:
            if previous_was_run:
                raise ValueError(f"adjacent BASE64 runs at offset {i} (non-minimal encoding)")
            out.append(_decode_run(name[i + 1 : end], i))
            previous_was_run = True
        i = end + 1
    return "".join(out)
