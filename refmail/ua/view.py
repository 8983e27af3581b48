"""Showing mail on a terminal: the ``inbox`` summary lines and ``read``'s decoded message.

Everything shown is made safe first: header and body text may hold terminal escape
sequences, which are replaced, so a message cannot drive the user's terminal.
"""

from __future__ import annotations

import html
import re
import unicodedata
from email.message import EmailMessage
from email.utils import parsedate_to_datetime

#: Headers ``read`` shows, in this order.
SHOWN_HEADERS = ("Date", "From", "To", "Cc", "Subject")
#: The summary flags (as mutt shows them), from RFC 3501 2.3.2 system flags.
FLAG_LETTERS = (("\\Deleted", "D"), ("\\Flagged", "F"), ("\\Answered", "A"))
TAG = re.compile(r"<[^>]*>")


def safe(text: str, *, keep_newlines: bool = False) -> str:
    """``text`` with control characters (ESC, CR, ...) replaced by ``?``."""
    out = []
    for ch in text:
        if ch == "\n" and keep_newlines or ch == "\t":
            out.append(ch)
        elif unicodedata.category(ch) in ("Cc", "Cf") and ch != "\u200d":
            out.append("?" if ch != "\r" else "")
        else:
            out.append(ch)
    return "".join(out)


def flag_letters(flags: list[str]) -> str:
    """``N`` unseen, then D/F/A, as mutt's index shows them."""
    letters = "" if "\\Seen" in flags else "N"
    letters += "".join(letter for flag, letter in FLAG_LETTERS if flag in flags)
    return letters or "-"


def short_date(value: str | None) -> str:
    if not value:
        return "?"
    try:
        return parsedate_to_datetime(value).strftime("%Y-%m-%d %H:%M")
    except (TypeError, ValueError):
        return safe(value)[:16]


def header_text(msg: EmailMessage, name: str) -> str:
    """A header decoded (RFC 2047), unfolded and made safe; "" when absent."""
    value = msg.get(name)
    return safe(" ".join(str(value).split())) if value is not None else ""


def sender_text(msg: EmailMessage) -> str:
    try:
        header = msg["From"]
        addresses = header.addresses if header is not None else ()
    except (ValueError, IndexError, AttributeError):
        return header_text(msg, "From")
    if not addresses:
        return header_text(msg, "From")
    first = addresses[0]
    return safe(first.display_name or first.addr_spec)


def summary_line(number: int, flags: list[str], size: int, header: EmailMessage) -> str:
    """``inbox``: number, flags, date, from, subject, size."""
    sender = sender_text(header)[:24]
    subject = header_text(header, "Subject") or "(no subject)"
    return (
        f"{number:>4} {flag_letters(flags):<4} {short_date(header['Date'])} "
        f"{sender:<24} {subject} ({human_size(size)})"
    )


def human_size(size: int) -> str:
    if size < 1024:
        return f"{size}B"
    if size < 1024 * 1024:
        return f"{size / 1024:.1f}K"
    return f"{size / (1024 * 1024):.1f}M"


def render(msg: EmailMessage) -> str:
    """``read``: the chosen headers, the text decoded (plain, else HTML as text), attachments."""
    lines = []
    for name in SHOWN_HEADERS:
        if msg[name] is not None:
            lines.append(f"{name}: {header_text(msg, name)}")
    lines.append("")
    body = msg.get_body(preferencelist=("plain", "html"))
    if body is None:
        lines.append("[no text part]")
    else:
        try:
            text = body.get_content()
        except (LookupError, ValueError):  # unknown charset, broken encoding
            payload = body.get_payload(decode=True)
            text = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else ""
        if body.get_content_subtype() == "html":
            lines.append("[HTML part shown as text]")
            text = html.unescape(TAG.sub("", text))
        lines.append(safe(text, keep_newlines=True).rstrip("\n"))
    attachments = list(msg.iter_attachments())
    if attachments:
        lines.append("")
    for n, part in enumerate(attachments, 1):
        name = safe(part.get_filename() or "(no name)")
        data = part.get_payload(decode=True) or b""
        lines.append(
            f"[attachment {n}: {name} ({part.get_content_type()}, {human_size(len(data))})]"
        )
    return "\n".join(lines) + "\n"
