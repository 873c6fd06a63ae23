"""Building blocks shared by the model families."""

from .layers import ACTIVATIONS, INITS, Activation, activation, init_linear_, register_activation

__all__ = ["ACTIVATIONS", "Activation", "INITS", "activation", "init_linear_", "register_activation"]
