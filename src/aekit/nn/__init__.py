"""Building blocks shared by the model families."""

from .layers import ACTIVATIONS, INITS, activation, init_linear_

__all__ = ["ACTIVATIONS", "INITS", "activation", "init_linear_"]
