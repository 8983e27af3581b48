"""POP3 (RFC 1939) with CAPA (RFC 2449), STLS (RFC 2595), SASL PLAIN (RFC 5034), UTF8 (RFC 6856).

``protocol`` is the sans-IO wire format; ``session`` the semantics over a user's INBOX.
"""

from refmail.pop3.session import POP3Service, POP3Session

__all__ = ["POP3Service", "POP3Session"]
