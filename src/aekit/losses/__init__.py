"""Loss terms that compose: reconstruction (mse, bce) + penalties -> :class:`Objective`."""

from .objective import Objective
from .penalties import Penalty, l2_penalty
from .reconstruction import RECONSTRUCTION_LOSSES, bce, mse, reconstruction_loss

__all__ = ["Objective", "Penalty", "l2_penalty", "RECONSTRUCTION_LOSSES", "bce", "mse", "reconstruction_loss"]
