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


# ---------------------------------------------------------------------------- messages

def header_end(bytes data not None):
    """Offset past the blank line ending the header block, else ``len(data)`` (RFC 5322 2.1)."""
    cdef cbytes p = _chars(data)
    cdef Py_ssize_t n = PyBytes_GET_SIZE(data)
    cdef Py_ssize_t lf
    if n >= 1 and p[0] == 10:
        return 1
    if n >= 2 and p[0] == 13 and p[1] == 10:
        return 2
    lf = _find_lf(p, 0, n)
    while lf >= 0:
        if lf + 1 < n and p[lf + 1] == 10:
            return lf + 2
        if lf + 2 < n and p[lf + 1] == 13 and p[lf + 2] == 10:
            return lf + 3
        lf = _find_lf(p, lf + 1, n)
    return n


def parse_headers(bytes block not None):
    """Header block -> [(name, unfolded value)] (RFC 5322 2.2, 2.2.3); see ``_parse_py``."""
    cdef cbytes p = _chars(block)
    cdef Py_ssize_t n = PyBytes_GET_SIZE(block)
    cdef Py_ssize_t pos = 0, lf, line_end, e, colon, name_end, i
    cdef Py_ssize_t name_start = 0, field_name_end = 0, value_start = 0, value_end = 0
    cdef bint have = False, valid
    cdef const void *hit
    cdef list fields = []
    while True:
        lf = _find_lf(p, pos, n)
        line_end = n if lf < 0 else lf
        e = line_end
        if e > pos and p[e - 1] == 13:
            e -= 1
        if e > pos and (p[pos] == 32 or p[pos] == 9):
            if have:
                value_end = e
        else:
            if have:
                fields.append((_slice(p, name_start, field_name_end),
                               _unfold(p, value_start, value_end)))
                have = False
            if e == pos:
                break
            hit = memchr(p + pos, 0x3A, e - pos)
            if hit != NULL:
                colon = <cbytes>hit - p
                name_end = colon
                while name_end > pos and (p[name_end - 1] == 32 or p[name_end - 1] == 9):
                    name_end -= 1
                # field-name = 1*ftext (RFC 5322 3.6.8)
                valid = name_end > pos
                for i in range(pos, name_end):
                    if not (33 <= p[i] <= 126):
                        valid = False
                        break
                if valid:
                    name_start = pos
                    field_name_end = name_end
                    value_start = colon + 1
                    while value_start < e and (p[value_start] == 32 or p[value_start] == 9):
                        value_start += 1
                    value_end = e
                    have = True
        if lf < 0:
            break
        pos = lf + 1
    if have:
        fields.append((_slice(p, name_start, field_name_end), _unfold(p, value_start, value_end)))
    return fields


cdef bytes _unfold(cbytes p, Py_ssize_t start, Py_ssize_t end):
    """p[start:end] without its line endings (LF and the one CR before it): RFC 5322 2.2.3."""
    cdef Py_ssize_t lf = _find_lf(p, start, end), o = 0, piece
    cdef bytes result
    cdef char *out
    if lf < 0:
        return _slice(p, start, end)
    out = <char *>malloc(end - start)
    if out == NULL:
        raise MemoryError()
    try:
        while lf >= 0:
            piece = lf - start
            if piece > 0 and p[lf - 1] == 13:
                piece -= 1
            memcpy(out + o, p + start, piece)
            o += piece
            start = lf + 1
            lf = _find_lf(p, start, end)
        memcpy(out + o, p + start, end - start)
        o += end - start
        result = PyBytes_FromStringAndSize(out, o)
    finally:
        free(out)
    return result


cdef int _check_span(Py_ssize_t size, Py_ssize_t start, Py_ssize_t end) except -1:
    if not 0 <= start <= end <= size:
        raise ValueError("need 0 <= start <= end <= len(data)")
    return 0


cdef inline bint _is_ftext(unsigned char c) noexcept nogil:
    """RFC 5322 3.6.8 ftext: printable US-ASCII but the colon."""
    return 33 <= c <= 126 and c != 58


def header_fields(bytes data not None, Py_ssize_t start, Py_ssize_t end):
    """Header fields of ``data[start:end]`` with their spans, and the body start; see
    ``_parse_py``."""
    cdef cbytes p = _chars(data)
    cdef Py_ssize_t pos = start, body_start = end, line_end, lf, colon, name_end, i
    cdef Py_ssize_t field_start = 0, field_name_end = 0, value_start = 0
    cdef bint have = False, valid
    cdef const void *hit
    cdef list fields = []
    _check_span(PyBytes_GET_SIZE(data), start, end)
    while pos < end:
        lf = _find_lf(p, pos, end)
        line_end = end if lf < 0 else lf + 1
        if p[pos] == 10 or (line_end - pos == 2 and p[pos] == 13 and p[pos + 1] == 10):
            body_start = line_end
            break
        if have and (p[pos] == 32 or p[pos] == 9):
            pos = line_end
            continue
        hit = memchr(p + pos, 0x3A, line_end - pos)
        colon = -1 if hit == NULL else <cbytes>hit - p
        valid = colon > pos
        if valid:
            name_end = colon
            while name_end > pos and (p[name_end - 1] == 32 or p[name_end - 1] == 9):
                name_end -= 1
            valid = name_end > pos
            for i in range(pos, name_end):
                if not _is_ftext(p[i]):
                    valid = False
                    break
        if not valid:
            body_start = pos
            break
        if have:
            fields.append(_header_field(p, field_start, field_name_end, value_start, pos))
        have = True
        field_start = pos
        field_name_end = name_end
        value_start = colon + 1
        pos = line_end
    if have:
        fields.append(_header_field(p, field_start, field_name_end, value_start, pos))
    return fields, body_start


cdef tuple _header_field(cbytes p, Py_ssize_t start, Py_ssize_t name_end, Py_ssize_t value,
                         Py_ssize_t end):
    """(name, value unfolded: each line's LF and the CRs before it removed, then leading
    whitespace; start, end)."""
    cdef _OutBuffer out
    cdef Py_ssize_t o = 0, lf, stop, skip = 0
    cdef bytes result
    _out_open(&out, end - value)
    try:
        while value < end:
            lf = _find_lf(p, value, end)
            stop = end if lf < 0 else lf
            while stop > value and p[stop - 1] == 13:
                stop -= 1
            memcpy(out.data + o, p + value, stop - value)
            o += stop - value
            value = end if lf < 0 else lf + 1
        while skip < o and (out.data[skip] == 32 or out.data[skip] == 9):
            skip += 1
        if skip:
            result = PyBytes_FromStringAndSize(<char *>out.data + skip, o - skip)
        else:
            result = _out_close(&out, o)
    finally:
        Py_XDECREF(out.obj)
    return (_slice(p, start, name_end), result, start, end)


cdef extern from "string.h":
    # glibc (_GNU_SOURCE, which Python.h sets), the BSDs and macOS have it; linear time.
    void *memmem(const void *haystack, size_t haystack_len, const void *needle,
                 size_t needle_len) nogil


cdef inline Py_ssize_t _find(cbytes p, Py_ssize_t pos, Py_ssize_t end, cbytes needle,
                             Py_ssize_t size) noexcept nogil:
    """First offset of needle wholly inside p[pos:end], else -1 (as ``bytes.find``), in
    linear time whatever the needle (a boundary comes from the message)."""
    cdef const void *hit
    if end - pos < size:
        return -1
    hit = memmem(p + pos, end - pos, needle, size)
    return -1 if hit == NULL else <cbytes>hit - p


def mime_parts(bytes data not None, Py_ssize_t start, Py_ssize_t end, bytes boundary not None):
    """Spans of the body parts of a multipart body (RFC 2046 5.1.1); see ``_parse_py``."""
    cdef cbytes p = _chars(data)
    cdef bytes marker = b"--" + boundary
    cdef cbytes m = _chars(marker)
    cdef Py_ssize_t size = PyBytes_GET_SIZE(marker)
    cdef Py_ssize_t pos = start, part_start = -1, found, after, rest, lf, line_end, i
    cdef Py_ssize_t content_end
    cdef bint closing, blank
    cdef list spans = []
    _check_span(PyBytes_GET_SIZE(data), start, end)
    while True:
        found = _find(p, pos, end, m, size)
        if found < 0:
            break
        pos = found + 1
        if found != start and p[found - 1] != 10:
            continue
        after = found + size
        closing = after + 2 <= end and p[after] == 45 and p[after + 1] == 45
        rest = after + 2 if closing else after
        lf = _find_lf(p, rest, end)
        line_end = end if lf < 0 else lf + 1
        blank = True
        for i in range(rest, line_end):
            if not (p[i] == 32 or p[i] == 9 or p[i] == 13 or p[i] == 10):
                blank = False
                break
        if not blank:
            continue  # "--boundaryX": a longer boundary, or text
        if part_start >= 0:
            content_end = found
            if content_end > start and p[content_end - 1] == 10:
                content_end -= 1
                if content_end > start and p[content_end - 1] == 13:
                    content_end -= 1
            spans.append((part_start, max(content_end, part_start)))
        if closing:
            return spans
        part_start = line_end
        pos = line_end
    if part_start >= 0:
        spans.append((part_start, end))
    return spans


cdef inline bint _is_strip_space(unsigned char c) noexcept nogil:
    """What ``bytes.strip()`` strips: ASCII whitespace."""
    return c == 32 or 9 <= c <= 13


cdef inline unsigned char _lower(unsigned char c) noexcept nogil:
    return c + 32 if 65 <= c <= 90 else c


cdef bint _named(cbytes p, Py_ssize_t start, Py_ssize_t end, tuple names):
    """Whether p[start:end], lower-cased, is one of ``names`` (compared byte for byte)."""
    cdef bytes name
    cdef cbytes q
    cdef Py_ssize_t i
    for name in names:
        if PyBytes_GET_SIZE(name) != end - start:
            continue
        q = _chars(name)
        for i in range(end - start):
            if _lower(p[start + i]) != q[i]:
                break
        else:
            return True
    return False


def split_header_fields(bytes fields not None, names):
    """Header lines -> (fields not in ``names``, fields in them); see ``_parse_py``."""
    cdef cbytes p = _chars(fields)
    cdef Py_ssize_t n = PyBytes_GET_SIZE(fields), start = 0, end, lf, colon, a, b
    cdef Py_ssize_t o_own = 0, o_named = 0
    cdef bint to_named = False
    cdef const void *hit
    cdef _OutBuffer own, named
    if not isinstance(names, tuple) or not all(isinstance(x, bytes) for x in names):
        raise TypeError("names must be a tuple of bytes")
    own.obj = NULL
    named.obj = NULL
    try:
        _out_open(&own, n)
        _out_open(&named, n)
        while start < n:
            lf = _find_lf(p, start, n)
            end = n if lf < 0 else lf + 1
            if not (p[start] == 32 or p[start] == 9):
                hit = memchr(p + start, 0x3A, end - start)
                colon = -1 if hit == NULL else <cbytes>hit - p
                a = start
                b = colon if colon > start else start
                while a < b and _is_strip_space(p[a]):
                    a += 1
                while b > a and _is_strip_space(p[b - 1]):
                    b -= 1
                to_named = _named(p, a, b, <tuple>names)
            if to_named:
                memcpy(named.data + o_named, p + start, end - start)
                o_named += end - start
            else:
                memcpy(own.data + o_own, p + start, end - start)
                o_own += end - start
            start = end
        return _out_close(&own, o_own), _out_close(&named, o_named)
    finally:
        Py_XDECREF(own.obj)
        Py_XDECREF(named.obj)


ADDRESS_ATOM = 1
ADDRESS_QUOTED = 2
ADDRESS_COMMENT = 3
ADDRESS_LITERAL = 4


cdef inline bint _is_address_special(unsigned char c) noexcept nogil:
    """RFC 5322 3.2.3 specials (the characters that end an atom)."""
    return (c == 0x28 or c == 0x29 or c == 0x3C or c == 0x3E or c == 0x5B or c == 0x5D
            or c == 0x3A or c == 0x3B or c == 0x40 or c == 0x5C or c == 0x2C or c == 0x2E
            or c == 0x22)


cdef inline bint _is_address_space(unsigned char c) noexcept nogil:
    return c == 32 or c == 9 or c == 13 or c == 10


def address_tokens(bytes raw not None):
    """RFC 5322 3.2 lexemes of an address header as (kind, start, end); see ``_parse_py``."""
    cdef cbytes p = _chars(raw)
    cdef Py_ssize_t n = PyBytes_GET_SIZE(raw), i = 0, j, depth
    cdef unsigned char c
    cdef const void *hit
    cdef list tokens = []
    while i < n:
        c = p[i]
        if _is_address_space(c):
            i += 1
        elif c == 0x22:
            j = i + 1
            while j < n:
                if p[j] == 0x5C and j + 1 < n:
                    j += 2
                elif p[j] == 0x22:
                    j += 1
                    break
                else:
                    j += 1
            tokens.append((ADDRESS_QUOTED, i, j))
            i = j
        elif c == 0x28:
            depth = 1
            j = i + 1
            while j < n and depth:
                if p[j] == 0x5C:
                    j += 1
                elif p[j] == 0x28:
                    depth += 1
                elif p[j] == 0x29:
                    depth -= 1
                j += 1
            if depth:
                tokens.append((ADDRESS_COMMENT, i + 1, n))
                i = n
            else:
                tokens.append((ADDRESS_COMMENT, i + 1, j - 1))
                i = j
        elif c == 0x5B:
            hit = memchr(p + i, 0x5D, n - i)
            j = n if hit == NULL else <cbytes>hit - p + 1
            tokens.append((ADDRESS_LITERAL, i, j))
            i = j
        elif _is_address_special(c):
            tokens.append((c, i, i + 1))
            i += 1
        else:
            j = i + 1
            while j < n and not _is_address_special(p[j]) and not _is_address_space(p[j]):
                j += 1
            tokens.append((ADDRESS_ATOM, i, j))
            i = j
    return tokens


# ---------------------------------------------------------------------------- mbox

cdef inline bint _is_from_line(cbytes p, Py_ssize_t pos, Py_ssize_t n) noexcept nogil:
    """Whether ``>*From `` begins at ``pos`` (mboxrd, the quoting of mbox_quote)."""
    while pos < n and p[pos] == 0x3E:
        pos += 1
    return n - pos >= 5 and memcmp(p + pos, b"From ", 5) == 0


def mbox_quote(bytes message not None):
    """Message -> mboxrd body with LF line endings and one final LF."""
    cdef cbytes p = _chars(message)
    cdef Py_ssize_t n = PyBytes_GET_SIZE(message)
    cdef Py_ssize_t pos = 0, lf, end, o = 0
    cdef char *out
    cdef bytes result
    if n == 0:
        return b""
    # One ">" per line at most, plus a final LF: n + n + 1 bounds the result.
    out = <char *>malloc(2 * n + 1)
    if out == NULL:
        raise MemoryError()
    try:
        with nogil:
            while pos < n:
                if _is_from_line(p, pos, n):
                    out[o] = 0x3E
                    o += 1
                lf = _find_lf(p, pos, n)
                if lf < 0:
                    memcpy(out + o, p + pos, n - pos)
                    o += n - pos
                    out[o] = 10
                    o += 1
                    break
                end = lf - 1 if lf > pos and p[lf - 1] == 13 else lf
                memcpy(out + o, p + pos, end - pos)
                o += end - pos
                out[o] = 10
                o += 1
                pos = lf + 1
        result = PyBytes_FromStringAndSize(out, o)
    finally:
        free(out)
    return result


def mbox_unquote(bytes body not None):
    """mboxrd body -> message text: one ``>`` less on each ``^>+From `` line."""
    cdef cbytes p = _chars(body)
    cdef Py_ssize_t n = PyBytes_GET_SIZE(body)
    cdef Py_ssize_t pos = 0, lf, o = 0, next_pos
    cdef char *out
    cdef bytes result
    if n == 0:
        return body
    out = <char *>malloc(n)
    if out == NULL:
        raise MemoryError()
    try:
        with nogil:
            while pos < n:
                if p[pos] == 0x3E and _is_from_line(p, pos, n):
                    pos += 1
                lf = _find_lf(p, pos, n)
                next_pos = n if lf < 0 else lf + 1
                memcpy(out + o, p + pos, next_pos - pos)
                o += next_pos - pos
                pos = next_pos
        result = PyBytes_FromStringAndSize(out, o)
    finally:
        free(out)
    return result


def mbox_scan(bytes data not None, Py_ssize_t start):
    """Offsets of the ``From `` lines that begin messages, from ``start`` on."""
    cdef cbytes p = _chars(data)
    cdef Py_ssize_t n = PyBytes_GET_SIZE(data)
    cdef Py_ssize_t lf
    cdef list offsets = []
    if start < 0:
        raise ValueError("start out of range")
    if n - start >= 5 and memcmp(p + start, b"From ", 5) == 0:
        offsets.append(start)
    lf = _find_lf(p, start, n)
    while lf >= 0:
        if n - lf - 1 >= 5 and memcmp(p + lf + 1, b"From ", 5) == 0:
            offsets.append(lf + 1)
        lf = _find_lf(p, lf + 1, n)
    return offsets


def to_crlf(bytes data not None):
    """LF line endings -> CRLF, leaving existing CRLF alone."""
    cdef cbytes p = _chars(data)
    cdef Py_ssize_t n = PyBytes_GET_SIZE(data)
    cdef Py_ssize_t bare = _count_bare_lf(p, n), pos = 0, lf, o = 0
    cdef bytes result
    cdef char *out
    if bare == 0:
        return data
    result = PyBytes_FromStringAndSize(NULL, n + bare)
    out = PyBytes_AS_STRING(result)
    lf = _find_lf(p, 0, n)
    while lf >= 0:
        if lf > 0 and p[lf - 1] == 13:
            memcpy(out + o, p + pos, lf + 1 - pos)
            o += lf + 1 - pos
        else:
            memcpy(out + o, p + pos, lf - pos)
            o += lf - pos
            out[o] = 13
            out[o + 1] = 10
            o += 2
        pos = lf + 1
        lf = _find_lf(p, pos, n)
    memcpy(out + o, p + pos, n - pos)
    return result


def crlf_size(bytes data not None):
    """``len(to_crlf(data))`` without building it (RFC 1939 / RFC 3501 sizes)."""
    cdef Py_ssize_t n = PyBytes_GET_SIZE(data)
    return n + _count_bare_lf(_chars(data), n)


cdef Py_ssize_t _count_bare_lf(cbytes p, Py_ssize_t n) noexcept nogil:
    """Number of LFs not preceded by CR."""
    cdef Py_ssize_t count = 0
    cdef Py_ssize_t lf = _find_lf(p, 0, n)
    while lf >= 0:
        if lf == 0 or p[lf - 1] != 13:
            count += 1
        lf = _find_lf(p, lf + 1, n)
    return count


# ---------------------------------------------------------------------------- IMAP

# Token kinds of imap_tokenize (same values as _parse_py).
IMAP_ATOM = 1
IMAP_QUOTED = 2
IMAP_LITERAL = 3
IMAP_LIST = 4

cdef enum:
    MAX_COUNT_DIGITS = 18  # a literal count of up to 18 digits fits a Py_ssize_t


cdef inline bint _is_digit(unsigned char c) noexcept nogil:
    return 48 <= c <= 57


cdef inline bint _is_imap_atom_char(unsigned char c) noexcept nogil:
    """0x21-0x7E except ( ) " { (``[`` is looked at apart, for sections)."""
    return 0x20 < c < 0x7F and c != 0x28 and c != 0x29 and c != 0x22 and c != 0x7B


cdef bint _is_section_name(cbytes p, Py_ssize_t n) noexcept nogil:
    """BODY, BODY.PEEK, BINARY, BINARY.PEEK, BINARY.SIZE in any case (RFC 3501 6.4.5, RFC 3516)."""
    if n == 4:
        return _equal_nocase(p, b"BODY", 4)
    if n == 6:
        return _equal_nocase(p, b"BINARY", 6)
    if n == 9:
        return _equal_nocase(p, b"BODY.PEEK", 9)
    if n == 11:
        return _equal_nocase(p, b"BINARY.PEEK", 11) or _equal_nocase(p, b"BINARY.SIZE", 11)
    return False


cdef Py_ssize_t _literal_digits_end(cbytes p, Py_ssize_t pos, Py_ssize_t n) noexcept nogil:
    """``p[pos]`` is ``{``: the end of the digits when ``{digits}`` or ``{digits+}`` runs to
    ``n`` exactly, else -1."""
    cdef Py_ssize_t k = pos + 1, digits_end
    while k < n and _is_digit(p[k]):
        k += 1
    if k == pos + 1:
        return -1
    digits_end = k
    if k < n and p[k] == 0x2B:  # '+'
        k += 1
    if k + 1 != n or p[k] != 0x7D:  # '}' and the end
        return -1
    return digits_end


cdef bint _count_is(cbytes p, Py_ssize_t start, Py_ssize_t end, Py_ssize_t size) noexcept nogil:
    """Whether the decimal digits p[start:end] (leading zeros allowed) equal ``size``."""
    cdef Py_ssize_t value = 0
    while start < end and p[start] == 48:
        start += 1
    if end - start > MAX_COUNT_DIGITS:
        return False
    while start < end:
        value = value * 10 + (p[start] - 48)
        start += 1
    return value == size


cdef Py_ssize_t _imap_quoted_end(cbytes p, Py_ssize_t pos, Py_ssize_t n,
                                 Py_ssize_t *length) except -1:
    """quoted = DQUOTE *QUOTED-CHAR DQUOTE from just past the DQUOTE; only \\" and \\\\ are
    escapes (RFC 3501 9).  Returns the offset of the closing quote; ``length`` gets the
    unescaped length."""
    cdef Py_ssize_t count = 0
    cdef unsigned char c
    while True:
        if pos >= n:
            raise ParseError("unterminated quoted string")
        c = p[pos]
        if c == 0x22:
            length[0] = count
            return pos
        if c == 0x5C:
            if pos + 1 >= n or (p[pos + 1] != 0x22 and p[pos + 1] != 0x5C):
                raise ParseError("invalid escape in quoted string")
            pos += 1
        count += 1
        pos += 1


cdef bytes _imap_unescape(cbytes p, Py_ssize_t start, Py_ssize_t end, Py_ssize_t length):
    """The value of a quoted string checked by ``_imap_quoted_end``."""
    cdef bytes value
    cdef char *out
    cdef Py_ssize_t o = 0
    if length == end - start:
        return _slice(p, start, end)
    value = PyBytes_FromStringAndSize(NULL, length)
    out = PyBytes_AS_STRING(value)
    while start < end:
        if p[start] == 0x5C:
            start += 1
        out[o] = <char>p[start]
        o += 1
        start += 1
    return value


cdef Py_ssize_t _imap_atom_end(cbytes p, Py_ssize_t start, Py_ssize_t n) except -1:
    """End of the atom at ``start``: a run of ATOM-CHAR plus list-wildcards, ``\\`` and ``]``
    (astring, flags, LIST patterns and sequence sets share this lexeme); ``NAME[section]`` of
    a fetch attribute keeps the section's spaces and parentheses (RFC 3501 6.4.5)."""
    cdef Py_ssize_t pos = start, close, k
    cdef const void *hit
    cdef unsigned char c
    while pos < n:
        c = p[pos]
        if c == 0x5B and _is_section_name(p + start, pos - start):
            hit = memchr(p + pos, 0x5D, n - pos)
            if hit == NULL:
                raise ParseError("unterminated section")
            close = <cbytes>hit - p
            for k in range(pos, close):
                if p[k] < 0x20 or p[k] >= 0x7F:
                    raise ParseError("invalid character in section")
            pos = close + 1
            continue
        if c != 0x5B and not _is_imap_atom_char(c):
            break
        pos += 1
    if pos == start:
        raise ParseError("8-bit data in atom" if p[pos] >= 0x7F else "invalid character")
    if pos < n and p[pos] >= 0x7F:
        raise ParseError("8-bit data in atom")
    if pos < n and p[pos] < 0x20:
        raise ParseError("control character in command")
    return pos


def imap_tokenize(parts, Py_ssize_t max_depth):
    """RFC 3501 9 lexical rules over a command's text parts and the literals between them."""
    cdef Py_ssize_t last, index = 0, pos = 0, n, end, length, digits_end
    cdef bytes text, literal
    cdef cbytes p
    cdef list items = [], stack = [], inner
    cdef bint first = True
    cdef unsigned char c
    if type(parts) is not list or len(parts) % 2 == 0:
        raise ValueError("parts must be text, literal, text, ..., text")
    for part in parts:
        if type(part) is not bytes:
            raise TypeError("parts must be bytes")
    last = len(parts) - 1
    text = parts[0]
    p = _chars(text)
    n = PyBytes_GET_SIZE(text)
    while True:
        if pos >= n:
            if index < last:
                raise ParseError("literal not at the end of a line")
            if stack:
                raise ParseError("unterminated list")
            return items
        c = p[pos]
        if c == 0x29:  # ')'
            if not stack:
                raise ParseError("unexpected ')'")
            pos += 1
            inner = items
            items = stack.pop()
            items.append((IMAP_LIST, inner))
            first = False
            continue
        if not first:
            if c != 0x20:
                raise ParseError("expected a space between arguments")
            while pos < n and p[pos] == 0x20:
                pos += 1  # tolerate doubled spaces, as most servers do
            if pos >= n or p[pos] == 0x29:
                continue  # tolerate a trailing space
        first = False
        c = p[pos]
        if c == 0x28:  # '('
            if len(stack) >= max_depth:
                raise ParseError("lists nested too deeply")
            pos += 1
            stack.append(items)
            items = []
            first = True
        elif c == 0x22:  # '"'
            end = _imap_quoted_end(p, pos + 1, n, &length)
            items.append((IMAP_QUOTED, _imap_unescape(p, pos + 1, end, length)))
            pos = end + 1
        elif c == 0x7B:  # '{'
            digits_end = _literal_digits_end(p, pos, n)
            if digits_end < 0 or index >= last:
                raise ParseError("invalid literal")
            literal = parts[index + 1]
            if not _count_is(p, pos + 1, digits_end, PyBytes_GET_SIZE(literal)):
                raise ParseError("literal size mismatch")
            items.append((IMAP_LITERAL, literal))
            index += 2
            text = parts[index]
            p = _chars(text)
            n = PyBytes_GET_SIZE(text)
            pos = 0
        else:
            end = _imap_atom_end(p, pos, n)
            items.append((IMAP_ATOM, _slice(p, pos, end)))
            pos = end


def imap_literal_at_end(bytes line not None, Py_ssize_t max_digits):
    """The ``{n}`` / ``{n+}`` that ends a command line (RFC 3501 4.3, RFC 7888)."""
    cdef cbytes p = _chars(line)
    cdef Py_ssize_t n = PyBytes_GET_SIZE(line)
    cdef Py_ssize_t k, digits_end, size = 0
    cdef bint plus = False
    if not 1 <= max_digits <= MAX_COUNT_DIGITS:
        raise ValueError("max_digits out of range")
    if n < 3 or p[n - 1] != 0x7D:  # '}'
        return None
    k = n - 2
    if p[k] == 0x2B:  # '+'
        plus = True
        k -= 1
    digits_end = k + 1
    while k >= 0 and _is_digit(p[k]):
        k -= 1
    if k < 0 or k + 1 == digits_end or p[k] != 0x7B:  # '{'
        return None
    if digits_end - (k + 1) > max_digits:
        return -1, plus
    for k in range(k + 1, digits_end):
        size = size * 10 + (p[k] - 48)
    return size, plus


def imap_quote(bytes value not None):
    """An IMAP string for a response: quoted when safe, else a literal (RFC 3501 4.3)."""
    cdef cbytes p = _chars(value)
    cdef Py_ssize_t n = PyBytes_GET_SIZE(value), i
    cdef unsigned char c
    cdef bytes quoted
    cdef char *out
    for i in range(n):
        c = p[i]
        if c >= 0x80 or c == 0 or c == 13 or c == 10 or c == 0x22 or c == 0x5C:
            return b"{%d}\r\n" % n + value
    quoted = PyBytes_FromStringAndSize(NULL, n + 2)
    out = PyBytes_AS_STRING(quoted)
    out[0] = 0x22
    memcpy(out + 1, p, n)
    out[n + 1] = 0x22
    return quoted


def imap_sequence_set(bytes text not None):
    """RFC 3501 9 sequence-set -> [(first, last)]; 0 stands for ``*``; see ``_parse_py``."""
    cdef cbytes p = _chars(text)
    cdef Py_ssize_t n = PyBytes_GET_SIZE(text), pos = 0
    cdef unsigned long long first, last
    cdef list ranges = []
    while True:
        pos = _seq_number(p, n, pos, &first)
        last = first
        if pos < n and p[pos] == 0x3A:
            pos = _seq_number(p, n, pos + 1, &last)
        if pos == n:
            ranges.append((first, last))
            return ranges
        if p[pos] != 0x2C:
            raise ParseError("invalid sequence set")
        ranges.append((first, last))
        pos += 1


cdef Py_ssize_t _seq_number(cbytes p, Py_ssize_t n, Py_ssize_t pos,
                            unsigned long long *value) except -1:
    """``*`` (0) or a nz-number of at most 10 digits up to 2**32 - 1 at ``pos``; the offset
    after it."""
    cdef Py_ssize_t start = pos
    cdef unsigned long long number = 0
    if pos < n and p[pos] == 0x2A:
        value[0] = 0
        return pos + 1
    if pos >= n or not (0x31 <= p[pos] <= 0x39):
        raise ParseError("invalid sequence set")
    while pos < n and 0x30 <= p[pos] <= 0x39:
        if pos - start == 10:
            raise ParseError("invalid sequence set")
        number = number * 10 + (p[pos] - 0x30)
        pos += 1
    if number > 0xFFFFFFFF:
        raise ParseError("invalid sequence set")
    value[0] = number
    return pos
