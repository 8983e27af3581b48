"""Outbound delivery over SMTP with the stdlib ``smtplib``: one transaction per destination
host for all of its recipients, a result per recipient (RFC 5321 3.3, 4.1.1.3).

A result is ``delivered`` (2xx after DATA), ``temporary`` (4xx, or the connection failed:
retry later, RFC 5321 4.2.5) or ``permanent`` (5xx: bounce).  Before sending, the message is
checked against what the next hop offers: too big for its SIZE (RFC 1870 6: 5.3.4), 8-bit
content without 8BITMIME (RFC 6152 3: 5.6.3), non-ASCII addresses without SMTPUTF8
(RFC 6531 3.2: 5.6.7): each a permanent failure, since asking again will not help.

TLS: STARTTLS whenever offered (RFC 3207); for an MX that is opportunistic (RFC 7435:
unauthenticated, and a failed handshake falls back to plaintext on a new connection).  For a
smarthost configured with ``smarthost_tls = "required"`` the certificate is verified and no
plaintext fallback happens; its credentials are sent only over TLS or to a loopback host.
"""

from __future__ import annotations

import ipaddress
import logging
import re
import smtplib
import socket
import ssl
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from refmail import parse
from refmail.mta.routes import Hop, Route

log = logging.getLogger(__name__)

#: RFC 3463 2: an enhanced status code at the start of a reply's text.
ENHANCED_STATUS = re.compile(rb"\s*([245])\.(\d{1,3})\.(\d{1,3})\b")
#: What an address in the queue must not hold: it would break the command line (RFC 5321 4.1.2).
UNSAFE_ADDRESS = re.compile(r"[\x00-\x1f\x7f<>]")


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Seconds per phase, the minimums of RFC 5321 4.5.3.2."""

    connect: float = 300.0  # 4.5.3.2.1 initial 220 message: 5 minutes
    command: float = 300.0  # 4.5.3.2.2/.3 MAIL and RCPT: 5 minutes
    data_start: float = 120.0  # 4.5.3.2.4 DATA initiation: 2 minutes
    data_end: float = 600.0  # 4.5.3.2.6 DATA termination: 10 minutes


@dataclass(frozen=True, slots=True)
class Outcome:
    """What happened to one recipient in one attempt."""

    kind: str  # "delivered", "temporary" or "permanent"
    status: str  # RFC 3463 enhanced status code
    text: str  # the diagnostic: the remote reply, or why we did not send
    code: int = 0  # the remote SMTP reply code; 0 when the failure is ours
    remote: str | None = None  # the host that answered

    @property
    def diagnostic(self) -> str:
        """For a DSN's Diagnostic-Code (RFC 3464 2.3.6): ``smtp; 550 5.1.1 text``."""
        if self.code:
            return f"smtp; {self.code} {self.status} {self.text}"
        return f"X-refmail; {self.status} {self.text}"


def reply_outcome(code: int, reply: bytes | str, remote: str | None) -> Outcome:
    """An SMTP reply -> Outcome; the enhanced status from the text, else from the code."""
    raw = reply if isinstance(reply, bytes) else reply.encode("utf-8", "replace")
    match = ENHANCED_STATUS.match(raw)
    if match and match.group(1) == str(code // 100).encode():
        status = b".".join(match.groups()).decode()
        raw = raw[match.end() :]
    else:
        status = f"{code // 100}.0.0" if code >= 200 else "4.0.0"
    text = " ".join(raw.decode("utf-8", "replace").split())[:500]
    kind = "delivered" if code // 100 == 2 else "permanent" if code // 100 == 5 else "temporary"
    return Outcome(kind, status, text, code, remote)


def failure(status: str, text: str, remote: str | None = None) -> Outcome:
    """A result we decided ourselves (no remote reply)."""
    return Outcome("permanent" if status.startswith("5") else "temporary", status, text, 0, remote)


@dataclass(frozen=True, slots=True)
class MessageNeeds:
    """Which SMTP extensions a message needs from the next hop."""

    size: int
    eight_bit: bool  # RFC 6152: BODY=8BITMIME
    utf8_addresses: bool  # RFC 6531: SMTPUTF8 required
    utf8_headers: bool  # RFC 6532 headers: SMTPUTF8 asked for when offered

    @classmethod
    def of(cls, sender: str, recipients: Sequence[str], message: bytes) -> MessageNeeds:
        head = message[: parse.header_end(message)]
        return cls(
            size=len(message),
            eight_bit=not message.isascii(),
            utf8_addresses=not all(a.isascii() for a in (sender, *recipients)),
            utf8_headers=not head.isascii(),
        )


class HopFailed(Exception):
    """This host could not take the transaction; another host (or a retry) may."""

    def __init__(self, outcome: Outcome, *, tls_failed: bool = False) -> None:
        super().__init__(outcome.text)
        self.outcome = outcome
        self.tls_failed = tls_failed


def opportunistic_context() -> ssl.SSLContext:
    """RFC 7435: encrypt when we can, without authenticating the MX (no PKI for MX names)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


@dataclass(frozen=True)
class SmarthostPolicy:
    """How to talk to the smarthost: TLS required or not, credentials, a verifying context."""

    tls_required: bool = False
    username: str | None = None
    password: str | None = None
    context: ssl.SSLContext | None = None  # None: ssl.create_default_context()


@dataclass
class SMTPClient:
    """Sends one message to the recipients sharing one route; see ``send``."""

    helo_name: str
    smarthost: SmarthostPolicy = field(default_factory=SmarthostPolicy)
    timeouts: Timeouts = field(default_factory=Timeouts)
    mx_context: Callable[[], ssl.SSLContext] = opportunistic_context

    def send(
        self, route: Route, sender: str, recipients: Sequence[str], message: bytes
    ) -> dict[str, Outcome]:
        """Try the route's hosts in order until one takes the transaction (RFC 5321 5.1);
        returns an Outcome for every recipient."""
        results: dict[str, Outcome] = {}
        good = []
        for rcpt in recipients:
            if UNSAFE_ADDRESS.search(rcpt) or not rcpt:
                results[rcpt] = failure("5.1.3", "bad recipient address syntax")
            else:
                good.append(rcpt)
        if UNSAFE_ADDRESS.search(sender):
            return {r: failure("5.1.7", "bad sender address syntax") for r in recipients}
        if not good:
            return results
        needs = MessageNeeds.of(sender, good, message)
        failures: list[Outcome] = []
        for hop in route.hops:
            try:
                results.update(self._send_via(hop, route.smarthost, sender, good, message, needs))
                return results
            except HopFailed as exc:
                log.info("delivery via %s failed: %s %s", hop, exc.outcome.status, exc.outcome.text)
                failures.append(exc.outcome)
        if not failures:
            last = failure("4.4.4", "no host to deliver to")
        elif all(f.kind == "permanent" for f in failures):
            last = failures[-1]
        else:  # one host was only unreachable: another try may reach it
            last = next(f for f in reversed(failures) if f.kind == "temporary")
        results.update({rcpt: last for rcpt in good})
        return results

    def _send_via(
        self,
        hop: Hop,
        smarthost: bool,
        sender: str,
        recipients: list[str],
        message: bytes,
        needs: MessageNeeds,
    ) -> dict[str, Outcome]:
        tls_required = smarthost and self.smarthost.tls_required
        try:
            return self._transaction(hop, smarthost, sender, recipients, message, needs, True)
        except HopFailed as exc:
            if not exc.tls_failed or tls_required:
                raise
            log.warning("TLS with %s failed (%s); retrying in plaintext", hop, exc.outcome.text)
        return self._transaction(hop, smarthost, sender, recipients, message, needs, False)

    def _transaction(
        self,
        hop: Hop,
        smarthost: bool,
        sender: str,
        recipients: list[str],
        message: bytes,
        needs: MessageNeeds,
        use_tls: bool,
    ) -> dict[str, Outcome]:
        """One connection, one transaction (RFC 5321 3.3); HopFailed before MAIL succeeds."""
        remote = str(hop)
        try:
            smtp = smtplib.SMTP(local_hostname=self.helo_name, timeout=self.timeouts.connect)
        except OSError as exc:  # smtplib's own local_hostname lookup cannot fail here
            raise HopFailed(failure("4.4.1", f"cannot create a client: {exc}", remote)) from None
        try:
            return self._converse(smtp, hop, smarthost, sender, recipients, message, needs, use_tls)
        except (smtplib.SMTPServerDisconnected, ConnectionError) as exc:
            raise HopFailed(failure("4.4.2", f"connection lost: {exc}", remote)) from None
        except ssl.SSLError as exc:
            raise HopFailed(
                failure("4.7.0", f"TLS handshake failed: {exc}", remote), tls_failed=True
            ) from None
        except TimeoutError:
            raise HopFailed(failure("4.4.2", "timed out", remote)) from None
        except OSError as exc:
            raise HopFailed(failure("4.4.1", f"connection failed: {exc}", remote)) from None
        finally:
            try:
                smtp.quit()
            except (smtplib.SMTPException, OSError):
                pass
            smtp.close()

    def _command(
        self, smtp: smtplib.SMTP, timeout: float, cmd: str, arg: str = ""
    ) -> tuple[int, bytes]:
        if smtp.sock is not None:
            _sock(smtp).settimeout(timeout)
        return smtp.docmd(cmd, arg)

    def _converse(
        self,
        smtp: smtplib.SMTP,
        hop: Hop,
        smarthost: bool,
        sender: str,
        recipients: list[str],
        message: bytes,
        needs: MessageNeeds,
        use_tls: bool,
    ) -> dict[str, Outcome]:
        remote = str(hop)
        timeouts = self.timeouts
        try:
            code, reply = smtp.connect(hop.connect_to, hop.port)
        except OSError as exc:  # refused, unreachable, timed out: RFC 3463 4.4.1 no answer
            raise HopFailed(failure("4.4.1", f"cannot connect: {exc}", remote)) from None
        # The name TLS checks and sends as SNI is the host's, not the address connected to.
        smtp._host = hop.host  # type: ignore[attr-defined]
        if code != 220:  # RFC 5321 3.1: 554 greeting means no service here
            raise HopFailed(reply_outcome(code if code >= 400 else 421, reply, remote))
        self._greet(smtp, remote)
        tls_required = smarthost and self.smarthost.tls_required
        if use_tls and smtp.has_extn("starttls"):
            context = self._tls_context(smarthost)
            _sock(smtp).settimeout(timeouts.command)
            try:
                smtp.starttls(context=context)
            except smtplib.SMTPResponseException as exc:
                raise HopFailed(
                    reply_outcome(exc.smtp_code, exc.smtp_error, remote), tls_failed=True
                ) from None
            self._greet(smtp, remote)  # RFC 3207 4.2: forget what was learnt before TLS
        elif tls_required:
            raise HopFailed(
                failure("4.7.0", "smarthost requires TLS; STARTTLS not offered", remote)
            )
        if smarthost and self.smarthost.username:
            self._login(smtp, hop, remote)
        self._check_extensions(smtp, needs, remote)
        options = []
        if smtp.has_extn("size"):
            options.append(f"SIZE={needs.size}")
        if needs.eight_bit and smtp.has_extn("8bitmime"):
            options.append("BODY=8BITMIME")
        if (needs.utf8_addresses or needs.utf8_headers) and smtp.has_extn("smtputf8"):
            options.append("SMTPUTF8")
            smtp.command_encoding = "utf-8"
        code, reply = self._command(
            smtp, timeouts.command, "MAIL", f"FROM:<{sender}>" + "".join(" " + o for o in options)
        )
        if code != 250:  # RFC 5321 4.1.1.2: the sender is refused for every recipient
            outcome = reply_outcome(code, reply, remote)
            return {rcpt: outcome for rcpt in recipients}
        results: dict[str, Outcome] = {}
        accepted: list[str] = []
        for rcpt in recipients:
            code, reply = self._command(smtp, timeouts.command, "RCPT", f"TO:<{rcpt}>")
            if code in (250, 251):  # RFC 5321 4.1.1.3; 251 "will forward"
                accepted.append(rcpt)
            else:
                results[rcpt] = reply_outcome(code, reply, remote)
        if not accepted:
            self._command(smtp, timeouts.command, "RSET")
            return results
        _sock(smtp).settimeout(timeouts.data_start)
        code, reply = smtp.docmd("DATA")
        if code != 354:  # RFC 5321 4.1.1.4: DATA refused applies to all accepted recipients
            outcome = reply_outcome(code, reply, remote)
            results.update({rcpt: outcome for rcpt in accepted})
            return results
        _sock(smtp).settimeout(timeouts.data_end)
        # A crash or a lost connection between this send and the reply is the one window where
        # the peer may have the message while we retry it: a duplicate (RFC 5321 6.1).
        smtp.send(_terminated(parse.dot_stuff(message)))
        code, reply = smtp.getreply()
        outcome = reply_outcome(code, reply, remote)
        results.update({rcpt: outcome for rcpt in accepted})
        return results

    def _greet(self, smtp: smtplib.SMTP, remote: str) -> None:
        """EHLO, else HELO (RFC 5321 4.1.1.1, 3.2)."""
        _sock(smtp).settimeout(self.timeouts.command)
        code, reply = smtp.ehlo()
        if code == 250:
            return
        code, reply = smtp.helo()
        if code != 250:
            raise HopFailed(reply_outcome(code, reply, remote))

    def _tls_context(self, smarthost: bool) -> ssl.SSLContext:
        if smarthost and self.smarthost.tls_required:
            return self.smarthost.context or ssl.create_default_context()
        if smarthost and self.smarthost.context is not None:
            return self.smarthost.context
        return self.mx_context()

    def _login(self, smtp: smtplib.SMTP, hop: Hop, remote: str) -> None:
        """AUTH to the smarthost (RFC 4954); the password only over TLS or loopback."""
        encrypted = isinstance(smtp.sock, ssl.SSLSocket)
        if not encrypted and not _is_loopback(hop.connect_to):
            raise HopFailed(failure("4.7.0", "not sending credentials without TLS", remote))
        _sock(smtp).settimeout(self.timeouts.command)
        try:
            smtp.login(self.smarthost.username or "", self.smarthost.password or "")
        except smtplib.SMTPAuthenticationError as exc:
            # Our configuration is wrong, not the message: keep it queued (as Postfix does).
            outcome = reply_outcome(exc.smtp_code, exc.smtp_error, remote)
            raise HopFailed(
                failure("4.7.0", f"smarthost refused login: {outcome.text}", remote)
            ) from None
        except smtplib.SMTPException as exc:
            raise HopFailed(failure("4.7.0", f"smarthost login failed: {exc}", remote)) from None

    @staticmethod
    def _check_extensions(smtp: smtplib.SMTP, needs: MessageNeeds, remote: str) -> None:
        """Refuse to send what the next hop said it cannot take (permanent failures)."""
        size_text = smtp.esmtp_features.get("size", "").strip()
        if size_text.isdigit() and 0 < int(size_text) < needs.size:  # RFC 1870 4: 0 = no limit
            raise HopFailed(
                failure(
                    "5.3.4",
                    f"message of {needs.size} octets exceeds the next hop's "
                    f"limit of {size_text} (RFC 1870)",
                    remote,
                )
            )
        if needs.utf8_addresses and not smtp.has_extn("smtputf8"):
            raise HopFailed(
                failure("5.6.7", "non-ASCII address, next hop lacks SMTPUTF8 (RFC 6531)", remote)
            )
        if needs.eight_bit and not (smtp.has_extn("8bitmime") or smtp.has_extn("smtputf8")):
            raise HopFailed(
                failure("5.6.3", "8-bit message, next hop lacks 8BITMIME (RFC 6152)", remote)
            )


def _sock(smtp: smtplib.SMTP) -> socket.socket:
    """The connection's socket; a closed connection is a lost one."""
    if smtp.sock is None:
        raise smtplib.SMTPServerDisconnected("connection closed")
    return smtp.sock


def _terminated(stuffed: bytes) -> bytes:
    """The DATA content with its CRLF.CRLF end (RFC 5321 4.1.1.4)."""
    if not stuffed.endswith(b"\r\n"):
        stuffed += b"\r\n"
    return stuffed + b".\r\n"
