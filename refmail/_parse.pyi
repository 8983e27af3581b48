"""The parsing core's one API.

``refmail/_parse.pyx`` (Cython) and ``refmail/_parse_py.py`` (pure Python) both implement
exactly this: same names, same results, same exceptions (the exception classes themselves
live in ``refmail/_parse_errors.py`` and are shared by both).  Import it through
``refmail.parse``, never directly.

Everything takes and returns ``bytes``; offsets are byte offsets into the argument.
"""

from refmail._parse_errors import LineTooLong as LineTooLong
from refmail._parse_errors import ParseError as ParseError

# ---------------------------------------------------------------------------- lines

def next_line(buf: bytes, start: int, search_from: int, max_len: int) -> int:
    """Find the end of the line that begins at ``start``.

    Returns the offset just past the first LF at or after ``search_from`` (callers pass the
    offset where their previous search stopped, so dribbled bytes are not rescanned), or -1
    when there is no LF yet.  ``max_len`` bounds the line *including* its line ending: when the
    line from ``start`` would exceed it (an LF found past ``start + max_len``, or no LF and
    ``len(buf) - start > max_len``), raises ``LineTooLong``.
    """

# ---------------------------------------------------------------------------- SMTP

def parse_smtp_command(line: bytes) -> tuple[bytes, bytes]:
    """Split an SMTP command line (CRLF or LF included or not) into (VERB, argument).

    The verb is upper-cased ASCII letters; the argument is the rest after one or more spaces,
    with trailing spaces and the line ending removed.  RFC 5321 4.1.1.  Raises ``ParseError``
    for an empty line, a verb of anything but letters, or a NUL byte anywhere.
    """

def parse_smtp_path(arg: bytes, keyword: bytes) -> tuple[bytes, list[tuple[bytes, bytes | None]]]:
    """Parse ``MAIL``/``RCPT`` arguments: ``keyword`` is ``b"FROM"`` or ``b"TO"``.

    ``b"FROM:<a@b.c> SIZE=100 BODY=8BITMIME"`` -> ``(b"a@b.c", [(b"SIZE", b"100"), (b"BODY",
    b"8BITMIME")])``.  The keyword matches case-insensitively; spaces between ``:`` and ``<``
    are tolerated (a common client fault).  RFC 5321 4.1.2 grammar: Reverse-path / Forward-path
    with an optional source route ``@a,@b:`` that is dropped (4.1.1.3, C.), a Mailbox of
    Dot-string or Quoted-string local part and a Domain or address literal (``[1.2.3.4]``,
    ``[IPv6:...]``).  ``<>`` gives ``b""`` (null reverse path; only valid for FROM, but the
    caller decides).  Parameter keywords are upper-cased, values kept as sent (RFC 5321
    esmtp-keyword/esmtp-value).  UTF-8 in local part or domain is accepted (RFC 6531: the
    caller checks that SMTPUTF8 was requested).  Raises ``ParseError`` with a short reason for
    anything else: missing brackets, empty local part, a bare ``@``, control characters, bad
    parameter syntax.
    """

DATA_AT_LINE_START: int  # state bit: the next byte begins a line
DATA_PREV_CRLF: int  # state bit: the previous line ended with CRLF (or none yet)
DATA_INITIAL: int  # DATA_AT_LINE_START | DATA_PREV_CRLF: the state right after 354
DATA_BARE_LF: int  # flag: a line ended in LF without CR (normalized to CRLF in the output)
DATA_8BIT: int  # flag: a byte >= 0x80 was seen
DATA_LONG_LINE: int  # flag: a line exceeded max_line (RFC 5321 4.5.3.1.6)
DATA_NUL: int  # flag: a NUL byte was seen

def read_data(buf: bytes, state: int, max_line: int) -> tuple[bytes, int, bool, int, int]:
    """Consume DATA content (RFC 5321 4.1.1.4, dot-unstuffing 4.5.2).

    Returns ``(out, consumed, done, state, flags)``.  Processes complete lines of ``buf``
    (up to and including an LF); a trailing incomplete line is left unconsumed unless it is
    already longer than ``max_line``, in which case ``max_line`` bytes of it are consumed and
    emitted, ``DATA_LONG_LINE`` is flagged and the state says we are mid-line.  ``out`` is the
    unstuffed content with every line ending as CRLF.  A line that begins with ``.`` (at line
    start) loses that dot.  The end is a line that is exactly ``.\\r\\n`` at line start and
    whose previous line ended with CRLF (or which is the first line): then ``done`` is True and
    ``consumed`` counts through that terminator; nothing after it is consumed.  ``.\\n`` or a
    terminator after a bare-LF line is *not* the end (SMTP smuggling defence): it is content.
    ``flags`` ORs the DATA_* flags seen in the consumed bytes.
    """

def dot_stuff(data: bytes) -> bytes:
    """Add a ``.`` before every line that begins with ``.`` (RFC 5321 4.5.2, RFC 1939 3).

    ``data`` uses CRLF line endings; no terminator is added.
    """

# ---------------------------------------------------------------------------- messages

def header_end(data: bytes) -> int:
    """Offset just past the blank line that ends the header block (``\\n\\n``, ``\\r\\n\\r\\n``
    or a mix), or ``len(data)`` when there is none (RFC 5322 2.1: header only).  When data
    starts with a blank line the header block is empty and the result is the blank line's end.
    """

def parse_headers(block: bytes) -> list[tuple[bytes, bytes]]:
    """Split a header block into ``(name, value)`` pairs, in order (RFC 5322 2.2, 2.2.3).

    Folded lines are unfolded (the CRLF/LF before the continuation's whitespace is removed,
    the whitespace kept); the value has leading whitespace after the colon and its trailing
    line ending removed.  A line without a colon that is not a continuation is skipped.
    The names are kept as sent (callers compare case-insensitively).
    """

def header_fields(
    data: bytes, start: int, end: int
) -> tuple[list[tuple[bytes, bytes, int, int]], int]:
    """The header of the entity (message or body part) at ``data[start:end]``: its fields
    as ``(name, value, field_start, field_end)`` and the offset where its body starts
    (RFC 5322 2.2, 2.2.3; RFC 2045 3 for body parts).

    Lines end at LF.  The header ends with its blank line (``\\n`` or ``\\r\\n`` alone; the
    body starts after it), or before the first line that is neither a field nor a
    continuation (a body without a separating blank line: the body starts at that line), or
    at ``end``.  A field line is a name of ftext (RFC 5322 3.6.8: bytes 0x21-0x7E but ``:``)
    with optional spaces or tabs before the first ``:``; a line beginning with a space or tab
    after a field continues it.  ``value`` is the field unfolded: from after the colon to the
    field's end, each line's LF and the CRs just before it removed, then leading spaces and
    tabs.  ``field_start:field_end`` is the raw span, every folded line and the final line
    ending included.  The name is kept as sent.  ``ValueError`` unless
    ``0 <= start <= end <= len(data)``.
    """

def mime_parts(data: bytes, start: int, end: int, boundary: bytes) -> list[tuple[int, int]]:
    """Spans ``(start, end)`` of the body parts of the multipart body ``data[start:end]``
    whose boundary parameter is ``boundary`` (RFC 2046 5.1.1).

    A delimiter is ``--boundary`` at ``start`` or right after an LF, then only spaces, tabs,
    CRs and LFs up to the end of its line (``--`` first for the close delimiter); anything
    else there (``--boundaryX``) is not a delimiter.  A part starts after its delimiter's
    line and ends before the next delimiter, whose preceding line ending (LF or CRLF) belongs
    to the delimiter.  Preamble and epilogue are not parts; a missing close delimiter ends
    the last part at ``end``.  ``ValueError`` unless ``0 <= start <= end <= len(data)``.
    """

def split_header_fields(fields: bytes, names: tuple[bytes, ...]) -> tuple[bytes, bytes]:
    """Header field lines -> ``(others, named)``: the lines of the fields called one of
    ``names`` (lower-case; a field's name is what precedes its first ``:`` unless that is the
    first byte, stripped of ASCII whitespace and lower-cased) and the lines of all the
    others, each in order and byte-exact, so that the mbox store can drop its own headers
    (``X-UID``, ``Status``, ...) from a message as served.  Lines end at LF; a line starting
    with a space or tab goes with the line before it (RFC 5322 2.2.3), a first line that does
    is among the others, and so is a line without a name.  ``TypeError`` when ``names`` is
    not a tuple of bytes.
    """

ADDRESS_ATOM: int  # address token kind: a run of bytes that are neither specials nor space
ADDRESS_QUOTED: int  # address token kind: a quoted string, quotes included
ADDRESS_COMMENT: int  # address token kind: a comment's content, parentheses excluded
ADDRESS_LITERAL: int  # address token kind: a domain literal ``[...]``, brackets included

def address_tokens(raw: bytes) -> list[tuple[int, int, int]]:
    """The lexemes of an address header (RFC 5322 3.2: From, To, Cc ...) as
    ``(kind, start, end)`` byte spans, for ENVELOPE's address structures (RFC 3501 7.4.2).

    Spaces, tabs, CRs and LFs separate tokens and are dropped.  A quoted string runs from
    ``"`` to the next ``"`` not escaped by ``\\`` (or to the end); a comment from ``(`` to its
    matching ``)`` (nested; ``\\`` escapes the next byte; unterminated: to the end, and
    tokenizing stops), its span excluding the parentheses; a domain literal from ``[`` to the
    next ``]`` (or the end).  Each other special (``) < > ] : ; @ \\ , .``) is a token of its
    own whose kind is its byte value; a run of any other bytes (8-bit ones included) is an
    atom.  Never raises: lenient, as mail readers are.
    """

# ---------------------------------------------------------------------------- mbox

def mbox_quote(message: bytes) -> bytes:
    """Message (CRLF or LF line endings) -> mbox body: LF line endings, mboxrd quoting.

    Every line matching ``^>*From `` gets one more ``>``.  The result ends with exactly one LF
    after the last line (a message not ending in a line ending gets one).
    """

def mbox_unquote(body: bytes) -> bytes:
    """Reverse of ``mbox_quote`` for LF text: drop one ``>`` from each ``^>+From `` line."""

def mbox_scan(data: bytes, start: int) -> list[int]:
    """Offsets of every ``From `` line that begins a message, from ``start`` on.

    A message begins at a line starting with ``From `` at ``start`` or right after an LF
    (bodies are quoted, so no other ``From `` line is at line start).  As Python's
    ``mailbox.mbox`` does.
    """

def to_crlf(data: bytes) -> bytes:
    """LF line endings -> CRLF; an LF already preceded by CR is left alone."""

def crlf_size(data: bytes) -> int:
    """``len(to_crlf(data))`` without building it."""

# ---------------------------------------------------------------------------- IMAP

IMAP_ATOM: int  # token kind: value is the atom's bytes (ASCII), case kept
IMAP_QUOTED: int  # token kind: value is a quoted string's bytes, unescaped
IMAP_LITERAL: int  # token kind: value is a literal's octets
IMAP_LIST: int  # token kind: value is the list of the parenthesized list's tokens

IMAPToken = tuple[int, "bytes | list[IMAPToken]"]

def imap_tokenize(parts: list[bytes], max_depth: int) -> list[IMAPToken]:
    """Tokenize one IMAP command (RFC 3501 9) into ``(kind, value)`` pairs.

    ``parts`` alternates the command's text and its literals' octets: ``[text]``, or
    ``[text, literal, text, ..., text]`` where each text but the last ends with the ``{n}`` /
    ``{n+}`` (RFC 3501 4.3, RFC 7888) announcing the literal after it; texts have no line
    ending.  Tokens are separated by one or more spaces (a trailing space is tolerated):

    - an atom: a run of bytes 0x21-0x7E other than ``( ) " {``; so ``\\Seen``, ``1:*``,
      ``[Gmail]/Sent`` and ``BODY[TEXT]<0.10>`` are atoms.  After ``BODY``, ``BODY.PEEK``,
      ``BINARY``, ``BINARY.PEEK`` or ``BINARY.SIZE`` (any case) a ``[section]`` may also hold
      spaces, parentheses, quotes and braces (``BODY[HEADER.FIELDS (A B)]``), bytes 0x20-0x7E;
    - a quoted string ``"..."`` in which only ``\\"`` and ``\\\\`` are escapes;
    - a literal: ``{n}`` or ``{n+}`` ending its text part, whose ``n`` (leading zeros allowed)
      must equal the length of the next part, which is the value; tokenizing goes on in the
      part after it;
    - a parenthesized list, nested at most ``max_depth`` deep (without recursion: any depth of
      input costs no stack).

    Raises ``ParseError`` with the reply text: ``unexpected ')'``, ``expected a space between
    arguments``, ``lists nested too deeply``, ``unterminated list``, ``unterminated quoted
    string``, ``invalid escape in quoted string``, ``invalid literal``, ``literal size
    mismatch``, ``literal not at the end of a line``, ``unterminated section``, ``invalid
    character in section``, ``8-bit data in atom``, ``control character in command``,
    ``invalid character``.  ``ValueError`` when ``parts`` is not a list of odd length,
    ``TypeError`` when a part is not ``bytes``.
    """

def imap_literal_at_end(line: bytes, max_digits: int) -> tuple[int, bool] | None:
    """The literal announced at the end of a command line: ``b"a APPEND x {12+}"`` ->
    ``(12, True)`` (the bool says non-synchronizing, RFC 7888); None when the line does not
    end in ``{digits}`` or ``{digits+}`` (RFC 3501 4.3, 7.5).  A count of more than
    ``max_digits`` digits gives size -1 (too big, judged without converting it); ``max_digits``
    must be 1 to 18, else ``ValueError``.
    """

def imap_quote(value: bytes) -> bytes:
    """An IMAP string for a response (RFC 3501 4.3, 9): ``"value"`` when every byte is 7-bit
    and none is NUL, CR, LF, ``"`` or ``\\``; else the literal ``{len}\\r\\n`` + value."""

def imap_sequence_set(text: bytes) -> list[tuple[int, int]]:
    """An RFC 3501 9 sequence-set: ``b"1:3,7,9:*"`` -> ``[(1, 3), (7, 7), (9, 0)]``.

    Ranges as written (``3:1`` stays ``(3, 1)``; the caller orders them), 0 standing for
    ``*``.  A number is a nz-number: 1 to 10 digits, no leading zero, at most 2**32 - 1
    (RFC 3501 9 nz-number, number: 32-bit unsigned).  Items are separated by single commas,
    with no spaces.  Raises ``ParseError("invalid sequence set")`` for anything else (an
    empty set or item, ``1:``, ``1:2:3``, ``0``, ``01``, ``4294967296``).
    """
