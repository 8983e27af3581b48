# cython: language_level=3, boundscheck=False, wraparound=False
"""The parsing core, compiled: the twin of ``_parse_py.py`` (API and contract: ``_parse.pyi``).

Inner loops run on ``const unsigned char *`` with ``memchr``; Python objects appear only at
the edges (arguments, results, error reasons).  Step order and error reasons follow
``_parse_py.py`` exactly, so both twins return the same values and raise the same
exceptions with the same messages; ``tests/parse`` checks that with hypothesis.
"""

from cpython.bytes cimport (
    PyBytes_AS_STRING,
    PyBytes_FromStringAndSize,
    PyBytes_GET_SIZE,
    _PyBytes_Resize,
)
from cpython.object cimport PyObject
from cpython.ref cimport Py_XDECREF
from libc.stdlib cimport free, malloc, realloc
from libc.string cimport memchr, memcmp, memcpy

import ipaddress

from refmail._parse_errors import LineTooLong, ParseError

# State bits and flags of read_data (same values as _parse_py).
DATA_AT_LINE_START = 1
DATA_PREV_CRLF = 2
DATA_INITIAL = 3
DATA_BARE_LF = 4
DATA_8BIT = 8
DATA_LONG_LINE = 16
DATA_NUL = 32

cdef enum:
    AT_LINE_START = 1
    PREV_CRLF = 2
    INITIAL = 3
    BARE_LF = 4
    EIGHT_BIT = 8
    LONG_LINE = 16
    HAS_NUL = 32

ctypedef const unsigned char *cbytes


cdef extern from "Python.h":
    # Raw-pointer forms, for a result that is resized in place (_PyBytes_Resize needs them).
    PyObject *_new_bytes "PyBytes_FromStringAndSize"(const char *data, Py_ssize_t size) except NULL
    char *_bytes_data "PyBytes_AS_STRING"(PyObject *obj) nogil


cdef inline cbytes _chars(bytes data):
    return <cbytes>PyBytes_AS_STRING(data)


cdef inline bytes _slice(cbytes p, Py_ssize_t start, Py_ssize_t end):
    return PyBytes_FromStringAndSize(<const char *>p + start, end - start)


cdef inline Py_ssize_t _find_lf(cbytes p, Py_ssize_t pos, Py_ssize_t end) noexcept nogil:
    """Offset of the first LF in p[pos:end], or -1."""
    cdef const void *hit
    if pos >= end:
        return -1
    hit = memchr(p + pos, 10, end - pos)
    if hit == NULL:
        return -1
    return <cbytes>hit - p


# ---------------------------------------------------------------------------- lines

def next_line(bytes buf not None, Py_ssize_t start, Py_ssize_t search_from, Py_ssize_t max_len):
    """End of the line beginning at ``start``, or -1; ``LineTooLong`` past ``max_len``."""
    cdef Py_ssize_t size = PyBytes_GET_SIZE(buf)
    cdef Py_ssize_t limit, lf
    if start < 0 or start > size:
        raise ValueError("start out of range")
    if search_from < start:
        search_from = start
    # Never look further than the longest allowed line: a flood of bytes costs one bounded scan.
    if max_len > size - start:
        limit = size
    elif max_len < 0:
        limit = start
    else:
        limit = start + max_len
    lf = _find_lf(_chars(buf), search_from, limit)
    if lf >= 0:
        return lf + 1
    if size - start > max_len:
        raise LineTooLong("line too long")
    return -1


# ---------------------------------------------------------------------------- SMTP

cdef inline bint _is_alpha(unsigned char c) noexcept nogil:
    return (65 <= c <= 90) or (97 <= c <= 122)


cdef inline bint _is_alnum(unsigned char c) noexcept nogil:
    return _is_alpha(c) or (48 <= c <= 57)


cdef inline bint _is_atext(unsigned char c) noexcept nogil:
    """atext (RFC 5322 3.2.3) plus UTF8-non-ascii (RFC 6531 3.3)."""
    if c >= 0x80 or _is_alnum(c):
        return True
    # ! # $ % & ' * + - / = ? ^ _ ` { | } ~
    return (c == 0x21 or 0x23 <= c <= 0x27 or c == 0x2A or c == 0x2B or c == 0x2D
            or c == 0x2F or c == 0x3D or c == 0x3F or 0x5E <= c <= 0x60 or 0x7B <= c <= 0x7E)


cdef inline bint _is_ldh(unsigned char c) noexcept nogil:
    """Let-dig / Ldh-str characters plus U-label bytes (RFC 6531 3.3)."""
    return c >= 0x80 or _is_alnum(c) or c == 0x2D


cdef inline bint _is_qtext(unsigned char c) noexcept nogil:
    """qtextSMTP = %d32-33 / %d35-91 / %d93-126, plus UTF8-non-ascii (RFC 6531 3.3)."""
    return c >= 0x80 or c == 32 or c == 33 or 35 <= c <= 91 or 93 <= c <= 126


cdef inline bint _is_esmtp_value(unsigned char c) noexcept nogil:
    """esmtp-value = 1*(%d33-60 / %d62-126), plus UTF8-non-ascii (RFC 6531 3.3)."""
    return c >= 0x80 or 33 <= c <= 60 or 62 <= c <= 126


cdef inline unsigned char _upper(unsigned char c) noexcept nogil:
    return c - 32 if 97 <= c <= 122 else c


def parse_smtp_command(bytes line not None):
    """Split an SMTP command line into (VERB, argument) (RFC 5321 4.1.1)."""
    cdef cbytes p = _chars(line)
    cdef Py_ssize_t n = PyBytes_GET_SIZE(line)
    cdef Py_ssize_t i = 0, k, start, end
    cdef bint letters = True
    cdef bytes verb
    cdef char *v
    if n and memchr(p, 0, n) != NULL:
        raise ParseError("NUL byte in command")
    if n >= 2 and p[n - 2] == 13 and p[n - 1] == 10:
        n -= 2
    elif n >= 1 and p[n - 1] == 10:
        n -= 1
    if n == 0:
        raise ParseError("empty command")
    while i < n and p[i] != 32:
        if not _is_alpha(p[i]):
            letters = False
        i += 1
    if i == 0 or not letters:
        raise ParseError("bad command verb")
    verb = PyBytes_FromStringAndSize(NULL, i)
    v = PyBytes_AS_STRING(verb)
    for k in range(i):
        v[k] = <char>_upper(p[k])
    start = i
    while start < n and p[start] == 32:
        start += 1
    end = n
    while end > start and p[end - 1] == 32:
        end -= 1
    return verb, _slice(p, start, end)


def parse_smtp_path(bytes arg not None, bytes keyword not None):
    """MAIL FROM / RCPT TO argument -> (mailbox, parameters) (RFC 5321 4.1.2, 4.1.1.3)."""
    cdef cbytes p = _chars(arg)
    cdef cbytes kw = _chars(keyword)
    cdef Py_ssize_t size = PyBytes_GET_SIZE(arg)
    cdef Py_ssize_t klen = PyBytes_GET_SIZE(keyword)
    cdef Py_ssize_t i, pos, mailbox_start
    cdef bint high = False, routed, is_to
    cdef unsigned char c
    for i in range(size):
        c = p[i]
        if c < 0x20 or c == 0x7F:
            raise ParseError("control character in argument")
        if c >= 0x80:
            high = True
    if high:
        try:
            arg.decode("utf-8")
        except UnicodeDecodeError:
            raise ParseError("invalid UTF-8 in argument") from None
    if size < klen + 1 or p[klen] != 0x3A:
        raise ParseError(f"expected {keyword.decode('latin-1').upper()}:")
    for i in range(klen):
        if _upper(p[i]) != _upper(kw[i]):
            raise ParseError(f"expected {keyword.decode('latin-1').upper()}:")
    pos = klen + 1
    while pos < size and p[pos] == 32:  # tolerated: "MAIL FROM: <a@b>" (common client fault)
        pos += 1
    if pos >= size or p[pos] != 0x3C:
        raise ParseError("missing <")
    pos += 1
    if pos < size and p[pos] == 0x3E:
        return b"", _esmtp_params(p, size, pos + 1)
    routed = pos < size and p[pos] == 0x40
    if routed:
        pos = _skip_source_route(p, size, pos)
    mailbox_start = pos
    pos = _local_part_end(p, size, pos)
    if pos >= size or p[pos] != 0x40:
        # RFC 5321 4.1.1.3: "RCPT TO:<Postmaster>" without a domain must be accepted.
        is_to = klen == 2 and _upper(kw[0]) == 0x54 and _upper(kw[1]) == 0x4F
        if (pos < size and p[pos] == 0x3E and not routed and is_to
                and pos - mailbox_start == 10 and _equal_nocase(p + mailbox_start, b"POSTMASTER", 10)):
            return _slice(p, mailbox_start, pos), _esmtp_params(p, size, pos + 1)
        if pos >= size or p[pos] == 0x3E:
            raise ParseError("missing domain")
        raise ParseError("bad local part")
    pos += 1
    if pos < size and p[pos] == 0x5B:
        pos = _address_literal_end(p, size, pos)
        if pos >= size or p[pos] != 0x3E:
            raise ParseError("missing >")
    else:
        pos = _domain_end(p, size, pos)
        if pos < 0:
            raise ParseError("bad domain")
        if pos >= size:
            raise ParseError("missing >")
        if p[pos] != 0x3E:
            raise ParseError("bad domain")
    return _slice(p, mailbox_start, pos), _esmtp_params(p, size, pos + 1)


cdef bint _equal_nocase(cbytes p, const char *upper_ascii, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(n):
        if _upper(p[i]) != <unsigned char>upper_ascii[i]:
            return False
    return True


cdef Py_ssize_t _skip_source_route(cbytes p, Py_ssize_t size, Py_ssize_t pos) except -1:
    """A-d-l = At-domain *( "," At-domain ) ":" (RFC 5321 4.1.2); dropped per 4.1.1.3 / C."""
    while True:
        pos = _domain_end(p, size, pos + 1)  # past the "@"
        if pos < 0 or pos >= size:
            raise ParseError("bad source route")
        if p[pos] == 0x3A:
            return pos + 1
        if p[pos] != 0x2C or pos + 1 >= size or p[pos + 1] != 0x40:
            raise ParseError("bad source route")
        pos += 1


cdef Py_ssize_t _local_part_end(cbytes p, Py_ssize_t size, Py_ssize_t pos) except -1:
    """Local-part = Dot-string / Quoted-string (RFC 5321 4.1.2); returns its end."""
    if pos < size and p[pos] == 0x22:
        pos += 1
        while True:
            while pos < size and _is_qtext(p[pos]):
                pos += 1
            if pos >= size:
                raise ParseError("unterminated quoted string")
            if p[pos] == 0x22:
                return pos + 1
            # Only a backslash is left (controls were refused up front): quoted-pairSMTP.
            if pos + 1 >= size:
                raise ParseError("unterminated quoted string")
            if not 0x20 <= p[pos + 1] <= 0x7E:
                raise ParseError("bad quoted string")
            pos += 2
    if pos >= size or not _is_atext(p[pos]):
        if pos < size and p[pos] == 0x40:
            raise ParseError("empty local part")
        raise ParseError("bad local part")
    while pos < size and _is_atext(p[pos]):
        pos += 1
    while pos < size and p[pos] == 0x2E:
        pos += 1
        if pos >= size or not _is_atext(p[pos]):
            raise ParseError("bad local part")
        while pos < size and _is_atext(p[pos]):
            pos += 1
    return pos


cdef Py_ssize_t _domain_end(cbytes p, Py_ssize_t size, Py_ssize_t pos) noexcept nogil:
    """Domain = sub-domain *("." sub-domain) (RFC 5321 4.1.2); its end, or -1."""
    cdef Py_ssize_t end
    while True:
        end = pos
        while end < size and _is_ldh(p[end]):
            end += 1
        if end == pos:
            return -1
        # sub-domain = Let-dig [Ldh-str]: no hyphen first or last.
        if p[pos] == 0x2D or p[end - 1] == 0x2D:
            return -1
        if end < size and p[end] == 0x2E:
            pos = end + 1
            continue
        return end


cdef Py_ssize_t _address_literal_end(cbytes p, Py_ssize_t size, Py_ssize_t pos) except -1:
    """address-literal = "[" ( IPv4 / IPv6 / General-address-literal ) "]" (RFC 5321 4.1.3)."""
    cdef const void *hit = NULL
    cdef Py_ssize_t close
    if pos + 1 < size:
        hit = memchr(p + pos + 1, 0x5D, size - pos - 1)
    if hit == NULL:
        raise ParseError("bad address literal")
    close = <cbytes>hit - p
    if not _valid_address_literal(p, pos + 1, close):
        raise ParseError("bad address literal")
    return close + 1


cdef bint _valid_address_literal(cbytes p, Py_ssize_t start, Py_ssize_t end) except -1:
    """IPv4-address-literal, "IPv6:" IPv6-addr, or Standardized-tag ":" 1*dcontent."""
    cdef const void *hit = NULL
    cdef Py_ssize_t colon, i
    cdef unsigned char c
    if end > start:
        hit = memchr(p + start, 0x3A, end - start)
    if hit == NULL:
        return _valid_ipv4(p, start, end)
    colon = <cbytes>hit - p
    # Standardized-tag = Ldh-str = *( ALPHA / DIGIT / "-" ) Let-dig
    if colon == start or not _is_alnum(p[colon - 1]):
        return False
    for i in range(start, colon):
        if not (_is_alnum(p[i]) or p[i] == 0x2D):
            return False
    if colon - start == 4 and _equal_nocase(p + start, b"IPV6", 4):
        return _valid_ipv6(p, colon + 1, end)
    if colon + 1 >= end:
        return False
    for i in range(colon + 1, end):
        c = p[i]
        if not (33 <= c <= 90 or 94 <= c <= 126):  # dcontent
            return False
    return True


cdef bint _valid_ipv4(cbytes p, Py_ssize_t pos, Py_ssize_t end) noexcept nogil:
    """IPv4-address-literal = Snum 3("." Snum), Snum = 1*3DIGIT of value 0-255."""
    cdef int group, digits, value
    for group in range(4):
        if group:
            if pos >= end or p[pos] != 0x2E:
                return False
            pos += 1
        digits = 0
        value = 0
        while pos < end and 48 <= p[pos] <= 57 and digits < 3:
            value = value * 10 + (p[pos] - 48)
            digits += 1
            pos += 1
        if digits == 0 or value > 255:
            return False
    return pos == end


cdef bint _valid_ipv6(cbytes p, Py_ssize_t start, Py_ssize_t end) except -1:
    """IPv6-addr (RFC 5321 4.1.3), checked by the stdlib; zone ids ("%eth0") are refused."""
    cdef Py_ssize_t i
    cdef unsigned char c
    if start >= end:
        return False
    for i in range(start, end):
        c = p[i]
        if not (48 <= c <= 58 or 65 <= c <= 70 or 97 <= c <= 102 or c == 0x2E):
            return False
    try:
        ipaddress.IPv6Address(_slice(p, start, end).decode("ascii"))
    except ValueError:
        return False
    return True


cdef list _esmtp_params(cbytes p, Py_ssize_t size, Py_ssize_t pos):
    """Mail-parameters / Rcpt-parameters after the path (RFC 5321 4.1.2)."""
    cdef list params = []
    cdef Py_ssize_t start, end, k, i
    cdef bytes name
    cdef char *q
    if pos >= size:
        return params
    if p[pos] != 32:
        raise ParseError("bad parameter")
    while True:
        while pos < size and p[pos] == 32:
            pos += 1
        if pos >= size:
            return params
        start = pos
        end = pos
        while end < size and p[end] != 32:
            end += 1
        # esmtp-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-")
        if not _is_alnum(p[start]):
            raise ParseError("bad parameter")
        k = start + 1
        while k < end and (_is_alnum(p[k]) or p[k] == 0x2D):
            k += 1
        name = PyBytes_FromStringAndSize(NULL, k - start)
        q = PyBytes_AS_STRING(name)
        for i in range(start, k):
            q[i - start] = <char>_upper(p[i])
        if k == end:
            params.append((name, None))
        else:
            if p[k] != 0x3D or k + 1 >= end:
                raise ParseError("bad parameter")
            for i in range(k + 1, end):
                if not _is_esmtp_value(p[i]):
                    raise ParseError("bad parameter")
            params.append((name, _slice(p, k + 1, end)))
        pos = end


def read_data(bytes buf not None, int state, Py_ssize_t max_line):
    """Unstuff DATA content and find its end (RFC 5321 4.1.1.4, 4.5.2); see ``_parse.pyi``."""
    cdef cbytes p = _chars(buf)
    cdef Py_ssize_t n = PyBytes_GET_SIZE(buf)
    cdef Py_ssize_t pos = 0, o = 0, lf, start, cut, i, consumed
    cdef bint at_line_start, prev_crlf, done = False
    cdef int flags = 0
    cdef unsigned char high = 0
    cdef _OutBuffer out
    if max_line < 3:
        # A shorter limit would cut the terminator line itself into pieces.
        raise ValueError("max_line must be at least 3")
    at_line_start = (state & AT_LINE_START) != 0
    prev_crlf = (state & PREV_CRLF) != 0
    # Without bare LFs the output is never longer than the input; each bare LF adds a CR, and
    # the result grows only then.  It is written in place: no second copy of a 1 MB message.
    _out_open(&out, n + 64)
    try:
        with nogil:
            while pos < n:
                # RFC 5321 4.1.1.4: CRLF "." CRLF ends the data; "." LF, or "." CRLF after a
                # bare-LF line, is content (the SMTP smuggling defence).
                if (at_line_start and prev_crlf and n - pos >= 3 and p[pos] == 0x2E
                        and p[pos + 1] == 13 and p[pos + 2] == 10):
                    done = True
                    break
                lf = _find_lf(p, pos, n)
                if lf < 0:
                    break
                if lf + 1 - pos > max_line:
                    flags |= LONG_LINE
                start = pos
                if at_line_start and p[pos] == 0x2E:  # RFC 5321 4.5.2 transparency
                    start += 1
                if o + lf + 2 - start > out.cap:
                    _out_grow(&out, 2 * out.cap + lf + 2 - start)
                if lf > start and p[lf - 1] == 13:
                    memcpy(out.data + o, p + start, lf + 1 - start)
                    o += lf + 1 - start
                    prev_crlf = True
                else:
                    memcpy(out.data + o, p + start, lf - start)
                    o += lf - start
                    out.data[o] = 13
                    out.data[o + 1] = 10
                    o += 2
                    flags |= BARE_LF
                    prev_crlf = False
                at_line_start = True
                pos = lf + 1
            if done:
                state = INITIAL
                consumed = pos + 3
            elif n - pos > max_line:
                # RFC 5321 4.5.3.1.6: a line past the limit is passed on in pieces and flagged,
                # so that an endless line cannot grow the buffer.  The byte after the piece is
                # in the buffer and is not an LF, so a CRLF is never split across calls.
                cut = max_line
                start = pos
                if at_line_start and p[pos] == 0x2E:
                    start += 1
                if o + pos + cut - start > out.cap:
                    _out_grow(&out, o + pos + cut - start)
                memcpy(out.data + o, p + start, pos + cut - start)
                o += pos + cut - start
                flags |= LONG_LINE
                consumed = pos + cut
                state = 0
            else:
                consumed = pos
                state = (AT_LINE_START if at_line_start else 0) | (PREV_CRLF if prev_crlf else 0)
            for i in range(consumed):
                high |= p[i]
            if high & 0x80:
                flags |= EIGHT_BIT
            if consumed and memchr(p, 0, consumed) != NULL:
                flags |= HAS_NUL
        return _out_close(&out, o), consumed, done, state, flags
    finally:
        Py_XDECREF(out.obj)


cdef struct _OutBuffer:
    PyObject *obj  # a bytes object we alone hold, so that it may be resized
    unsigned char *data
    Py_ssize_t cap


cdef int _out_open(_OutBuffer *out, Py_ssize_t cap) except -1:
    out.obj = _new_bytes(NULL, cap)
    out.data = <unsigned char *>_bytes_data(out.obj)
    out.cap = cap
    return 0


cdef int _out_grow(_OutBuffer *out, Py_ssize_t cap) except -1 nogil:
    with gil:
        _PyBytes_Resize(&out.obj, cap)
    out.data = <unsigned char *>_bytes_data(out.obj)
    out.cap = cap
    return 0


cdef bytes _out_close(_OutBuffer *out, Py_ssize_t size):
    """The result, cut to ``size``; the buffer's own reference is dropped by the caller."""
    _PyBytes_Resize(&out.obj, size)
    return <bytes>out.obj


def dot_stuff(bytes data not None):
    """Double a leading ``.`` on every line (RFC 5321 4.5.2, RFC 1939 3)."""
    cdef cbytes p = _chars(data)
    cdef Py_ssize_t n = PyBytes_GET_SIZE(data)
    cdef Py_ssize_t extra = 0, pos = 0, lf, o = 0
    cdef bytes result
    cdef char *out
    if n == 0:
        return data
    # Count first, so the result is built once at its final size.
    if p[0] == 0x2E:
        extra += 1
    lf = _find_lf(p, 0, n)
    while lf >= 0:
        if lf + 1 < n and p[lf + 1] == 0x2E:
            extra += 1
        lf = _find_lf(p, lf + 1, n)
    if extra == 0:
        return data
    result = PyBytes_FromStringAndSize(NULL, n + extra)
    out = PyBytes_AS_STRING(result)
    while pos < n:
        if p[pos] == 0x2E:
            out[o] = 0x2E
            o += 1
        lf = _find_lf(p, pos, n)
        if lf < 0:
            lf = n - 1
        memcpy(out + o, p + pos, lf + 1 - pos)
        o += lf + 1 - pos
        pos = lf + 1
    return result


# Header blocks, MIME, addresses and mbox; then IMAP (textual includes, same module).
include "_parse_mail.pxi"
include "_parse_imap.pxi"
