"""SMTP AUTH (RFC 4954) with PLAIN (RFC 4616) and LOGIN: the verb and its SASL exchange.

A mixin of ``SMTPSession``: the exchange reads its response lines through the protocol's
``expect_auth_response`` and never logs them (STYLE.md 14).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from refmail.auth import decode_base64, decode_sasl_plain
from refmail.errors import SMTPError
from refmail.smtp.protocol import format_reply

if TYPE_CHECKING:
    from refmail.config import Config, Limits
    from refmail.connection import ConnectionInfo
    from refmail.smtp.protocol import SMTPProtocol
    from refmail.smtp.session import Envelope, SMTPService

log = logging.getLogger(__name__)

#: SASL mechanisms (RFC 4954): PLAIN (RFC 4616) and the de-facto LOGIN.
MECHANISMS = ("PLAIN", "LOGIN")
#: RFC 4954 4: the server's LOGIN prompts, base64 of "Username:" and "Password:".
LOGIN_USERNAME_PROMPT = "VXNlcm5hbWU6"
LOGIN_PASSWORD_PROMPT = "UGFzc3dvcmQ6"


@dataclass(slots=True)
class AuthExchange:
    """A SASL exchange in progress (RFC 4954 4): the mechanism and what is known so far."""

    mechanism: str
    username: str | None = None


class SASLVerbs:
    """``smtp_AUTH`` and the exchange after it; the session provides the state below."""

    service: SMTPService
    config: Config
    limits: Limits
    conn: ConnectionInfo
    tls: bool
    esmtp: bool
    closing: bool
    user: str | None
    envelope: Envelope | None
    auth_failures: int
    _auth: AuthExchange | None
    _proto: SMTPProtocol

    def _plaintext_auth_allowed(self) -> bool:
        """DESIGN.md "Authentication": on TLS, loopback, or when the config says so."""
        return self.tls or self.conn.loopback or self.config.allow_plaintext_auth

    def smtp_AUTH(self, arg: bytes) -> bytes:
        """AUTH mechanism [initial-response] (RFC 4954 4)."""
        if not self.esmtp:
            raise SMTPError(503, "5.5.1", "send EHLO first")
        if self.user is not None:
            raise SMTPError(503, "5.5.1", "already authenticated")
        if self.envelope is not None:
            raise SMTPError(503, "5.5.1", "AUTH not permitted during a mail transaction")
        words = arg.split()
        if not 1 <= len(words) <= 2:
            raise SMTPError(501, "5.5.4", "syntax: AUTH mechanism [initial-response]")
        mechanism = words[0].decode("ascii", "replace").upper()
        if mechanism not in MECHANISMS:
            raise SMTPError(504, "5.5.4", "unrecognized authentication type")
        if not self._plaintext_auth_allowed():
            raise SMTPError(538, "5.7.11", "encryption required for requested mechanism")
        exchange = AuthExchange(mechanism)
        if len(words) == 1:
            self._auth = exchange
            self._proto.expect_auth_response()
            prompt = "" if mechanism == "PLAIN" else LOGIN_USERNAME_PROMPT
            return f"334 {prompt}\r\n".encode("ascii")
        initial = b"" if words[1] == b"=" else self._decode_response(words[1])
        return self._auth_continue(exchange, initial)

    def _auth_response(self, line: bytes) -> bytes:
        """A client response to a 334 challenge; ``*`` cancels (RFC 4954 4)."""
        exchange, self._auth = self._auth, None
        if exchange is None:
            raise TypeError("AUTH response outside an exchange")
        if line.strip() == b"*":
            raise SMTPError(501, "5.0.0", "authentication cancelled")
        return self._auth_continue(exchange, self._decode_response(line.strip()))

    @staticmethod
    def _decode_response(data: bytes) -> bytes:
        try:
            return decode_base64(data)
        except ValueError:
            raise SMTPError(501, "5.5.2", "cannot decode response") from None  # RFC 4954 4

    def _auth_continue(self, exchange: AuthExchange, response: bytes) -> bytes:
        if exchange.mechanism == "PLAIN":
            try:
                authzid, authcid, password = decode_sasl_plain(response)
            except ValueError:
                raise SMTPError(501, "5.5.2", "malformed PLAIN response") from None
            if authzid and authzid.lower() != authcid.lower():
                return self._auth_failed()  # no proxy authorization
            return self._authenticate(authcid, password)
        try:
            text = response.decode("utf-8")
        except UnicodeDecodeError:
            raise SMTPError(501, "5.5.2", "response is not UTF-8") from None
        if exchange.username is None:
            exchange.username = text
            self._auth = exchange
            self._proto.expect_auth_response()
            return f"334 {LOGIN_PASSWORD_PROMPT}\r\n".encode("ascii")
        return self._authenticate(exchange.username, text)

    def _authenticate(self, name: str, password: str) -> bytes:
        user = self.service.auth.authenticate(name, password, self.conn.peer_ip)
        if user is None:
            return self._auth_failed()
        self.user = user
        log.info("%s: authenticated as %s", self.conn.peer_ip, user)
        return format_reply(235, "authentication successful", "2.7.0")

    def _auth_failed(self) -> bytes:
        """535 5.7.8 (RFC 4954 6); past the per-connection limit also 421 and close."""
        self.auth_failures += 1
        reply = format_reply(535, "authentication credentials invalid", "5.7.8")
        if self.auth_failures >= self.limits.auth_failures_per_connection:
            self.closing = True
            reply += format_reply(421, "too many authentication failures", "4.7.0")
        return reply
