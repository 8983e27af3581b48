"""parse_smtp_command (RFC 5321 4.1.1) and parse_smtp_path (RFC 5321 4.1.2, RFC 6531)."""

from __future__ import annotations

import pytest

from refmail._parse_errors import ParseError

# ---------------------------------------------------------------------------- commands


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (b"EHLO client.example\r\n", (b"EHLO", b"client.example")),
        (b"ehlo client.example\n", (b"EHLO", b"client.example")),
        (b"MAIL FROM:<a@b.c> SIZE=10", (b"MAIL", b"FROM:<a@b.c> SIZE=10")),
        (b"QUIT\r\n", (b"QUIT", b"")),
        (b"quit", (b"QUIT", b"")),
        (b"NOOP   \r\n", (b"NOOP", b"")),
        (b"HELO    x.y   \r\n", (b"HELO", b"x.y")),
        (b"VRFY a  b\r\n", (b"VRFY", b"a  b")),
        (b"X\r\n", (b"X", b"")),
    ],
)
def test_command_split(parse_impl, line: bytes, expected: tuple[bytes, bytes]) -> None:
    assert parse_impl.parse_smtp_command(line) == expected


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b"", "empty command"),
        (b"\r\n", "empty command"),
        (b"\n", "empty command"),
        (b" EHLO x\r\n", "bad command verb"),
        (b"EH1O x\r\n", "bad command verb"),
        (b"MAIL:FROM\r\n", "bad command verb"),
        (b"NOOP\r", "bad command verb"),
        (b"\xc3\xa9HLO x\r\n", "bad command verb"),
        (b"EHLO x\x00y\r\n", "NUL"),
        (b"\x00", "NUL"),
    ],
)
def test_command_errors(parse_impl, line: bytes, reason: str) -> None:
    with pytest.raises(ParseError, match=reason):
        parse_impl.parse_smtp_command(line)


def test_command_argument_keeps_utf8_and_tabs(parse_impl) -> None:
    assert parse_impl.parse_smtp_command("VRFY J\u00f6rg\tx\r\n".encode()) == (
        b"VRFY",
        "J\u00f6rg\tx".encode(),
    )


# ---------------------------------------------------------------------------- paths


@pytest.mark.parametrize(
    ("arg", "keyword", "mailbox", "params"),
    [
        # The example of _parse.pyi.
        (
            b"FROM:<a@b.c> SIZE=100 BODY=8BITMIME",
            b"FROM",
            b"a@b.c",
            [(b"SIZE", b"100"), (b"BODY", b"8BITMIME")],
        ),
        # RFC 5321 D.1 scenario.
        (b"FROM:<Smith@bar.com>", b"FROM", b"Smith@bar.com", []),
        (b"TO:<Jones@foo.com>", b"TO", b"Jones@foo.com", []),
        # Keyword case-insensitive; spaces before "<" tolerated.
        (b"from:<a@b.c>", b"FROM", b"a@b.c", []),
        (b"To:   <a@b.c>", b"TO", b"a@b.c", []),
        # Null reverse-path (RFC 5321 4.5.5).
        (b"FROM:<>", b"FROM", b"", []),
        (b"FROM:<> BODY=7BIT", b"FROM", b"", [(b"BODY", b"7BIT")]),
        # Source routes are dropped (RFC 5321 4.1.1.3, appendix C).
        (b"TO:<@hosta.int,@jkl.org:userc@d.bar.org>", b"TO", b"userc@d.bar.org", []),
        (b"TO:<@a.example:u@b.example>", b"TO", b"u@b.example", []),
        # Quoted local parts are returned as sent.
        (b'TO:<"john doe"@x>', b"TO", b'"john doe"@x', []),
        (b'TO:<"a\\"b\\\\c"@x.y>', b"TO", b'"a\\"b\\\\c"@x.y', []),
        (b'TO:<""@x.y>', b"TO", b'""@x.y', []),
        (b'TO:<"@"@x.y>', b"TO", b'"@"@x.y', []),
        # Dot-string with every atext special.
        (b"TO:<a.b!#$%&'*+/=?^_`{|}~-c@x.y>", b"TO", b"a.b!#$%&'*+/=?^_`{|}~-c@x.y", []),
        # Address literals (RFC 5321 4.1.3).
        (b"TO:<u@[192.0.2.1]>", b"TO", b"u@[192.0.2.1]", []),
        (b"TO:<u@[IPv6:2001:db8::1]>", b"TO", b"u@[IPv6:2001:db8::1]", []),
        (b"TO:<u@[ipv6:::ffff:192.0.2.1]>", b"TO", b"u@[ipv6:::ffff:192.0.2.1]", []),
        (b"TO:<u@[x-tag:any!thing]>", b"TO", b"u@[x-tag:any!thing]", []),
        # Domains with digits and inner hyphens.
        (b"TO:<u@a-1.b--2.3com>", b"TO", b"u@a-1.b--2.3com", []),
        # RFC 5321 4.1.1.3: <Postmaster> without a domain, RCPT only.
        (b"TO:<Postmaster>", b"TO", b"Postmaster", []),
        (b"TO:<postMASTER> NOTIFY=NEVER", b"TO", b"postMASTER", [(b"NOTIFY", b"NEVER")]),
        # Parameters: keywords upper-cased, values kept; no value gives None.
        (
            b"FROM:<a@b> smtputf8 ret=HDRS",
            b"FROM",
            b"a@b",
            [(b"SMTPUTF8", None), (b"RET", b"HDRS")],
        ),
        (b"FROM:<a@b>  X-1=a+b  ", b"FROM", b"a@b", [(b"X-1", b"a+b")]),
        (
            b"TO:<a@b> ORCPT=rfc822;a+40b",
            b"TO",
            b"a@b",
            [(b"ORCPT", b"rfc822;a+40b")],
        ),
        # RFC 6531: UTF-8 in local part, domain and parameter values.
        (
            "FROM:<j\u00f6rg@b\u00fccher.example> SMTPUTF8".encode(),
            b"FROM",
            "j\u00f6rg@b\u00fccher.example".encode(),
            [(b"SMTPUTF8", None)],
        ),
        (
            'TO:<"\u00e9 t\u00e9"@x.y>'.encode(),
            b"TO",
            '"\u00e9 t\u00e9"@x.y'.encode(),
            [],
        ),
    ],
)
def test_path(parse_impl, arg: bytes, keyword: bytes, mailbox: bytes, params: list) -> None:
    assert parse_impl.parse_smtp_path(arg, keyword) == (mailbox, params)


@pytest.mark.parametrize(
    ("arg", "keyword", "reason"),
    [
        (b"FROM:a@b.c", b"FROM", "missing <"),
        (b"FROM:", b"FROM", "missing <"),
        (b"FROM: ", b"FROM", "missing <"),
        (b"TO:<a@b.c>", b"FROM", "expected FROM:"),
        (b"FROM <a@b.c>", b"FROM", "expected FROM:"),
        (b"FROMM:<a@b.c>", b"FROM", "expected FROM:"),
        (b"", b"TO", "expected TO:"),
        (b"FROM:<a@b.c", b"FROM", "missing >"),
        (b"FROM:<a@[1.2.3.4]", b"FROM", "missing >"),
        (b"FROM:<@>", b"FROM", "bad source route"),
        (b"FROM:<@b.c>", b"FROM", "bad source route"),
        (b"TO:<@a,b:u@c>", b"TO", "bad source route"),
        (b"TO:<@a;@b:u@c>", b"TO", "bad source route"),
        (b"TO:<@a,@b>", b"TO", "bad source route"),
        (b"TO:<@a:>", b"TO", "bad local part"),
        (b"TO:<@a:@b>", b"TO", "empty local part"),
        (b"FROM:<a b@c.d>", b"FROM", "bad local part"),
        (b"FROM:<a@b c.d>", b"FROM", "bad domain"),
        (b"FROM:< a@b.c>", b"FROM", "bad local part"),
        (b"FROM:<a@b.c >", b"FROM", "bad domain"),
        (b"FROM:<a..b@c.d>", b"FROM", "bad local part"),
        (b"FROM:<.a@c.d>", b"FROM", "bad local part"),
        (b"FROM:<a.@c.d>", b"FROM", "bad local part"),
        (b"FROM:<a(b)@c.d>", b"FROM", "bad local part"),
        (b"FROM:<a>", b"FROM", "missing domain"),
        (b"FROM:<Postmaster>", b"FROM", "missing domain"),
        (b"TO:<@x:Postmaster>", b"TO", "missing domain"),
        (b"FROM:<a@>", b"FROM", "bad domain"),
        (b"FROM:<a@-b.c>", b"FROM", "bad domain"),
        (b"FROM:<a@b-.c>", b"FROM", "bad domain"),
        (b"FROM:<a@b..c>", b"FROM", "bad domain"),
        (b"FROM:<a@b.c.>", b"FROM", "bad domain"),
        (b"FROM:<a@b_c>", b"FROM", "bad domain"),
        (b"FROM:<a@b@c>", b"FROM", "bad domain"),
        (b'FROM:<"ab@c.d>', b"FROM", "unterminated quoted string"),
        (b'FROM:<"ab\\', b"FROM", "unterminated quoted string"),
        (b'FROM:<"a"b@c.d>', b"FROM", "bad local part"),
        (b"FROM:<a@[1.2.3.256]>", b"FROM", "bad address literal"),
        (b"FROM:<a@[1.2.3]>", b"FROM", "bad address literal"),
        (b"FROM:<a@[1.2.3.4.5]>", b"FROM", "bad address literal"),
        (b"FROM:<a@[1.2.3.0004]>", b"FROM", "bad address literal"),
        (b"FROM:<a@[IPv6:1.2.3.4]>", b"FROM", "bad address literal"),
        (b"FROM:<a@[IPv6:fe80::1%eth0]>", b"FROM", "bad address literal"),
        (b"FROM:<a@[IPv6:12345::]>", b"FROM", "bad address literal"),
        (b"FROM:<a@[tag-:x]>", b"FROM", "bad address literal"),
        (b"FROM:<a@[tag:]>", b"FROM", "bad address literal"),
        (b"FROM:<a@[tag:a[b]>", b"FROM", "bad address literal"),
        (b"FROM:<a@[]>", b"FROM", "bad address literal"),
        (b"FROM:<a@[1.2.3.4>", b"FROM", "bad address literal"),
        (b"FROM:<a@[1.2.3.4]x>", b"FROM", "missing >"),
        (b"FROM:<a@b.c>SIZE=1", b"FROM", "bad parameter"),
        (b"FROM:<a@b.c> SIZE=", b"FROM", "bad parameter"),
        (b"FROM:<a@b.c> =1", b"FROM", "bad parameter"),
        (b"FROM:<a@b.c> -X=1", b"FROM", "bad parameter"),
        (b"FROM:<a@b.c> X_Y=1", b"FROM", "bad parameter"),
        (b"FROM:<a@b.c> X=a=b", b"FROM", "bad parameter"),
        (b"FROM:<a@b.c> <x>", b"FROM", "bad parameter"),
        (b"FROM:<a@b.c\x00>", b"FROM", "control character"),
        (b"FROM:<a\x01@b.c>", b"FROM", "control character"),
        (b'FROM:<"a\tb"@b.c>', b"FROM", "control character"),
        (b"FROM:<a@b.c> X=\x7f", b"FROM", "control character"),
        (b"FROM:<a\xff@b.c>", b"FROM", "invalid UTF-8"),
        (b"FROM:<a@b.c> X=\xc3", b"FROM", "invalid UTF-8"),
        (b'FROM:<"a\\\xc3\xa9"@b.c>', b"FROM", "bad quoted string"),
    ],
)
def test_path_errors(parse_impl, arg: bytes, keyword: bytes, reason: str) -> None:
    with pytest.raises(ParseError, match=reason):
        parse_impl.parse_smtp_path(arg, keyword)


def test_path_through_the_command_parser(parse_impl) -> None:
    verb, arg = parse_impl.parse_smtp_command(b"MAIL FROM:<a@b.c> BODY=8BITMIME\r\n")
    assert verb == b"MAIL"
    assert parse_impl.parse_smtp_path(arg, b"FROM") == (b"a@b.c", [(b"BODY", b"8BITMIME")])
