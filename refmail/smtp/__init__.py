"""SMTP reception (RFC 5321): sans-IO framing in ``protocol``, the verbs in ``session``."""

from refmail.smtp.session import SMTPService, SMTPSession

__all__ = ["SMTPService", "SMTPSession"]
