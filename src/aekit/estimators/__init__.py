"""scikit-learn facades over the models."""

from .autoencoder import Autoencoder
from .base import TorchEstimator, load
from .classifier import PretrainedClassifier
from .hasher import SemanticHasher
from .variational import VariationalAutoencoder

__all__ = ["Autoencoder", "PretrainedClassifier", "SemanticHasher", "TorchEstimator", "VariationalAutoencoder", "load"]
