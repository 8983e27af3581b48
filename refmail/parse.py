"""Select the parsing core: the compiled ``_parse`` or the pure twin ``_parse_py``.

``REFMAIL_NO_EXTENSIONS=1`` forces the twin (as aiohttp's ``AIOHTTP_NO_EXTENSIONS`` does);
so does a missing build.  ``IMPLEMENTATION`` says which one is in use: ``"cython"`` or
``"python"``.  This is the only place outside cli.py that reads the environment (DESIGN.md).
"""

from __future__ import annotations

import os

from refmail._parse_errors import LineTooLong, ParseError

if os.environ.get("REFMAIL_NO_EXTENSIONS"):
    from refmail import _parse_py as _core

    IMPLEMENTATION = "python"
else:
    try:
        from refmail import _parse as _core  # type: ignore[no-redef]

        IMPLEMENTATION = "cython"
    except ImportError:
        from refmail import _parse_py as _core

        IMPLEMENTATION = "python"

next_line = _core.next_line
parse_smtp_command = _core.parse_smtp_command
parse_smtp_path = _core.parse_smtp_path
read_data = _core.read_data
dot_stuff = _core.dot_stuff
header_end = _core.header_end
parse_headers = _core.parse_headers
header_fields = _core.header_fields
mime_parts = _core.mime_parts
split_header_fields = _core.split_header_fields
address_tokens = _core.address_tokens
ADDRESS_ATOM = _core.ADDRESS_ATOM
ADDRESS_QUOTED = _core.ADDRESS_QUOTED
ADDRESS_COMMENT = _core.ADDRESS_COMMENT
ADDRESS_LITERAL = _core.ADDRESS_LITERAL
mbox_quote = _core.mbox_quote
mbox_unquote = _core.mbox_unquote
mbox_scan = _core.mbox_scan
to_crlf = _core.to_crlf
crlf_size = _core.crlf_size
DATA_AT_LINE_START = _core.DATA_AT_LINE_START
DATA_PREV_CRLF = _core.DATA_PREV_CRLF
DATA_INITIAL = _core.DATA_INITIAL
DATA_BARE_LF = _core.DATA_BARE_LF
DATA_8BIT = _core.DATA_8BIT
DATA_LONG_LINE = _core.DATA_LONG_LINE
DATA_NUL = _core.DATA_NUL
imap_tokenize = _core.imap_tokenize
imap_literal_at_end = _core.imap_literal_at_end
imap_quote = _core.imap_quote
imap_sequence_set = _core.imap_sequence_set
IMAP_ATOM = _core.IMAP_ATOM
IMAP_QUOTED = _core.IMAP_QUOTED
IMAP_LITERAL = _core.IMAP_LITERAL
IMAP_LIST = _core.IMAP_LIST

__all__ = [
    "IMPLEMENTATION",
    "LineTooLong",
    "ParseError",
    "next_line",
    "parse_smtp_command",
    "parse_smtp_path",
    "read_data",
    "dot_stuff",
    "header_end",
    "parse_headers",
    "header_fields",
    "mime_parts",
    "split_header_fields",
    "address_tokens",
    "ADDRESS_ATOM",
    "ADDRESS_QUOTED",
    "ADDRESS_COMMENT",
    "ADDRESS_LITERAL",
    "mbox_quote",
    "mbox_unquote",
    "mbox_scan",
    "to_crlf",
    "crlf_size",
    "DATA_AT_LINE_START",
    "DATA_PREV_CRLF",
    "DATA_INITIAL",
    "DATA_BARE_LF",
    "DATA_8BIT",
    "DATA_LONG_LINE",
    "DATA_NUL",
    "imap_tokenize",
    "imap_literal_at_end",
    "imap_quote",
    "imap_sequence_set",
    "IMAP_ATOM",
    "IMAP_QUOTED",
    "IMAP_LITERAL",
    "IMAP_LIST",
]
