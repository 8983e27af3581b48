"""refmail: an RFC-exact SMTP, POP3 and IMAP server over mbox files."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["MailServer", "__version__"]

if TYPE_CHECKING:
    from refmail.embedded import MailServer


def __getattr__(name: str) -> Any:
    """``refmail.MailServer`` is imported on first use, so ``import refmail`` stays cheap
    (the CLI and the parsing core do not need the server)."""
    if name == "MailServer":
        from refmail.embedded import MailServer

        return MailServer
    raise AttributeError(f"module 'refmail' has no attribute {name!r}")
