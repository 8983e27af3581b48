"""Exceptions of the parsing core, shared by ``_parse`` (Cython) and ``_parse_py`` (pure)."""

from __future__ import annotations


class ParseError(ValueError):
    """Input that does not match the grammar; ``str(exc)`` is a short reason for a reply."""


class LineTooLong(ParseError):
    """A line exceeded its protocol's limit before its line ending arrived."""
