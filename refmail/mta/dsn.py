"""Delivery status notifications (RFC 3464) and who gets them.

A bounce is a ``multipart/report; report-type=delivery-status`` (RFC 6522) from
MAILER-DAEMON with the null reverse-path (RFC 5321 4.5.5): a human-readable part, the
``message/delivery-status`` fields, and the original header as ``text/rfc822-headers``
(RFC 6522 3; the body is left out, as RFC 3464 allows, so a bounce never carries a big
attachment back).  A message with the null sender is never bounced (RFC 5321 4.5.5, 6.2):
that is how bounce loops are prevented.
"""

from __future__ import annotations

import logging
import quopri
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from email.utils import formatdate, make_msgid
from typing import TYPE_CHECKING

from refmail import parse

if TYPE_CHECKING:
    from refmail.delivery import LocalDelivery
    from refmail.mta.spool import Spool

log = logging.getLogger(__name__)

#: RFC 3464 2.1: the report is from the MTA; RFC 5321 4.5.5: sent with MAIL FROM:<>.
MAILER_DAEMON = "MAILER-DAEMON"
#: RFC 5322 2.1.1: a line SHOULD be at most 78 characters; diagnostic text is folded to this.
MAX_LINE = 78


@dataclass(frozen=True, slots=True)
class RecipientStatus:
    """One recipient's line of a report (RFC 3464 2.3)."""

    address: str
    action: str  # "failed" or "delayed" (RFC 3464 2.3.3)
    status: str  # RFC 3463 code
    diagnostic: str  # "smtp; 550 5.1.1 ..." (RFC 3464 2.3.6)
    remote_mta: str | None = None
    last_attempt: float | None = None
    will_retry_until: float | None = None


def _address_type(address: str) -> str:
    """RFC 3464 2.3.2 address-type: rfc822, or utf-8 for an SMTPUTF8 address (RFC 6533 3)."""
    return f"rfc822; {address}" if address.isascii() else f"utf-8; {address}"


def _field_value(text: str) -> str:
    """A value safe in a header field: no CR/LF, folded under MAX_LINE where it has spaces."""
    words = " ".join(text.replace("\r", " ").replace("\n", " ").split()).split(" ")
    lines: list[str] = []
    current = ""
    for word in words:
        if current and len(current) + 1 + len(word) > MAX_LINE - 20:
            lines.append(current)
            current = word
        else:
            current = f"{current} {word}" if current else word
    lines.append(current)
    return "\r\n ".join(lines)


def _date(when: float) -> str:
    """An RFC 5322 3.3 date-time, as RFC 3464 2.1.5 asks for its date fields."""
    return formatdate(when, localtime=True)


def delivery_status(
    *, reporting_mta: str, arrival: float, recipients: Sequence[RecipientStatus]
) -> bytes:
    """The ``message/delivery-status`` body: per-message fields, then a block per recipient."""
    blocks = [
        [f"Reporting-MTA: dns; {reporting_mta}", f"Arrival-Date: {_date(arrival)}"],
    ]
    for r in recipients:
        block = [
            f"Final-Recipient: {_address_type(r.address)}",
            f"Action: {r.action}",
            f"Status: {r.status}",
        ]
        if r.remote_mta:
            host = r.remote_mta.split()[0].rsplit(":", 1)[0].strip("[]")
            block.append(f"Remote-MTA: dns; {host}")
        if r.diagnostic:
            block.append(f"Diagnostic-Code: {_field_value(r.diagnostic)}")
        if r.last_attempt is not None:
            block.append(f"Last-Attempt-Date: {_date(r.last_attempt)}")
        if r.will_retry_until is not None:
            block.append(f"Will-Retry-Until: {_date(r.will_retry_until)}")
        blocks.append(block)
    return "\r\n\r\n".join("\r\n".join(b) for b in blocks).encode("utf-8") + b"\r\n"


def _human_text(hostname: str, sender: str, recipients: Sequence[RecipientStatus]) -> str:
    delayed = all(r.action == "delayed" for r in recipients)
    lines = [
        f"This is the mail system at host {hostname}.",
        "",
    ]
    if delayed:
        lines += [
            "Your message could not be delivered yet to the recipients below.",
            "It is still queued and will be retried; you need not send it again.",
        ]
    else:
        lines += [
            "Your message could not be delivered to the recipients below.",
            "It has been given up on; this is a permanent error.",
        ]
    lines.append("")
    for r in recipients:
        lines.append(f"<{r.address}>: {r.status} {_field_value(r.diagnostic)}")
    lines += ["", f"The original message from <{sender}> follows as headers only.", ""]
    return "\r\n".join(lines) + "\r\n"


def build_report(
    *,
    hostname: str,
    sender: str,
    original: bytes,
    arrival: float,
    recipients: Sequence[RecipientStatus],
    now: float,
) -> bytes:
    """The whole DSN message (CRLF), addressed to ``sender``; RFC 3464 / RFC 6522."""
    if not recipients:
        raise ValueError("a report needs at least one recipient")
    delayed = all(r.action == "delayed" for r in recipients)
    boundary = f"=_refmail_{secrets.token_hex(12)}"
    subject = (
        "Delayed Mail (still being retried)" if delayed else "Undelivered Mail Returned to Sender"
    )
    head = original[: parse.header_end(original)].rstrip(b"\r\n") + b"\r\n"
    head = parse.to_crlf(head)
    if head.isascii():
        headers_part = b"Content-Type: text/rfc822-headers\r\n\r\n" + head
    else:  # RFC 6522 3 text part: keep the DSN 7-bit so any next hop takes it
        encoded = parse.to_crlf(quopri.encodestring(head.replace(b"\r\n", b"\n")))
        headers_part = (
            b"Content-Type: text/rfc822-headers; charset=utf-8\r\n"
            b"Content-Transfer-Encoding: quoted-printable\r\n\r\n" + encoded
        )
    status_body = delivery_status(reporting_mta=hostname, arrival=arrival, recipients=recipients)
    human = _human_text(hostname, sender, recipients)
    human_bytes = human.encode("utf-8")
    if human_bytes.isascii():
        human_part = b"Content-Type: text/plain; charset=us-ascii\r\n\r\n" + human_bytes
    else:
        human_part = (
            b"Content-Type: text/plain; charset=utf-8\r\n"
            b"Content-Transfer-Encoding: quoted-printable\r\n\r\n"
            + parse.to_crlf(quopri.encodestring(human_bytes.replace(b"\r\n", b"\n")))
        )
    status_part = b"Content-Type: message/delivery-status\r\n"
    if not status_body.isascii():  # an SMTPUTF8 address (RFC 6533 uses message/global-...)
        status_part = b"Content-Type: message/global-delivery-status\r\n"
    status_part += b"\r\n" + status_body
    top = [
        f"From: Mail Delivery System <{MAILER_DAEMON}@{hostname}>",
        f"To: <{sender}>",
        f"Subject: {subject}",
        f"Date: {formatdate(now, localtime=True)}",
        f"Message-ID: {make_msgid(domain=hostname)}",
        "Auto-Submitted: auto-replied",  # RFC 3834 5: no auto-reply to this
        "MIME-Version: 1.0",
        "Content-Type: multipart/report; report-type=delivery-status;",
        f'\tboundary="{boundary}"',
    ]
    sep = f"--{boundary}\r\n".encode()
    parts = [
        "\r\n".join(top).encode("utf-8") + b"\r\n\r\n",
        b"This is a MIME-encapsulated message.\r\n\r\n",
        sep,
        human_part,
        b"\r\n" + sep,
        status_part,
        b"\r\n" + sep,
        headers_part,
        f"\r\n--{boundary}--\r\n".encode(),
    ]
    return b"".join(parts)


def send_report(
    report: bytes,
    sender: str,
    *,
    delivery: LocalDelivery,
    spool: Spool,
    hostname: str,
) -> str:
    """Deliver a report to ``sender``: straight into a local user's INBOX, else queue it for a
    foreign sender with the null reverse-path.  Returns where it went, for the log.

    Callers never pass the null sender: there is nobody to tell (RFC 5321 4.5.5)."""
    if not sender:
        raise ValueError("no report for the null sender (RFC 5321 4.5.5)")
    user = delivery.resolve(sender)
    if user is not None:
        received = (
            f"Received: by {hostname} (refmail) id {secrets.token_hex(6).upper()};\r\n"
            f"\t{formatdate(localtime=True)}\r\n"
        ).encode()
        delivery.deliver(report, [user], return_path="", received=received)
        return f"local user {user}"
    local_part, _, domain = sender.rpartition("@")
    if delivery.is_local_domain(domain) or not local_part:
        # A local address with no such user (deleted since): nobody to deliver it to.
        postmaster = delivery.postmaster()
        if postmaster is None:
            log.warning("report for <%s> dropped: no such local user, no postmaster", sender)
            return "nowhere"
        delivery.deliver(report, [postmaster], return_path="", received=b"")
        return f"postmaster {postmaster}"
    queue_id = spool.enqueue("", [sender], report)
    return f"queue {queue_id}"
