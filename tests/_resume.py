"""Helpers the tests share: a run interrupted by SIGINT after some epoch, then resumed from its checkpoint."""

from __future__ import annotations

import os
import signal

import pytest
import torch

import aekit


class Interrupt:
    """A user callback that sends this process SIGINT after epoch ``at``: training stops at the next batch, a
    checkpoint of that position is written, and TrainingInterrupted is raised (as Ctrl-C would)."""

    def __init__(self, at: int) -> None:
        self.at = at

    def on_epoch_end(self, estimator, logs):
        if logs["epoch"] == self.at:
            os.kill(os.getpid(), signal.SIGINT)


def interrupted_then_resumed(cls, X, tmp_path, at=2, y=None, **params):
    run = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        cls(**params, checkpoint_dir=str(run), callbacks=[Interrupt(at)]).fit(X, y)
    loaded = aekit.load(run)
    assert 0 < loaded._saved_position().step  # stopped inside an epoch
    return loaded.set_params(warm_start=True, checkpoint_dir=str(run)).fit(X, y)


def assert_same_run(a, b):
    for k, v in a.model_.state_dict().items():
        assert torch.equal(v, b.model_.state_dict()[k]), k
    drop = lambda h: [{k: v for k, v in r.items() if k != "time"} for r in h]
    assert drop(a.history_) == drop(b.history_)
