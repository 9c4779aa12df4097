"""Typed errors of the library.

The library raises these and never exits; the CLI turns them into one-line messages and
non-zero exit codes (see :mod:`etle.cli`).
"""

from __future__ import annotations


class EtleError(Exception):
    """Base class of every error etle raises on purpose."""

    exit_code: int = 1


class ConfigError(EtleError):
    """A camera/site configuration file is missing, malformed or invalid."""

    exit_code = 2


class SourceError(EtleError):
    """A video/image/stream source cannot be opened or decoded."""

    exit_code = 3


class ModelError(EtleError):
    """A model file is missing, has the wrong hash, or its runtime is not installed."""

    exit_code = 4


class StoreError(EtleError):
    """The ticket database or evidence store cannot be used."""

    exit_code = 5


class RegistryError(EtleError):
    """The vehicle registry did not answer (the library reports that as a lookup state; the
    CLI turns it into this error for a single lookup)."""

    exit_code = 6


class MissingDependencyError(ModelError):
    """An optional dependency (an 'extra') is needed but not installed."""

    def __init__(self, package: str, extra: str, purpose: str) -> None:
        super().__init__(
            f"{purpose} needs the Python package '{package}': "
            f"install it with: pip install 'etle[{extra}]'"
        )
        self.package = package
        self.extra = extra
