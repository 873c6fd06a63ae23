"""The one training loop, its steps, optimizers and callbacks."""

from .callbacks import EarlyStopping, EpochCallback
from .loop import evaluate, map_batches, train
from .optim import make_optimizer
from .steps import (
    CapturedStep,
    DenseChainStep,
    NonFiniteLoss,
    ReconstructionStep,
    VariationalChainStep,
    reconstruction_step,
)

__all__ = ["EarlyStopping", "EpochCallback", "evaluate", "map_batches", "train", "make_optimizer",
           "NonFiniteLoss", "ReconstructionStep", "DenseChainStep", "CapturedStep", "VariationalChainStep",
           "reconstruction_step"]
