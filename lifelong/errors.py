"""The mistakes a user can fix. The CLI prints their message and exits with code 2; anything else is a
bug and keeps its traceback. A new kind of user error joins by subclassing `UserError`."""

from __future__ import annotations


class UserError(Exception):
    """A mistake in what the user gave (a config, a data folder, a path); the message says how to fix it."""


class ConfigError(UserError, ValueError):
    """A config or stream spec is wrong; the message says where and how to fix it."""


class StreamError(ConfigError):
    """A stream spec its data cannot satisfy (too few classes, too few examples for the shots asked)."""


class FolderError(UserError):
    """A folder given on the command line cannot be written, or is not the run folder it should be."""
