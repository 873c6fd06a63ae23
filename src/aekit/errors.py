"""Exceptions that aekit raises for user errors.

Each subclasses the built-in exception scikit-learn users expect (``ValueError`` for bad data), so
``except ValueError`` keeps working; the CLI turns any :class:`AekitError` into one message and exit code 2.
"""

from __future__ import annotations


class AekitError(Exception):
    """Base class: an error the user can fix (bad input, missing file, diverging run)."""


class DataError(AekitError, ValueError):
    """Input data is missing, malformed or does not match what the model expects."""


class CheckpointError(AekitError, ValueError):
    """A checkpoint folder is missing, truncated, corrupt or unsafe."""


class TrainingError(AekitError, RuntimeError):
    """Training cannot go on (e.g. the loss became NaN or infinite)."""


class ConfigError(AekitError, ValueError):
    """A setting is malformed (e.g. ``noise="gaussian:abc"``)."""
