"""The mail store: mbox files, their index and locks, and each user's tree of mailboxes.

Sessions use ``MailStore`` (the tree, delivery) and ``Mailbox`` (one mailbox's messages by
UID); both are described in DESIGN.md, "On disk".
"""

from refmail.store.mailbox import Mailbox
from refmail.store.model import MessageInfo
from refmail.store.store import MailStore

__all__ = ["MailStore", "Mailbox", "MessageInfo"]
