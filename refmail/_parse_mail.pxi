# The compiled parsing core, header blocks, MIME, addresses and mbox: included by ``_parse.pyx``
# (one extension module, one namespace).  Its twin is ``_parse_py_mail.py``.

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
