"""``send``, ``inbox`` and ``read`` against a live refmail server on 127.0.0.1."""

from __future__ import annotations

import email
import email.policy
from pathlib import Path

import pytest
from ua_helpers import UA, parse_args

from refmail.server import Server
from refmail.ua import cli, view
from refmail.ua.compose import compose, recipients
from refmail.ua.connect import Endpoint, UAError, endpoint, parse_endpoint

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256))


def test_send_inbox_read_round_trip(server: Server, ua: UA, tmp_path: Path) -> None:
    picture = tmp_path / "pic.png"
    picture.write_bytes(PNG)
    status, out, err = ua(
        server,
        "send",
        "--to",
        "bob@example.test",
        "--cc",
        "alice@example.test",
        "--subject",
        "Grüße aus Köln",
        "--attach",
        str(picture),
        "--from",
        "alice@example.test",
        stdin="Hallo Bob,\nschöne Grüße.\n.\nEnde\n",
    )
    assert status == 0, err
    assert "sent <" in out and "bob@example.test" in out
    status, out, err = ua(server, "inbox", user="bob", password="bob-pw")
    assert status == 0, err
    lines = out.splitlines()
    assert len(lines) == 2 and lines[-1] == "INBOX: 1 message(s)"
    assert lines[0].split()[0] == "1" and lines[0].split()[1] == "N"
    assert "Grüße aus Köln" in lines[0] and "alice@example.test" in lines[0]
    status, out, err = ua(server, "read", "1", user="bob", password="bob-pw")
    assert status == 0, err
    assert "Subject: Grüße aus Köln" in out
    assert "From: alice@example.test" in out
    assert "Hallo Bob,\nschöne Grüße.\n.\nEnde" in out
    assert f"[attachment 1: pic.png (image/png, {len(PNG)}B)]" in out
    status, out, _ = ua(server, "inbox", user="bob", password="bob-pw")
    assert out.splitlines()[0].split()[1] == "-"  # read: no longer N(ew)
    status, out, _ = ua(server, "inbox")  # alice got the Cc
    assert "INBOX: 1 message(s)" in out


def test_message_on_the_wire_is_7bit_mime(server: Server, ua: UA) -> None:
    status, _, err = ua(
        server, "send", "--to", "bob@example.test", "--subject", "ünïcode", stdin="naïve\n"
    )
    assert status == 0, err
    raw = (server.config.data_dir / "mail" / "bob" / "INBOX").read_bytes()
    message = raw.split(b"\n", 1)[1]
    assert message.isascii()
    msg = email.message_from_bytes(message, policy=email.policy.default)
    assert msg["Subject"] == "ünïcode"
    assert msg["Message-ID"] and msg["Date"]
    assert msg["From"] == f"alice@{server.config.hostname}"  # --user without a domain
    assert msg.get_content().strip() == "naïve"


def test_trusting_the_servers_certificate(server: Server, ua: UA, tmp_path: Path) -> None:
    status, _, err = ua(
        server,
        "send",
        "--to",
        "bob@example.test",
        "--data",
        str(server.config.data_dir),
        stdin="x\n",
    )
    assert status == 0, err
    from refmail.tls import generate_self_signed

    other = tmp_path / "other.pem"
    generate_self_signed("other.test", other, tmp_path / "other.key")
    status, _, err = ua(server, "inbox", "--cafile", str(other))
    assert status == 1 and "TLS" in err and "certificate verify failed" in err


def test_wrong_password(server: Server, ua: UA) -> None:
    status, _, err = ua(server, "inbox", password="wrong")
    assert status == 1 and "login as alice refused" in err
    status, _, err = ua(server, "send", "--to", "bob@example.test", password="wrong", stdin="x")
    assert status == 1 and "login as alice refused" in err


def test_read_out_of_range_and_unknown_folder(server: Server, ua: UA) -> None:
    status, out, _ = ua(server, "inbox")
    assert status == 0 and "INBOX: no messages" in out
    status, _, err = ua(server, "read", "3")
    assert status == 1 and "no message 3 in INBOX" in err
    status, _, err = ua(server, "inbox", "--folder", "No Such")
    assert status == 1 and "cannot open folder No Such" in err


def test_relay_refused_recipient(server: Server, ua: UA) -> None:
    status, _, err = ua(server, "send", "--to", "nobody@example.test", stdin="x\n")
    assert status == 1 and "nobody@example.test" in err and "550" in err


def test_unreachable_server(capsys: pytest.CaptureFixture[str]) -> None:
    args = parse_args(["inbox", "--imap", "127.0.0.1:1", "--user", "alice"])
    assert cli.run(args, "pw") == 1
    assert "cannot connect to 127.0.0.1:1" in capsys.readouterr().err


def test_missing_attachment(server: Server, ua: UA, tmp_path: Path) -> None:
    status, _, err = ua(
        server, "send", "--to", "bob@example.test", "--attach", str(tmp_path / "nope"), stdin="x"
    )
    assert status == 1 and "cannot attach" in err


# ---------------------------------------------------------------- pieces without a server


def test_endpoints_from_flags() -> None:
    assert endpoint(None, None, None, "submission") == Endpoint("127.0.0.1", 10587)
    assert endpoint(None, "mail.test", 0, "imap") == Endpoint("mail.test", 143)
    assert endpoint(None, None, 20000, "imap") == Endpoint("127.0.0.1", 20143)
    assert endpoint("[::1]:2525", "ignored", 0, "submission") == Endpoint("::1", 2525)
    with pytest.raises(UAError):
        parse_endpoint("nohost")
    with pytest.raises(UAError):
        parse_endpoint("host:99999")


def test_compose_attachments_and_recipients(tmp_path: Path) -> None:
    doc = tmp_path / "notes.txt"
    doc.write_text("plain notes\n")
    blob = tmp_path / "data.weird"
    blob.write_bytes(b"\x00\x01")
    msg = compose(
        sender="a@example.test",
        to=["b@example.test", "Carol <c@example.test>"],
        cc=["b@example.test"],
        subject="s",
        body="no newline",
        attachments=[doc, blob],
    )
    assert recipients(msg) == ["b@example.test", "c@example.test"]
    assert msg.get_content_type() == "multipart/mixed"
    parts = list(msg.iter_attachments())
    assert [p.get_content_type() for p in parts] == ["text/plain", "application/octet-stream"]
    assert msg.get_body().get_content() == "no newline\n"
    assert bytes(msg).isascii()
    assert msg["Message-ID"].endswith("@example.test>")


def test_view_neutralises_terminal_escapes() -> None:
    raw = (
        b"From: \x1b[31mevil\x1b[0m <e@example.test>\r\nSubject: hi\x1b]0;pwned\x07\r\n"
        b"\r\nline\x1b[2J\r\n"
    )
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    text = view.render(msg)  # type: ignore[arg-type]
    assert "\x1b" not in text and "\x07" not in text
    line = view.summary_line(1, ["\\Seen", "\\Flagged"], 2048, msg)  # type: ignore[arg-type]
    assert "\x1b" not in line and " F " in line and "(2.0K)" in line


def test_view_html_only_and_flags() -> None:
    raw = (
        b"Subject: h\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
        b"<p>Hello &amp; <b>bye</b></p>\r\n"
    )
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    text = view.render(msg)  # type: ignore[arg-type]
    assert "[HTML part shown as text]" in text and "Hello & bye" in text
    assert view.flag_letters([]) == "N"
    assert view.flag_letters(["\\Seen", "\\Answered", "\\Deleted"]) == "DA"


def test_fetch_items_in_any_order() -> None:
    """A server may put FLAGS and RFC822.SIZE before or after the header literal."""
    header = b"Subject: one\r\nFrom: a@example.test\r\n\r\n"
    data = [
        (b"1 (FLAGS (\\Seen) RFC822.SIZE 120 BODY[HEADER.FIELDS (DATE FROM SUBJECT)] {38}", header),
        b")",
        (b"2 (BODY[HEADER.FIELDS (DATE FROM SUBJECT)] {38}", header),
        b" FLAGS (\\Flagged) RFC822.SIZE 4096)",
    ]
    rows = cli._summaries(data)
    assert [(n, flags, size) for n, flags, size, _ in rows] == [
        (1, ["\\Seen"], 120),
        (2, ["\\Flagged"], 4096),
    ]
    assert rows[1][3]["Subject"] == "one"


@pytest.mark.parametrize(
    ("name", "arg"),
    [
        ("INBOX", "INBOX"),
        ("Work/Projects", "Work/Projects"),
        ("My Mail", '"My Mail"'),
        ('a"b', '"a\\"b"'),
        ("Entwürfe", "Entw&APw-rfe"),
    ],
)
def test_mailbox_arg(name: str, arg: str) -> None:
    """RFC 3501 5.1.3 modified UTF-7, quoted when not an atom."""
    assert cli.mailbox_arg(name) == arg
