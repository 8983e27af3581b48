# The compiled parsing core, IMAP: included by ``_parse.pyx``
# (one extension module, one namespace).  Its twin is ``_parse_py_imap.py``.

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
