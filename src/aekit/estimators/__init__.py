"""scikit-learn facades over the models."""

from .autoencoder import Autoencoder
from .base import TorchEstimator, load

__all__ = ["Autoencoder", "TorchEstimator", "load"]
