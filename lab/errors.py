"""Exception types. Every message names the file, key or record at fault and how to fix it."""

from __future__ import annotations


class LabError(Exception):
    """Base class of every error ``lab`` raises on purpose."""


class ConfigError(LabError, ValueError):
    """``params.yaml`` (or an experiment file) has an unknown key, a wrong type or a missing file."""


class DataError(LabError, ValueError):
    """An input data file is unreadable, empty, badly encoded or inconsistent."""


class ModelNotAvailableError(LabError, LookupError):
    """A model cannot be had offline; the message says which and how to get it."""


class RegistryError(LabError, KeyError):
    """An unknown name was asked of a registry; the message lists what exists."""

    def __str__(self) -> str:  # KeyError would quote the message; show it as written
        return str(self.args[0]) if self.args else ""
