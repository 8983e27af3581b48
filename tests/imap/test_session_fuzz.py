"""Arbitrary commands against a logged-in, selected session: every one gets a tagged or
untagged reply, nothing raises, and no exception name reaches the wire."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .conftest import Env

VERBS = [
    "CAPABILITY",
    "NOOP",
    "SELECT",
    "EXAMINE",
    "CREATE",
    "DELETE",
    "RENAME",
    "SUBSCRIBE",
    "UNSUBSCRIBE",
    "LIST",
    "LSUB",
    "STATUS",
    "APPEND",
    "CHECK",
    "EXPUNGE",
    "SEARCH",
    "FETCH",
    "STORE",
    "COPY",
    "MOVE",
    "UID FETCH",
    "UID STORE",
    "UID SEARCH",
    "UID EXPUNGE",
    "SORT",
    "NAMESPACE",
    "ID",
    "ENABLE",
    "UNSELECT",
    "BOGUS",
]
WORDS = [
    "1",
    "1:*",
    "*",
    "2,4:5",
    "0",
    "INBOX",
    "Sent",
    "Trash",
    "Work/x",
    '""',
    '"a b"',
    "()",
    "(FLAGS)",
    "(BODY[])",
    "BODY.PEEK[HEADER.FIELDS (FROM)]",
    "ALL",
    "FULL",
    "+FLAGS",
    "-FLAGS.SILENT",
    "(\\Seen)",
    "\\Deleted",
    "(UIDNEXT MESSAGES)",
    "(REVERSE DATE)",
    "UTF-8",
    "SUBJECT",
    "OR",
    "NOT",
    "SINCE",
    "1-Jan-2000",
    "{3+}\r\nabc",
    "%",
    "NIL",
    "&-",
    "x\x7f",
    "(((",
    ")",
    '"unterminated',
]


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(
        st.tuples(st.sampled_from(VERBS), st.lists(st.sampled_from(WORDS), max_size=5)),
        min_size=1,
        max_size=6,
    )
)
def test_random_commands_are_answered(env: Env, commands: list[tuple[str, list[str]]]) -> None:
    env.store.ensure_user("alice")
    if not env.store.mailbox("alice", "INBOX").messages():
        env.deliver("alice", "one")
        env.deliver("alice", "two")
    client = env.session()
    client.login()
    client.select()
    for n, (verb, words) in enumerate(commands):
        tag = f"f{n}"
        reply = client.send(f"{tag} {verb} {' '.join(words)}\r\n".encode())
        if client.session.closing:
            break
        text = reply.decode("utf-8", "replace")
        assert (
            f"{tag} OK" in text
            or f"{tag} NO" in text
            or f"{tag} BAD" in text
            or (text.startswith("+ "))
        ), text
        assert "Error" not in text and "Traceback" not in text and "Exception" not in text
        if text.startswith("+ "):  # a literal is awaited: give up on it with a bad line
            client.send(b"\r\n" * 3)
            break
