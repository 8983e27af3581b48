"""Composing a message with the stdlib ``email`` package (RFC 5322, MIME RFC 2045-2049).

Date and Message-ID are set (RFC 5322 3.6.1, 3.6.4); non-ASCII text is sent as UTF-8 in
quoted-printable or base64 and non-ASCII header text as RFC 2047 encoded words, so the
message is 7-bit clean and any server takes it; attachments make it multipart/mixed.
"""

from __future__ import annotations

import mimetypes
from collections.abc import Sequence
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import formatdate, make_msgid
from pathlib import Path

#: ``cte_type="7bit"``: encode 8-bit text rather than rely on 8BITMIME (RFC 6152).
POLICY = SMTP.clone(cte_type="7bit")
#: An attachment bigger than this is refused before connecting (the server's SIZE would anyway).
MAX_ATTACHMENT = 50 * 1024 * 1024


class ComposeError(ValueError):
    """A message that cannot be built as asked (unreadable attachment, no recipient)."""


def compose(
    *,
    sender: str,
    to: Sequence[str],
    cc: Sequence[str] = (),
    subject: str = "",
    body: str,
    attachments: Sequence[Path] = (),
) -> EmailMessage:
    """The message to submit; Bcc is not supported, so every recipient is in To/Cc."""
    if not to and not cc:
        raise ComposeError("no recipient: give --to")
    msg = EmailMessage(policy=POLICY)
    msg["From"] = sender
    if to:
        msg["To"] = ", ".join(to)
    if cc:
        msg["Cc"] = ", ".join(cc)
    msg["Subject"] = subject
    msg["Date"] = formatdate(localtime=True)
    domain = sender.rpartition("@")[2] or None
    msg["Message-ID"] = make_msgid(domain=domain)
    if body and not body.endswith("\n"):
        body += "\n"
    msg.set_content(body)
    for path in attachments:
        try:
            size = path.stat().st_size
            if size > MAX_ATTACHMENT:
                raise ComposeError(f"{path}: {size} bytes is over {MAX_ATTACHMENT}")
            data = path.read_bytes()
        except OSError as exc:
            raise ComposeError(f"cannot attach {path}: {exc.strerror or exc}") from None
        ctype, encoding = mimetypes.guess_type(path.name)
        if ctype is None or encoding is not None:  # unknown, or compressed (.gz)
            ctype = "application/octet-stream"
        maintype, subtype = ctype.split("/", 1)
        msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=path.name)
    return msg


def recipients(msg: EmailMessage) -> list[str]:
    """The envelope recipients: the addresses of To and Cc."""
    found: list[str] = []
    for field in ("To", "Cc"):
        header = msg[field]
        if header is not None:
            found.extend(a.addr_spec for a in header.addresses)
    return list(dict.fromkeys(found))
