"""What can go wrong in the store, as one small tree, so callers catch by meaning, not by driver.

    StoreError
    ├── DatabaseURLError        the URL is malformed or names a driver we do not run on (bad input)
    ├── DatabaseUnavailableError the database cannot be reached or opened (environment, maybe transient)
    └── InvalidRecordError      a value cannot be stored faithfully (NaN, unknown enum, missing field);
                                raised before anything is written, so a bad batch leaves no trace

``DatabaseURLError`` and ``InvalidRecordError`` are also ``ValueError``: both are the caller's input.
"""

from __future__ import annotations


class StoreError(Exception):
    """Base of every error the store raises on purpose."""


class DatabaseURLError(StoreError, ValueError):
    """The database URL is malformed or unsupported."""


class DatabaseUnavailableError(StoreError):
    """The database named by a valid URL cannot be reached, opened or migrated."""


class InvalidRecordError(StoreError, ValueError):
    """A value would not survive the round trip through the database; ``field`` names where it failed."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message
