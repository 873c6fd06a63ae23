"""Exceptions that aekit raises for user errors.

Each subclasses the built-in exception scikit-learn users expect, so ``except ValueError`` (bad parameters, bad
data) and ``except OSError`` (bad files) keep working; the CLI turns any :class:`AekitError` into one message and
exit code 2.
"""

from __future__ import annotations


class AekitError(Exception):
    """Base class: an error the user can fix (bad input, missing file, diverging run)."""


class ConfigError(AekitError, ValueError):
    """A parameter or setting is invalid (e.g. ``hidden_layers=(0,)``, ``noise="gaussian:abc"``)."""


class DataError(AekitError, ValueError):
    """Input data is missing, malformed or does not match what the model expects."""


class LimitError(DataError):
    """An input asks for more memory than this machine (or the documented limit) allows; raised before any of it
    is taken."""


class CheckpointError(AekitError, ValueError, OSError):
    """A checkpoint folder is missing, truncated, corrupt or unsafe (an ``OSError``, and a ``ValueError`` as before)."""


class RunFolderError(AekitError, OSError):
    """A run folder cannot be used as asked: another process trains in it, an output would overwrite its files,
    or a path inside it leads outside it."""


class MissingDependency(AekitError, ImportError):
    """An optional package that this feature needs is not installed."""


class TrainingError(AekitError, RuntimeError):
    """Training cannot go on (e.g. the loss became NaN or infinite)."""


class TrainingInterrupted(KeyboardInterrupt):
    """Training stopped on request (SIGINT/SIGTERM) after a checkpoint of the current position was written;
    ``position`` is where (a :class:`aekit.training.loop.Position`), ``signum`` the signal."""

    def __init__(self, position: object, signum: int) -> None:
        super().__init__(f"interrupted at {position.where()}")
        self.position, self.signum = position, signum
