"""Errors that end a run with one clear line on stderr and exit code 2."""

from __future__ import annotations


class SlimscopeError(Exception):
    """A problem with the user's input or environment; the message is shown as is (after sanitizing)."""


class SourceError(SlimscopeError):
    """The image could not be found or fetched (engine down, image missing, bad path)."""


class FormatError(SlimscopeError):
    """The bytes are not a valid image: bad archive, bad JSON, truncated or corrupt layer."""


class DigestMismatch(FormatError):
    """A blob's sha256 differs from the digest its manifest or config declares."""


class ReuseMismatch(DigestMismatch):
    """A blob is not the already read (or cached) layer it promised to be; the caller reads it again."""
