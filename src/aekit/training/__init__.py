"""The one training loop, its steps, executors, optimizers and callbacks."""

from .callbacks import EarlyStopping, EpochCallback
from .executors import DenseChainStep, VariationalChainStep, reconstruction_step
from .loop import evaluate, map_batches, train
from .optim import make_optimizer
from .steps import CapturedStep, NonFiniteLoss, ReconstructionStep

__all__ = ["EarlyStopping", "EpochCallback", "evaluate", "map_batches", "train", "make_optimizer",
           "NonFiniteLoss", "ReconstructionStep", "DenseChainStep", "CapturedStep", "VariationalChainStep",
           "reconstruction_step"]
