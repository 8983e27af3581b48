"""``python -m refmail send|inbox|read``: the user agent's commands (DESIGN.md, "Listeners").

The lead's ``refmail/cli.py`` calls ``add_arguments(subparsers)`` once and, for these three
commands, ``run(args, password=os.environ.get("REFMAIL_PASSWORD"))``: cli.py stays the only
reader of the environment; without a password we prompt on the terminal.
"""

from __future__ import annotations

import argparse
import email
import email.policy
import getpass
import imaplib
import re
import smtplib
import ssl
import sys
from email.message import EmailMessage
from pathlib import Path
from typing import IO, Any

from refmail.imap import utf7
from refmail.ua import view
from refmail.ua.compose import ComposeError, compose, recipients
from refmail.ua.connect import (
    Endpoint,
    UAError,
    cafile_from,
    endpoint,
    open_imap,
    open_smtp,
    tls_context,
)

COMMANDS = ("send", "inbox", "read")
#: RFC 3501 9 atom: what may go unquoted as a mailbox name.
ATOM = re.compile(r"[A-Za-z0-9_.\-/&+]+\Z")
FETCH_NUMBER = re.compile(rb"^(\d+) ")
FETCH_FLAGS = re.compile(rb"FLAGS \(([^)]*)\)")
FETCH_SIZE = re.compile(rb"RFC822\.SIZE (\d+)")
SUMMARY_ITEMS = "(FLAGS RFC822.SIZE BODY.PEEK[HEADER.FIELDS (DATE FROM SUBJECT)])"


def add_arguments(subparsers: Any) -> None:
    """Add ``send``, ``inbox`` and ``read`` to the top-level subparsers."""
    conn = argparse.ArgumentParser(add_help=False)
    group = conn.add_argument_group("connection")
    group.add_argument("--server", help="server host (default 127.0.0.1)")
    group.add_argument(
        "--port-base", type=int, help="ports as for serve: N+587 submission, N+143 IMAP"
    )
    group.add_argument("--smtp", metavar="HOST:PORT", help="submission server")
    group.add_argument("--imap", metavar="HOST:PORT", help="IMAP server")
    group.add_argument("--user", required=True, help="login name")
    group.add_argument("--data", type=Path, help="trust this refmail data dir's tls/cert.pem")
    group.add_argument("--cafile", type=Path, help="trust this CA/certificate file")

    send = subparsers.add_parser("send", parents=[conn], help="send a message (body on stdin)")
    send.add_argument("--to", action="append", default=[], metavar="ADDR", required=True)
    send.add_argument("--cc", action="append", default=[], metavar="ADDR")
    send.add_argument("--subject", default="")
    send.add_argument("--attach", action="append", default=[], type=Path, metavar="FILE")
    send.add_argument(
        "--from",
        dest="sender",
        metavar="ADDR",
        help="default: --user if it is an address, else USER@ the server's name",
    )

    inbox = subparsers.add_parser("inbox", parents=[conn], help="list the messages of a folder")
    inbox.add_argument("--folder", default="INBOX")

    read = subparsers.add_parser("read", parents=[conn], help="show message N of a folder")
    read.add_argument("number", type=int, metavar="N")
    read.add_argument("--folder", default="INBOX")


def run(
    args: argparse.Namespace,
    password: str | None = None,
    *,
    stdin: IO[str] | None = None,
    stdout: IO[str] | None = None,
) -> int:
    """Run ``args.command`` (one of COMMANDS); errors are one line on stderr and exit 1."""
    out = stdout or sys.stdout
    try:
        if password is None:
            password = getpass.getpass(f"Password for {args.user}: ")
        if args.command == "send":
            return cmd_send(args, password, stdin or sys.stdin, out)
        if args.command == "inbox":
            return cmd_inbox(args, password, out)
        if args.command == "read":
            return cmd_read(args, password, out)
    except (UAError, ComposeError) as exc:
        print(f"refmail: {exc}", file=sys.stderr)
        return 1
    except (EOFError, KeyboardInterrupt):
        print("refmail: cancelled", file=sys.stderr)
        return 1
    print(f"refmail: unknown command {args.command!r}", file=sys.stderr)
    return 2


def _context_for(args: argparse.Namespace, target: Endpoint) -> ssl.SSLContext:
    return tls_context(target, cafile_from(args.cafile, args.data))


def cmd_send(args: argparse.Namespace, password: str, stdin: IO[str], out: IO[str]) -> int:
    """Compose from the flags and stdin, submit (RFC 6409) with STARTTLS and AUTH."""
    target = endpoint(args.smtp, args.server, args.port_base, "submission")
    body = stdin.read()
    smtp = open_smtp(target, _context_for(args, target), args.user, password)
    try:
        sender = args.sender or _default_sender(args.user, smtp)
        msg = compose(
            sender=sender,
            to=args.to,
            cc=args.cc,
            subject=args.subject,
            body=body,
            attachments=args.attach,
        )
        rcpts = recipients(msg)
        try:
            refused = smtp.send_message(msg, from_addr=sender, to_addrs=rcpts)
        except smtplib.SMTPRecipientsRefused as exc:
            reasons = "; ".join(f"<{a}>: {c} {_text(m)}" for a, (c, m) in exc.recipients.items())
            raise UAError(f"every recipient was refused: {reasons}") from None
        except smtplib.SMTPSenderRefused as exc:
            reason = f"{exc.smtp_code} {_text(exc.smtp_error)}"
            raise UAError(f"sender <{sender}> refused: {reason}") from None
        except smtplib.SMTPDataError as exc:
            raise UAError(f"message refused: {exc.smtp_code} {_text(exc.smtp_error)}") from None
        except (OSError, smtplib.SMTPException) as exc:
            raise UAError(f"sending failed: {exc}") from None
    finally:
        try:
            smtp.quit()
        except (OSError, smtplib.SMTPException):
            smtp.close()
    for address, (code, text) in refused.items():
        print(f"refused <{address}>: {code} {_text(text)}", file=sys.stderr)
    accepted = [r for r in rcpts if r not in refused]
    print(f"sent {msg['Message-ID']} to {', '.join(accepted)}", file=out)
    return 1 if refused else 0


def _default_sender(user: str, smtp: smtplib.SMTP) -> str:
    if "@" in user:
        return user
    greeting = (smtp.ehlo_resp or b"").split(b"\n")[0].split()
    host = greeting[0].decode("ascii", "replace") if greeting else "localhost"
    return f"{user}@{host}"


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def _first(data: list[Any]) -> str:
    """The text of an imaplib response's first item (a NO/BAD reason)."""
    item = data[0] if data else b""
    if isinstance(item, tuple):
        item = item[0]
    return _text(item) if isinstance(item, bytes | str) else ""


def mailbox_arg(name: str) -> str:
    """A mailbox name for an IMAP command: modified UTF-7 (RFC 3501 5.1.3), quoted if needed."""
    encoded = utf7.encode(name)
    if ATOM.match(encoded):
        return encoded
    return '"' + encoded.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _select(imap: imaplib.IMAP4, folder: str, readonly: bool) -> int:
    typ, data = imap.select(mailbox_arg(folder), readonly=readonly)
    if typ != "OK":
        raise UAError(f"cannot open folder {folder}: {_first(data)}")
    return int(data[0] or 0)


def _logout(imap: imaplib.IMAP4) -> None:
    try:
        imap.logout()
    except (OSError, imaplib.IMAP4.error):
        pass


def cmd_inbox(args: argparse.Namespace, password: str, out: IO[str]) -> int:
    """One line per message: number, flags, date, from, subject, size (RFC 3501 6.4.5)."""
    target = endpoint(args.imap, args.server, args.port_base, "imap")
    imap = open_imap(target, _context_for(args, target), args.user, password)
    try:
        count = _select(imap, args.folder, readonly=True)
        if count == 0:
            print(f"{args.folder}: no messages", file=out)
            return 0
        typ, data = imap.fetch("1:*", SUMMARY_ITEMS)
        if typ != "OK":
            raise UAError(f"FETCH failed: {_first(data)}")
        for number, flags, size, header in _summaries(data):
            print(view.summary_line(number, flags, size, header), file=out)
        print(f"{args.folder}: {count} message(s)", file=out)
    except (OSError, imaplib.IMAP4.error) as exc:
        raise UAError(f"{target}: {exc}") from None
    finally:
        _logout(imap)
    return 0


def _summaries(data: list[Any]) -> list[tuple[int, list[str], int, EmailMessage]]:
    """imaplib's FETCH response -> (number, flags, size, header) per message.  Items may
    come before or after the literal, so the bytes following it are searched too."""
    rows = []
    for i, item in enumerate(data):
        if not isinstance(item, tuple):
            continue
        meta, literal = item
        after = data[i + 1] if i + 1 < len(data) and isinstance(data[i + 1], bytes) else b""
        text = meta + b" " + after
        number = FETCH_NUMBER.match(meta)
        if number is None:
            continue
        flags = FETCH_FLAGS.search(text)
        size = FETCH_SIZE.search(text)
        header = email.message_from_bytes(literal, policy=email.policy.default)
        rows.append(
            (
                int(number.group(1)),
                flags.group(1).decode("utf-8", "replace").split() if flags else [],
                int(size.group(1)) if size else len(literal),
                header,
            )
        )
    return rows  # type: ignore[return-value]


def cmd_read(args: argparse.Namespace, password: str, out: IO[str]) -> int:
    """Message N: headers, the text decoded for the terminal, attachments listed."""
    if args.number < 1:
        raise UAError("message numbers start at 1")
    target = endpoint(args.imap, args.server, args.port_base, "imap")
    imap = open_imap(target, _context_for(args, target), args.user, password)
    try:
        count = _select(imap, args.folder, readonly=False)
        if args.number > count:
            raise UAError(f"no message {args.number} in {args.folder} ({count} message(s))")
        typ, data = imap.fetch(str(args.number), "(BODY[])")  # sets \Seen (RFC 3501 6.4.5)
        literals = [item[1] for item in data if isinstance(item, tuple)]
        if typ != "OK" or not literals:
            raise UAError(f"cannot fetch message {args.number}")
        msg = email.message_from_bytes(literals[0], policy=email.policy.default)
        out.write(view.render(msg))  # type: ignore[arg-type]
    except (OSError, imaplib.IMAP4.error) as exc:
        raise UAError(f"{target}: {exc}") from None
    finally:
        _logout(imap)
    return 0
