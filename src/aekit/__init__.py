"""aekit: autoencoders that work, from PCA-equivalent linear ones to stacked, tied and regularized ones."""

__version__ = "0.1.0"

from . import models  # noqa: E402,F401  (registers the model families)
from .data import load_dataset, load_file  # noqa: E402
from .errors import AekitError, CheckpointError, DataError, TrainingError  # noqa: E402
from .estimators import (AdversarialAutoencoder, Autoencoder, GSN, PretrainedClassifier, SemanticHasher,  # noqa: E402
                         VariationalAutoencoder, load)
from .registry import available_models  # noqa: E402

__all__ = ["AdversarialAutoencoder", "Autoencoder", "GSN", "PretrainedClassifier", "SemanticHasher", "VariationalAutoencoder", "load", "load_dataset", "load_file",
           "available_models", "AekitError",
           "CheckpointError", "DataError", "TrainingError", "__version__"]
