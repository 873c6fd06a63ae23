"""Machinery every aekit estimator shares: input validation, seeding, the call into the one training loop,
checkpoints each epoch, resume (``warm_start``), save/load. Subclasses say which model and which step."""

from __future__ import annotations

import os
from collections.abc import Callable
from numbers import Integral, Real
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted, validate_data

from .. import __version__
from ..device import resolve_device
from ..errors import CheckpointError, DataError
from ..io import Checkpoint, load_checkpoint, load_optimizer_state, optimizer_state_tensors, save_checkpoint
from ..losses.penalties import l2_penalty
from ..models.base import AutoencoderModule, build_model
from ..registry import ESTIMATORS
from ..training import EarlyStopping, EpochCallback, map_batches, train
from ..training.distributed import is_main_process
from ..training.loop import History, Position
from ..training.optim import OPTIMIZERS
from ..training.signals import stop_on_signals


def _jsonable(value: Any) -> Any:
    if isinstance(value, (tuple, list)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return None  # e.g. a RandomState instance: not reproducible from JSON, stored as None


# Parameters every estimator trained by the one loop has, validated the same way (each estimator's own table
# adds its model's parameters to these).
TRAINING_PARAMETERS: dict[str, list] = {
    "optimizer": [StrOptions(set(OPTIMIZERS))],
    "learning_rate": [Interval(Real, 0, None, closed="neither")],
    "l2": [Interval(Real, 0, None, closed="left")],
    "batch_size": [Interval(Integral, 1, None, closed="left")],
    "epochs": [Interval(Integral, 0, None, closed="left")],
    "early_stopping": ["boolean"],
    "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
    "patience": [Interval(Integral, 1, None, closed="left")],
    "random_state": ["random_state"],
    "device": [str, None],
    "checkpoint_dir": [str, os.PathLike, None],
    "warm_start": ["boolean"],
    "verbose": ["verbose"],
}


class TorchEstimator(BaseEstimator):
    """Base for estimators that train a torch module with the one loop.

    Subclasses define ``_build_model(n_features, seed)``, ``_make_step(model, params, regularized)`` and may
    override ``_prepare_targets``. Learned state: ``model_``, ``history_``, ``n_epochs_``, ``n_features_in_``.
    """

    model_name: str = "dense"

    # -- hooks ---------------------------------------------------------------------------------------------
    def _build_model(self, n_features: int, seed: int) -> AutoencoderModule:
        raise NotImplementedError

    def _make_step(self, model: AutoencoderModule):
        """The step that trains ``model`` end to end (wrapped for data-parallel training when in a group)."""
        raise NotImplementedError

    def _check_X(self, X: np.ndarray) -> None:
        """Checks on validated training data that depend on the settings: BCE needs X in [0, 1]."""
        if getattr(self, "loss", None) == "bce" and (X.min() < 0 or X.max() > 1):
            raise DataError(
                f"loss='bce' needs X in [0, 1], but X ranges over [{X.min():.3g}, {X.max():.3g}]; "
                "scale it (e.g. MinMaxScaler) or use loss='mse'"
            )

    # -- data ----------------------------------------------------------------------------------------------
    def _validate(self, X: Any, reset: bool) -> np.ndarray:
        return validate_data(self, X, dtype=np.float32, reset=reset, order="C")

    def _to_tensor(self, X: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(X, dtype=np.float32)).to(self.device_)

    def _map(self, fn, X: np.ndarray) -> np.ndarray:
        self.model_.eval()
        return map_batches(fn, self._to_tensor(X)).cpu().numpy()

    # -- fitting -------------------------------------------------------------------------------------------
    def fit(self, X: Any, y: Any = None) -> TorchEstimator:
        """Train on ``X`` (``y`` is ignored). With ``warm_start`` and a fitted model (e.g. from
        :func:`aekit.load`), training continues from its weights, optimizer and RNG states until ``epochs``
        epochs have run in total."""
        self._validate_params()
        resume = bool(getattr(self, "warm_start", False)) and hasattr(self, "model_")
        X = self._validate(X, reset=not resume)
        self._check_X(X)
        if not resume:
            self.device_ = resolve_device(self.device)
            self.seed_ = int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))
            self.model_ = self._build_model(X.shape[1], self.seed_).to(self.device_)
            self.history_: History = []
            self.n_epochs_ = 0
            self._train_state: dict[str, torch.Tensor] = {}
            self._state_meta: dict[str, str] = {}
        self._fit_model(X)
        return self

    def _split(self, X: np.ndarray, Y: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None,
                                                                       np.ndarray | None, np.ndarray | None]:
        """(X_train, Y_train, X_val, Y_val): a seeded validation split when early stopping, else no split."""
        if not self.early_stopping:
            return X, Y, None, None
        n_val = int(round(self.validation_fraction * len(X)))
        if n_val < 1 or n_val >= len(X):
            raise DataError(
                f"early_stopping needs a validation split: validation_fraction={self.validation_fraction} of "
                f"{len(X)} samples leaves {n_val} for validation; use more data or a larger fraction"
            )
        perm = np.random.RandomState(self.seed_).permutation(len(X))
        train, val = perm[n_val:], perm[:n_val]
        return X[train], None if Y is None else Y[train], X[val], None if Y is None else Y[val]

    def _pretrain(self, X: torch.Tensor, generator: torch.Generator, start: Position | None,
                  resume_optimizer: Callable[[torch.optim.Optimizer], None] | None,
                  on_checkpoint: Callable[[Any, Position], None], stop_requested: Callable[[], int]) -> None:
        """Hook run before end-to-end training of a new model (e.g. greedy layer-wise pretraining), or to finish
        it when a checkpoint was written inside it (``start``: a position with a ``phase``, whose optimizer state
        ``resume_optimizer`` loads). ``on_checkpoint(step, position)`` records and saves a checkpoint."""

    def _end_to_end_epochs(self) -> int:
        return self.epochs

    def _fit_model(self, X: np.ndarray, Y: np.ndarray | None = None) -> None:
        """Train on rows ``X`` with targets ``Y`` (None: the rows themselves, as autoencoders do)."""
        X_train, Y_train, X_val, Y_val = self._split(X, Y)
        X_t = self._to_tensor(X_train)
        X_v = None if X_val is None else self._to_tensor(X_val)
        Y_t, Y_v = (None if y is None else torch.from_numpy(np.ascontiguousarray(y)).to(self.device_)
                    for y in (Y_train, Y_val))
        model = self.model_
        generator = torch.Generator().manual_seed(self.seed_)
        devices = [self.device_] if self.device_.type == "cuda" else []
        state = self._train_state
        with torch.random.fork_rng(devices=devices), stop_on_signals() as stop_requested:
            torch.manual_seed(self.seed_)
            position = None
            if state:  # resume: position inside the epoch, shuffling and global RNG exactly where they were
                position = Position(
                    epoch=int(state.get("position.epoch", torch.tensor(self.n_epochs_))),
                    step=int(state.get("position.step", torch.tensor(0))), shuffle_state=state["rng.shuffle"],
                    totals={k[len("position.totals."):]: float(v) for k, v in state.items()
                            if k.startswith("position.totals.")},
                    phase=int(state.get("position.phase", torch.tensor(0))))
                torch.set_rng_state(state["rng.torch"])
                if "rng.cuda" in state and self.device_.type == "cuda":  # noise drawn on the GPU resumes too
                    torch.cuda.set_rng_state(state["rng.cuda"], self.device_)

            def checkpoint(step, position: Position) -> None:
                self._capture_state(step, position)
                if self.checkpoint_dir is not None and is_main_process():
                    self.save(self.checkpoint_dir)

            def resume_optimizer(optimizer: torch.optim.Optimizer) -> None:
                load_optimizer_state(optimizer, state, self._state_meta["param_groups"])

            if position is not None and position.phase:  # stopped inside pretraining: finish it first
                self._pretrain(X_t, generator, position, resume_optimizer, checkpoint, stop_requested)
                position = None
            elif position is None and not self.history_:
                self._pretrain(X_t, generator, None, None, checkpoint, stop_requested)
            start = position or Position(epoch=self.n_epochs_)
            step = self._make_step(model)
            if position is not None:
                resume_optimizer(step.optimizer)
            callbacks = []
            stopper = None
            if X_v is not None:
                stopper = EarlyStopping(model, patience=self.patience)
                callbacks.append(stopper)

            def on_checkpoint(position: Position) -> None:
                checkpoint(step, position)

            def on_epoch(record: dict[str, Any], history: History) -> None:
                record["l2"] = l2_penalty(model.regularized_weights(), self.l2)
                self.n_epochs_ = record["epoch"]
                on_checkpoint(Position(record["epoch"], 0, generator.get_state()))

            callbacks.insert(0, EpochCallback(on_epoch))
            train(step, X_t, Y_t, epochs=self._end_to_end_epochs(), batch_size=self.batch_size, generator=generator,
                  X_val=X_v, Y_val=Y_v, history=self.history_, start=start, callbacks=callbacks,
                  checkpoint_every=getattr(self, "checkpoint_every", 0), on_checkpoint=on_checkpoint,
                  stop_requested=stop_requested, progress=bool(self.verbose), description=type(self).__name__,
                  record_extra=self._record_extra())
            if stopper is not None:
                stopper.restore()
        model.eval()

    def _record_extra(self) -> dict[str, Any] | None:
        return None

    def _capture_state(self, step, position: Position) -> None:
        tensors, groups = optimizer_state_tensors(step.optimizer)
        tensors["rng.shuffle"] = position.shuffle_state
        tensors["rng.torch"] = torch.get_rng_state()
        if self.device_.type == "cuda":
            tensors["rng.cuda"] = torch.cuda.get_rng_state(self.device_)
        tensors["position.epoch"] = torch.tensor(position.epoch)
        tensors["position.step"] = torch.tensor(position.step)
        tensors["position.phase"] = torch.tensor(position.phase)
        for name, value in position.totals.items():
            tensors[f"position.totals.{name}"] = torch.tensor(value, dtype=torch.float64)
        self._train_state, self._state_meta = tensors, {"param_groups": groups}

    # -- persistence ---------------------------------------------------------------------------------------
    def _config(self) -> dict[str, Any]:
        check_is_fitted(self, "model_")
        return {
            "aekit_version": __version__,
            "estimator": type(self).__name__,
            "params": {k: _jsonable(v) for k, v in self.get_params(deep=False).items()},
            "model": {"name": self.model_.registry_name, "config": self.model_.config},
            "fitted": {"n_features_in_": int(self.n_features_in_), "n_epochs_": int(self.n_epochs_),
                       "seed_": int(self.seed_)},
            "extra": getattr(self, "checkpoint_extra_", {}),
        }

    def save(self, path: str | os.PathLike) -> Path:
        """Write the fitted estimator to a checkpoint folder (safetensors + JSON, atomic, no pickle)."""
        return save_checkpoint(path, self._config(), self.model_.state_dict(), self._train_state,
                               self._state_meta, self.history_)

    @classmethod
    def _from_checkpoint(cls, ckpt: Checkpoint, device: str | None = None) -> TorchEstimator:
        cfg = ckpt.config
        try:
            params = dict(cfg["params"])
            if device is not None:
                params["device"] = device
            est = cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in params.items()})
            est.device_ = resolve_device(est.device)
            est.model_ = build_model(cfg["model"]["name"], cfg["model"]["config"])
            fitted = cfg["fitted"]
            est.n_features_in_ = fitted["n_features_in_"]
            est.n_epochs_ = fitted["n_epochs_"]
            est.seed_ = fitted["seed_"]
        except (KeyError, TypeError) as exc:
            raise CheckpointError(f"checkpoint config is missing or has a bad entry: {exc}") from None
        try:
            est.model_.load_state_dict(ckpt.weights)
        except RuntimeError as exc:
            raise CheckpointError(f"checkpoint weights do not fit the model its config describes: {exc}") from None
        est.model_.to(est.device_).eval()
        est.history_ = ckpt.history
        est._train_state, est._state_meta = ckpt.state, ckpt.state_meta
        est.checkpoint_extra_ = cfg.get("extra", {})
        return est


def load(path: str | os.PathLike, device: str | None = None) -> TorchEstimator:
    """Rebuild a fitted estimator from a checkpoint folder written by ``save`` or during ``fit``.

    Only JSON and safetensors are read; checksums are verified; nothing is unpickled.
    """
    ckpt = load_checkpoint(path)
    name = ckpt.config.get("estimator")
    if name not in ESTIMATORS:
        raise CheckpointError(f"checkpoint {path} names an unknown estimator {name!r}")
    return ESTIMATORS.get(name)._from_checkpoint(ckpt, device=device)

