"""IMAP4rev1 (RFC 3501) with IDLE, UIDPLUS, MOVE, NAMESPACE, ID, ENABLE, UNSELECT, LITERAL+,
SPECIAL-USE, CHILDREN, SASL-IR and SORT: ``IMAPService`` makes one session per connection."""
