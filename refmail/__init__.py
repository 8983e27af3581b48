"""refmail: an RFC-exact SMTP, POP3 and IMAP server over mbox files."""

__version__ = "0.1.0"
