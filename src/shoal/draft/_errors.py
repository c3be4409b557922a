"""Why a draft cannot be used."""

from __future__ import annotations

from ..errors import RunError

__all__ = ["DraftFailed", "DraftRejected"]


class DraftRejected(RunError):
    """A draft failed a check; the message goes back to the model that wrote it."""


class DraftFailed(RunError):
    """Every round was refused: the command exits 1 with the last reason and writes nothing."""
