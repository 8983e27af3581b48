"""Fuzz checks of the parsing core (``refmail/_parse.pyi``), shared by the atheris targets
``fuzz/fuzz_parse_*.py`` and the hypothesis tests in ``tests/fuzz/``.

Each ``check_*`` runs one function of the API on the given arguments in every implementation
(the pure twin, and the compiled core when it is built), and raises ``AssertionError`` when:

- a call raises anything but the exceptions the API documents for it;
- the twins disagree (result, or exception class and message);
- the result breaks the contract the API states (offsets in range, what the output may hold,
  reversibility), which a twin-only comparison cannot see when both share a bug.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from types import ModuleType

from refmail import _parse_py
from refmail._parse_errors import LineTooLong, ParseError


def implementations() -> list[ModuleType]:
    """The pure twin, then the compiled core when it is built."""
    impls: list[ModuleType] = [_parse_py]
    try:
        impls.append(importlib.import_module("refmail._parse"))
    except ImportError:
        pass
    return impls


IMPLS = implementations()


def _outcome(function: Callable[..., object], args: tuple, allowed: tuple) -> tuple[str, object]:
    try:
        return "ok", function(*args)
    except allowed as exc:
        return type(exc).__name__, str(exc)


def run(name: str, *args: object, allowed: tuple[type[Exception], ...] = (ParseError,)):
    """``name(*args)`` in every implementation: the shared outcome ``("ok", result)`` or
    ``(exception class name, message)``.  An exception outside ``allowed`` propagates."""
    outcomes = [_outcome(getattr(impl, name), args, allowed) for impl in IMPLS]
    for impl, other in zip(IMPLS[1:], outcomes[1:], strict=True):
        assert other == outcomes[0], (name, impl.__name__, args, outcomes[0], other)
    return outcomes[0]


# ---------------------------------------------------------------------------- lines


def check_next_line(buf: bytes, start: int, search_from: int, max_len: int) -> None:
    kind, result = run(
        "next_line", buf, start, search_from, max_len, allowed=(LineTooLong, ValueError)
    )
    if kind == "ValueError":
        assert not 0 <= start <= len(buf), (buf, start)
        return
    if kind == "LineTooLong":
        assert len(buf) - start > max_len, (buf, start, max_len)
        return
    assert kind == "ok"
    assert isinstance(result, int)
    if result == -1:
        assert b"\n" not in buf[max(start, search_from) : start + max(max_len, 0)]
    else:
        assert start < result <= min(len(buf), start + max_len), (buf, start, max_len, result)
        assert buf[result - 1 : result] == b"\n"
        assert b"\n" not in buf[max(start, search_from) : result - 1]


# ---------------------------------------------------------------------------- SMTP


def check_parse_smtp_command(line: bytes) -> None:
    kind, result = run("parse_smtp_command", line)
    if kind != "ok":
        return
    verb, arg = result
    assert verb and verb.isalpha() and verb.isascii() and verb == verb.upper(), (line, verb)
    assert b"\x00" not in line
    if b"\n" not in line[:-1]:  # one line, as framing gives it: no line ending, no spaces
        assert not arg.endswith((b"\r\n", b"\n", b" ")), (line, arg)
    assert arg in line


def check_parse_smtp_path(arg: bytes, keyword: bytes) -> None:
    kind, result = run("parse_smtp_path", arg, keyword)
    if kind != "ok":
        return
    path, params = result
    assert isinstance(path, bytes)
    assert not any(c < 0x20 or c == 0x7F for c in path), (arg, path)
    for name, value in params:
        assert name and name == name.upper(), (arg, name)
        assert value is None or isinstance(value, bytes)


def check_read_data(buf: bytes, state: int, max_line: int) -> None:
    kind, result = run("read_data", buf, state, max_line, allowed=(ValueError,))
    if kind != "ok":
        assert max_line < 3, (max_line, result)
        return
    out, consumed, done, new_state, flags = result
    assert 0 <= consumed <= len(buf), (buf, consumed)
    if done:
        assert buf[:consumed].endswith(b".\r\n"), (buf, consumed)
    # every line ending of the output is CRLF (bare LF normalized, RFC 5321 2.3.8)
    assert b"\n" not in out.replace(b"\r\n", b""), (buf, out)
    # dot-unstuffing only removes octets; LF normalization adds one CR per bare LF
    assert len(out) <= consumed + buf[:consumed].count(b"\n"), (buf, out)
    if not done:
        # every complete line is consumed; of an incomplete one longer than max_line a
        # max_line piece is (so a reader that calls again always makes progress)
        assert b"\n" not in buf[consumed:], (buf, consumed)
        if len(buf) > max_line:
            assert consumed > 0, (buf, max_line)


def check_read_data_chunking(stream: bytes, cut: int, max_line: int) -> None:
    """Reading ``stream`` in two pieces gives the content and the end that one read does."""
    for impl in IMPLS:
        whole = _read_all(impl, [stream], max_line)
        split = _read_all(impl, [stream[:cut], stream[cut:]], max_line)
        assert whole == split, (impl.__name__, stream, cut, max_line)


def _read_all(impl: ModuleType, pieces: list[bytes], max_line: int) -> tuple[bytes, bool, int]:
    """What a reader that appends each piece to its unread rest gets: content, done, flags."""
    state, rest, out, flags = impl.DATA_INITIAL, b"", [], 0
    for piece in pieces:
        rest += piece
        while True:
            data, consumed, done, state, more = impl.read_data(rest, state, max_line)
            out.append(data)
            flags |= more
            rest = rest[consumed:]
            if done:
                return b"".join(out), True, flags
            if not consumed:
                break
    return b"".join(out), False, flags


def check_dot_stuff(data: bytes) -> None:
    kind, stuffed = run("dot_stuff", data)
    assert kind == "ok"
    lines = stuffed.split(b"\n")
    # one more "." on every line that began with one (RFC 5321 4.5.2), nothing else changed
    assert b"\n".join(ln[1:] if ln.startswith(b".") else ln for ln in lines) == data, stuffed
    # so no line is a lone "." that a reader would take for the end
    assert all(ln[:1] != b"." or ln[:2] == b".." for ln in lines), (data, stuffed)
    if b"\n" not in data.replace(b"\r\n", b"") and b"\r" not in data.replace(b"\r\n", b""):
        if data.endswith(b"\r\n") or not data:  # CRLF text: read_data gives it back
            out, consumed, done, _, _ = run("read_data", stuffed + b".\r\n", 3, 1 << 20)[1]
            assert (out, consumed, done) == (data, len(stuffed) + 3, True), (data, stuffed)


# ---------------------------------------------------------------------------- messages


def check_header_end(data: bytes) -> None:
    kind, end = run("header_end", data)
    assert kind == "ok"
    assert 0 <= end <= len(data), (data, end)
    if end < len(data):  # the blank line that ends the header block ends at ``end``
        assert data[:end].endswith(b"\n"), (data, end)


def check_parse_headers(block: bytes) -> None:
    kind, fields = run("parse_headers", block)
    assert kind == "ok"
    for name, value in fields:
        assert name and b":" not in name, (block, name)
        assert name in block
        assert not value.endswith(b"\n"), (block, value)


# ---------------------------------------------------------------------------- mbox


def check_mbox_quoting(message: bytes) -> None:
    kind, body = run("mbox_quote", message)
    assert kind == "ok"
    lf_text = message.replace(b"\r\n", b"\n")
    if lf_text and not lf_text.endswith(b"\n"):
        lf_text += b"\n"
    assert run("mbox_unquote", body) == ("ok", lf_text), (message, body)
    assert run("mbox_scan", body, 0) == ("ok", []), (message, body)  # no message boundary


def check_mbox_unquote(body: bytes) -> None:
    kind, text = run("mbox_unquote", body)
    assert kind == "ok"
    assert len(text) <= len(body)


def check_mbox_scan(data: bytes, start: int) -> None:
    kind, offsets = run("mbox_scan", data, start, allowed=(ValueError,))
    if kind != "ok":
        assert not 0 <= start <= len(data), (data, start)
        return
    assert offsets == sorted(set(offsets))
    for offset in offsets:
        assert start <= offset < len(data)
        assert data.startswith(b"From ", offset)
        assert offset == start or data[offset - 1 : offset] == b"\n", (data, start, offset)


def check_crlf(data: bytes) -> None:
    kind, crlf = run("to_crlf", data)
    assert kind == "ok"
    assert crlf.replace(b"\r\n", b"\n") == data.replace(b"\r\n", b"\n")
    assert b"\n" not in crlf.replace(b"\r\n", b"")
    assert run("crlf_size", data) == ("ok", len(crlf))


# ---------------------------------------------------------------------------- IMAP


def check_imap_tokenize(parts: list[bytes], max_depth: int) -> None:
    kind, tokens = run("imap_tokenize", parts, max_depth)
    if kind != "ok":
        return
    literals = parts[1::2]
    found: list[bytes] = []
    _walk(tokens, found, depth=0, max_depth=max_depth)
    assert found == literals, (parts, tokens)


def _walk(tokens: list, found: list[bytes], depth: int, max_depth: int) -> None:
    kinds = {_parse_py.IMAP_ATOM, _parse_py.IMAP_QUOTED, _parse_py.IMAP_LITERAL}
    for kind, value in tokens:
        if kind == _parse_py.IMAP_LIST:
            assert depth < max_depth, ("nesting past max_depth", tokens)
            _walk(value, found, depth + 1, max_depth)
            continue
        assert kind in kinds
        assert isinstance(value, bytes)
        if kind == _parse_py.IMAP_ATOM:
            assert value and value.isascii(), value
        if kind == _parse_py.IMAP_LITERAL:
            found.append(value)


def check_imap_literal_at_end(line: bytes, max_digits: int) -> None:
    kind, result = run("imap_literal_at_end", line, max_digits, allowed=(ValueError,))
    if kind != "ok":
        assert not 1 <= max_digits <= 18
        return
    if result is None:
        assert re.search(rb"\{[0-9]+\+?\}\Z", line) is None, line
        return
    size, plus = result
    assert line.endswith(b"+}" if plus else b"}")
    assert size == -1 or 0 <= size < 10**max_digits


def check_imap_quote(value: bytes) -> None:
    kind, quoted = run("imap_quote", value)
    assert kind == "ok"
    if quoted.startswith(b"{"):
        marker, _, octets = quoted.partition(b"\r\n")
        assert octets == value
        assert run("imap_literal_at_end", marker, 10) == ("ok", (len(value), False))
        assert run("imap_tokenize", [marker, value, b""], 2)[1] == [(_parse_py.IMAP_LITERAL, value)]
    else:
        assert run("imap_tokenize", [quoted], 2)[1] == [(_parse_py.IMAP_QUOTED, value)]


# ---------------------------------------------------------------------------- atheris inputs


def _knob(data: bytes) -> int:
    """The small integer arguments of an atheris input: its last byte."""
    return data[-1] if data else 0


def check_smtp_input(data: bytes) -> None:
    """fuzz_parse_smtp: ``data`` as a stream, each of its lines as a command and a path."""
    knob = _knob(data)
    check_next_line(data, knob % 5, knob % 13, 1 + knob % 100)
    check_read_data(data, knob, 3 + knob % 40)
    check_read_data_chunking(data, knob * 7 % (len(data) + 1), 3 + knob % 40)
    check_dot_stuff(data)
    for line in data.split(b"\n")[:64]:
        check_parse_smtp_command(line + b"\n")
        verb, _, rest = line.partition(b" ")
        if verb.upper() in (b"MAIL", b"RCPT"):
            check_parse_smtp_path(rest.rstrip(b"\r"), b"FROM" if verb.upper() == b"MAIL" else b"TO")
        else:
            check_parse_smtp_path(line, b"FROM" if knob & 1 else b"TO")


def imap_parts(data: bytes) -> list[bytes]:
    """The first command of ``data`` as ``imap_tokenize`` takes it: text, literal, text, ...
    (a line ending in ``{n}`` or ``{n+}`` is followed by n octets of literal)."""
    parts: list[bytes] = []
    text = b""
    pos = 0
    while True:
        lf = data.find(b"\n", pos)
        line = data[pos : lf if lf >= 0 else len(data)].removesuffix(b"\r")
        marker = _parse_py.imap_literal_at_end(line, 10)
        if marker is not None and lf >= 0 and 0 <= marker[0] <= len(data) - lf - 1:
            parts += [text + line, data[lf + 1 : lf + 1 + marker[0]]]
            pos = lf + 1 + marker[0]
            continue
        parts.append(text + line)
        return parts


def check_imap_input(data: bytes) -> None:
    """fuzz_parse_imap: ``data`` as a command with its literals, and line by line."""
    knob = _knob(data)
    check_imap_tokenize(imap_parts(data), (knob % 6) if knob & 0x40 else 32)
    for line in data.split(b"\n")[:64]:
        check_imap_literal_at_end(line.removesuffix(b"\r"), 1 + knob % 18)
        check_imap_tokenize([line.removesuffix(b"\r")], 32)
    check_imap_quote(data)


def check_message_input(data: bytes) -> None:
    """fuzz_parse_message: ``data`` as a message, a header block, an mbox file."""
    knob = _knob(data)
    check_header_end(data)
    check_parse_headers(data)
    check_mbox_quoting(data)
    check_mbox_unquote(data)
    check_mbox_scan(data, knob % (len(data) + 2))
    check_mbox_scan(data, 0)
    check_crlf(data)
