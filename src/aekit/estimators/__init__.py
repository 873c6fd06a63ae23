"""scikit-learn facades over the models."""

from .adversarial import AdversarialAutoencoder
from .autoencoder import Autoencoder
from .base import TorchEstimator, load
from .classifier import PretrainedClassifier
from .gsn import GSN
from .hasher import SemanticHasher
from .variational import VariationalAutoencoder

__all__ = ["AdversarialAutoencoder", "Autoencoder", "GSN", "PretrainedClassifier", "SemanticHasher", "TorchEstimator", "VariationalAutoencoder", "load"]
