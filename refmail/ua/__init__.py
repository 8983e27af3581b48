"""The terminal user agent: ``send``, ``inbox`` and ``read`` against any SMTP/IMAP server."""
