"""Modified UTF-7 mailbox names (RFC 3501 5.1.3)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from refmail.imap import utf7

# RFC 3501 5.1.3's own example, and the usual suspects from other IMAP servers' test suites.
KNOWN = [
    ("~peter/mail/\u53f0\u5317/\u65e5\u672c\u8a9e", "~peter/mail/&U,BTFw-/&ZeVnLIqe-"),
    ("", ""),
    ("INBOX", "INBOX"),
    ("&", "&-"),
    ("Tom & Jerry", "Tom &- Jerry"),
    ("&&", "&-&-"),
    ("Entw\u00fcrfe", "Entw&APw-rfe"),
    ("\u00e9\u00e9", "&AOkA6Q-"),
    ("\u00e9&\u00e9", "&AOk-&-&AOk-"),
    ("caf\u00e9 Sp\u00e9cial", "caf&AOk- Sp&AOk-cial"),
    ("\U0001f600", "&2D3eAA-"),  # outside the BMP: a UTF-16 surrogate pair
    ("tab\there", "tab&AAk-here"),  # control characters are not printable: encoded
    ("\u007f", "&AH8-"),
]


@pytest.mark.parametrize(("text", "wire"), KNOWN)
def test_known_encodings(text: str, wire: str) -> None:
    assert utf7.encode(text) == wire
    assert utf7.decode(wire) == text


@pytest.mark.parametrize(
    ("wire", "reason"),
    [
        ("&", "unterminated"),
        ("abc&AOk", "unterminated"),
        ("&AOk-&AOk-", "adjacent"),  # the encoder makes one run: &AOkA6Q-
        ("&AGE-", "printable ASCII"),  # "a" must represent itself
        ("&ACY-", "printable ASCII"),  # "&" must be "&-"
        ("&AOl-", "nonzero pad"),  # E9 with stray low bits
        ("&AA-", "UTF-16"),  # one byte: half a UTF-16 unit
        ("&A-", "truncated"),
        ("&AO!k-", "invalid modified BASE64"),
        ("&AO/k-", "invalid modified BASE64"),  # "/" is "," in modified BASE64
        ("&AOk=-", "invalid modified BASE64"),  # no padding
        ("&2D0-", "surrogate"),  # high surrogate alone
        ("caf\u00e9", "must be encoded"),
        ("a\tb", "must be encoded"),
        ("a\x7fb", "must be encoded"),
    ],
)
def test_invalid_input_is_refused(wire: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        utf7.decode(wire)


def test_lone_surrogate_cannot_be_encoded() -> None:
    with pytest.raises(ValueError):
        utf7.encode("a\ud800b")


@given(st.text())
def test_round_trip(text: str) -> None:
    wire = utf7.encode(text)
    assert wire.isascii()
    assert all(0x20 <= ord(c) <= 0x7E for c in wire)
    assert utf7.decode(wire) == text


@given(st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E)))
def test_decode_accepts_only_canonical_forms(wire: str) -> None:
    """Whatever decodes, encodes back to the same spelling: one name, one wire form."""
    try:
        text = utf7.decode(wire)
    except ValueError:
        return
    assert utf7.encode(text) == wire
