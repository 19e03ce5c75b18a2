"""The one exception hierarchy of dancekit.

Every error a user can fix (a bad option, an invalid config, a malformed file) is a
``DancekitError``; the command line prints it as one line ``error: <source>: <message>`` and
exits 2. Anything else is a bug and exits 1.
"""

from __future__ import annotations


class DancekitError(Exception):
    """A problem the user can fix.

    Parameters
    ----------
    message : what is wrong and, where possible, what to do about it.
    source : the file (or option, or config) the problem belongs to, shown before the message.
    """

    def __init__(self, message: str, *, source: str | None = None):
        super().__init__(message)
        self.message = message
        self.source = source

    def with_source(self, source: str) -> "DancekitError":
        """Attach the file being processed, unless a more precise source is already set."""
        if self.source is None:
            self.source = source
        return self

    def __str__(self) -> str:
        return f"{self.source}: {self.message}" if self.source else self.message


class ParameterError(DancekitError, ValueError):
    """A value outside what is allowed (negative seeing, zero frames, an unknown choice)."""


class ConfigError(DancekitError):
    """An invalid configuration: malformed YAML, an unknown key, a wrong type."""


class InputError(DancekitError):
    """An input file that cannot be used: unreadable, malformed, wrong shape, NaN-only."""
