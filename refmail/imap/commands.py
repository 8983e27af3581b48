"""The IMAP command table as data: which state each verb runs in, whether it may follow
``UID``, and whether it names messages by sequence number (RFC 3501 3, 6, 7.4.1)."""

from __future__ import annotations

import enum
from collections.abc import Generator, Mapping
from dataclasses import dataclass
from types import MappingProxyType


class State(enum.Enum):
    """RFC 3501 3: the four states of a connection."""

    NOT_AUTHENTICATED = "not authenticated"
    AUTHENTICATED = "authenticated"
    SELECTED = "selected"
    LOGOUT = "logout"


@dataclass(frozen=True, slots=True)
class Cmd:
    """How a verb may run.

    ``uid``: valid after ``UID`` (RFC 3501 6.4.8, RFC 4315 2.1, RFC 6851 3.2).
    ``uses_seqs``: takes message sequence numbers, so no untagged EXPUNGE may be sent while
    it runs unless it is the UID form (RFC 3501 7.4.1).
    """

    states: frozenset[State]
    uid: bool = False
    uses_seqs: bool = False


@dataclass(frozen=True, slots=True)
class Done:
    """A handler's tagged OK: ``tag OK [code] text`` (RFC 3501 7.1.1)."""

    text: str
    code: str | None = None


@dataclass(frozen=True, slots=True)
class Streamed:
    """A handler's responses made as the client reads them: ``chunks`` yields untagged
    responses and returns the Done, so a FETCH of a whole mailbox never sits in memory
    (STYLE.md on Twisted: "whole messages buffered in memory")."""

    chunks: Generator[bytes, None, Done]


#: Output made per turn of a streamed command (FETCH): the connection writes it, then asks
#: for more through ``wake``/``pending_output``, so memory stays bounded by this much.
OUTPUT_SLICE = 1 << 20

_ANY = frozenset({State.NOT_AUTHENTICATED, State.AUTHENTICATED, State.SELECTED})
_NOT_AUTH = frozenset({State.NOT_AUTHENTICATED})
_AUTH = frozenset({State.AUTHENTICATED, State.SELECTED})
_AUTH_ONLY = frozenset({State.AUTHENTICATED})
_SELECTED = frozenset({State.SELECTED})

COMMANDS: Mapping[str, Cmd] = MappingProxyType(
    {
        # RFC 3501 6.1: any state
        "CAPABILITY": Cmd(_ANY),
        "NOOP": Cmd(_ANY),
        "LOGOUT": Cmd(_ANY),
        "ID": Cmd(_ANY),  # RFC 2971 3.1
        # RFC 3501 6.2: not authenticated
        "STARTTLS": Cmd(_NOT_AUTH),
        "AUTHENTICATE": Cmd(_NOT_AUTH),
        "LOGIN": Cmd(_NOT_AUTH),
        # RFC 3501 6.3: authenticated (and so selected)
        "SELECT": Cmd(_AUTH),
        "EXAMINE": Cmd(_AUTH),
        "CREATE": Cmd(_AUTH),
        "DELETE": Cmd(_AUTH),
        "RENAME": Cmd(_AUTH),
        "SUBSCRIBE": Cmd(_AUTH),
        "UNSUBSCRIBE": Cmd(_AUTH),
        "LIST": Cmd(_AUTH),
        "LSUB": Cmd(_AUTH),
        "STATUS": Cmd(_AUTH),
        "APPEND": Cmd(_AUTH),
        "NAMESPACE": Cmd(_AUTH),  # RFC 2342 5
        "ENABLE": Cmd(_AUTH_ONLY),  # RFC 5161 3.1: only in the authenticated state
        "IDLE": Cmd(_AUTH),  # RFC 2177 3
        # RFC 3501 6.4: selected
        "CHECK": Cmd(_SELECTED),
        "CLOSE": Cmd(_SELECTED),
        "UNSELECT": Cmd(_SELECTED),  # RFC 3691 2
        "EXPUNGE": Cmd(_SELECTED, uid=True),  # UID EXPUNGE: RFC 4315 2.1
        "SEARCH": Cmd(_SELECTED, uid=True, uses_seqs=True),
        "SORT": Cmd(_SELECTED, uid=True, uses_seqs=True),  # RFC 5256 3
        "FETCH": Cmd(_SELECTED, uid=True, uses_seqs=True),
        "STORE": Cmd(_SELECTED, uid=True, uses_seqs=True),
        "COPY": Cmd(_SELECTED, uid=True, uses_seqs=True),
        "MOVE": Cmd(_SELECTED, uid=True, uses_seqs=True),  # RFC 6851 3.1
    }
)
