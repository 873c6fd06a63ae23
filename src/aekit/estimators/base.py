"""What every aekit estimator is made of: declared parameters (:mod:`aekit.params`), parts
(:mod:`aekit.estimators.parts`), and the machinery of training with the one loop: input validation, seeding,
checkpoints each epoch, resume (``warm_start``), save/load.

A family declares its parts and own parameters and says which model it builds and how (``_model_config``); the
step, the objective, the corruption and any pretraining come from its parts. :class:`AutoencoderEstimator` adds
the scikit-learn transformer API every autoencoder shares, :class:`Sampling` the ``sample`` of generative ones.
"""

from __future__ import annotations

import contextlib
import copy
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin, _fit_context
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_array, check_is_fitted, validate_data

from .. import __version__
from ..device import resolve_device
from ..errors import CheckpointError, DataError
from ..io import Checkpoint, load_checkpoint, load_optimizer_state, optimizer_state_tensors, save_checkpoint
from ..locking import LOCK_FILE, folder_lock
from ..losses.objective import Objective
from ..losses.penalties import l2_penalty
from ..models.base import AEOutput, AutoencoderModule, build_model, check_model_config
from ..params import Param, check_unique, make_init, parameters_doc, with_parameters_doc
from ..registry import ESTIMATORS
from ..training import EarlyStopping, EpochCallback, make_optimizer, map_batches, reconstruction_step, train
from ..training.callbacks import UserCallbacks
from ..training.schedules import Convergence, LearningRateSchedule, parse_schedule
from ..training import threads
from ..nn.chain import up
from ..training.cost import NOTICE_RATIO, notice, relative_cost
from ..training.precision import Precision
from ..training.distributed import distributed, is_main_process, world
from ..training.loop import History, Position
from ..training.signals import stop_on_signals
from .parts import Part, Training, output_activation
from ..data.sources import is_source
from ..data.stream import Stream, choose, map_source


MIN_ROWS = 8  # inference on the CPU runs on at least this many rows (padded): see TorchEstimator._map
BEST = "best."  # training-state tensors holding early stopping's best weights
# epochs="auto" with max_epochs=None: at most enough epochs for AUTO_STEPS optimizer steps, and at least
# AUTO_MIN_EPOCHS; AUTO_MAX_EPOCHS bounds tiny data. Measured: a linear autoencoder on 500 rows of 3-D data
# (batches of 150) needs 1,350-1,860 epochs (5,400-7,400 steps) to settle within 0.7 degree of PCA's plane
AUTO_STEPS, AUTO_MIN_EPOCHS, AUTO_MAX_EPOCHS = 10000, 10, 10000


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


def _from_json(params: dict[str, Any]) -> dict[str, Any]:
    """Parameters read back from a checkpoint's JSON: lists become tuples again (as :func:`_jsonable` wrote
    the sequences)."""
    return {k: tuple(v) if isinstance(v, list) else v for k, v in params.items()}


def generator_from(random_state: Any) -> torch.Generator:
    """A CPU generator seeded from ``random_state`` (None: fresh entropy, as scikit-learn)."""
    seed = int(check_random_state(random_state).randint(np.iinfo(np.int32).max))
    return torch.Generator().manual_seed(seed)


class TorchEstimator(BaseEstimator):
    """Base for estimators trained by the one loop.

    A subclass declares ``parts`` (each brings parameters and hooks), ``own_params`` (parameters of its own) and
    ``positional`` (the parameters that may be passed by position); its ``__init__``, ``_parameter_constraints``
    and the ``Parameters`` section of its docstring are made from them. It defines ``_model_config(n_features)``
    (the keyword arguments of the registered model ``model_name``) and may override ``_make_step``. Learned
    state: ``model_``, ``history_``, ``n_epochs_``, ``n_features_in_``, ``seed_``, ``device_``.
    """

    parts: ClassVar[tuple[Part, ...]] = (Training(),)
    own_params: ClassVar[tuple[Param, ...]] = ()
    positional: ClassVar[tuple[str, ...]] = ()
    model_name: ClassVar[str] = ""
    #: how the reconstruction loss is reduced: "mean" over every element, "sum" per row (nats per image)
    reduction: ClassVar[str] = "mean"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if any(name in cls.__dict__ for name in ("parts", "own_params", "positional")):
            cls._declare()

    @classmethod
    def _declare(cls) -> None:
        params = cls.declared_params()
        check_unique(params)
        if not any(isinstance(part, Training) for part in cls.parts):
            raise TypeError(f"{cls.__name__}: every estimator trained by the loop has the Training part")
        cls.__init__ = make_init(params, cls.positional, cls.__qualname__)  # type: ignore[method-assign]
        cls._parameter_constraints = {p.name: list(p.constraints) for p in params}
        cls.__doc__ = with_parameters_doc(cls.__dict__.get("__doc__"), parameters_doc(params, cls.positional))

    @classmethod
    def declared_params(cls) -> tuple[Param, ...]:
        """Every parameter, each declared once: the estimator's own, then its parts' in order."""
        return (*cls.own_params, *(p for part in cls.parts for p in part.params))

    @classmethod
    def param_titles(cls) -> dict[str, str]:
        """Parameter name -> the heading its flag has in a command's help (its part's title)."""
        titles = {p.name: part.title for part in cls.parts for p in part.params}
        return {**{p.name: "options of this model family" for p in cls.own_params}, **titles}

    def params_in_effect(self) -> dict[str, Any]:
        """``get_params()`` without the parameters that do nothing with these settings (a dense model's conv
        options, the greedy ones without ``pretrain="greedy"``): what a report lists."""
        unused = {p.name for part in self.parts if not part.active(self) for p in part.params}
        unused = (unused | set(self._unused_params())) - {"arch"}  # which architecture is itself a setting
        return {k: v for k, v in self.get_params(deep=False).items() if k not in unused}

    def _unused_params(self) -> tuple[str, ...]:
        """Parameters of active parts that a family ignores with these settings."""
        return ()

    @classmethod
    def part(cls, kind: type) -> Part:
        """The part of class ``kind`` this estimator is made of (``LookupError`` if it has none)."""
        for part in cls.parts:
            if isinstance(part, kind):
                return part
        raise LookupError(f"{cls.__name__} has no {kind.__name__} part")

    @classmethod
    def declared(cls, name: str) -> Param:
        for p in cls.declared_params():
            if p.name == name:
                return p
        raise KeyError(name)

    # -- hooks a family defines --------------------------------------------------------------------------------
    def _model_config(self, n_features: int) -> dict[str, Any]:
        """Keyword arguments of the model ``_model_name()`` builds (without ``seed``)."""
        raise NotImplementedError(f"{type(self).__name__} does not say how to build its model (_model_config)")

    def _model_name(self) -> str:
        return self.model_name

    def _build_model(self, n_features: int, seed: int) -> AutoencoderModule:
        return build_model(self._model_name(), {**self._model_config(n_features), "seed": seed})

    def _output_activation(self) -> str:
        return output_activation(self)

    def _objective(self, loss: str | None = None, coding_layer: bool = True) -> Objective:
        """The reconstruction ``loss`` (default: the estimator's) plus the parts' penalties (only where the trained
        module's codings are the model's: ``coding_layer``)."""
        penalties = [p for part in self.parts for p in part.penalties(self)] if coding_layer else []
        return Objective(self.loss_ if loss is None else loss, penalties, reduction=self.reduction)

    def _corruption(self) -> Callable | None:
        return next((c for c in (part.corruption(self) for part in self.parts) if c is not None), None)

    def _precision(self) -> Precision:
        return Precision(self.precision)

    def _reconstruction_step(self, module: torch.nn.Module, params, regularized, learning_rate: float, loss: str,
                             coding_layer: bool = True):
        """The step that trains ``module`` (the model, or one greedy layer pair): optimizer over ``params``
        (``regularized`` get L2), the reconstruction ``loss`` plus the parts' penalties (``coding_layer``: the
        module's codings are the model's), the parts' input corruption; the fastest executor that accepts it."""
        params = list(params)
        optimizer = make_optimizer(self.optimizer, params, regularized, learning_rate, self.l2,
                                   clip_grad_norm=self.clip_grad_norm)
        objective = self._objective(loss, coding_layer)
        return reconstruction_step(distributed(module, params), objective, optimizer, corrupt=self._corruption(),
                                   precision=self._precision())

    def _make_step(self, model: AutoencoderModule):
        """The step that trains ``model`` end to end (wrapped for data-parallel training when in a group)."""
        return self._reconstruction_step(model, model.parameters(), model.regularized_weights(), self.learning_rate,
                                         self.loss_)

    def _check_X(self, X: np.ndarray) -> None:
        """Checks on validated training data that depend on the settings (each part's)."""
        for part in self.parts:
            part.check(self, X)

    # -- data --------------------------------------------------------------------------------------------------
    def _validate(self, X: Any, reset: bool) -> Any:
        """``X`` as float32 rows in memory, or a :class:`~aekit.data.sources.RowSource` left on disk to be
        streamed (``in_memory``: :func:`aekit.data.stream.choose` decides and logs)."""
        X = choose(X, getattr(self, "in_memory", "auto"), notice=self._data_notice)
        if is_source(X):
            return self._validate_source(X, reset)
        for part in self.parts:
            X = part.rows(self, X, reset)
        return validate_data(self, X, dtype=np.float32, reset=reset, order="C")

    def _data_notice(self, text: str) -> None:
        import logging

        logging.getLogger("aekit.data").info(text)
        if self.verbose:
            print(text, flush=True)

    def _validate_source(self, source: Any, reset: bool) -> Any:
        """The checks ``validate_data`` makes, on a source's declared shape (its rows stay where they are)."""
        if reset:
            self.n_features_in_ = source.n_features
            if hasattr(self, "feature_names_in_"):
                del self.feature_names_in_
            if getattr(self, "arch", "dense") == "conv":
                from ..nn.conv import image_shape3

                self._fit_image_shape = None if source.image_shape is None else image_shape3(source.image_shape)
        else:
            check_is_fitted(self, "model_")
            if source.n_features != self.n_features_in_:
                raise DataError(f"{source.name} has {source.n_features} features, but {type(self).__name__} is "
                                f"expecting {self.n_features_in_} features as input")
        return source

    def _check_streamable(self, Y: Any) -> None:
        """What training on streamed rows cannot do, refused before anything is trained."""
        why = None
        if Y is not None:
            why = "targets other than the rows themselves (a classifier, labels) are trained from memory"
        elif self.early_stopping:
            why = "early_stopping holds out a validation split in memory"
        elif getattr(self, "binarize_", None) == "static":
            why = "binarize='static' keeps one binarized copy of X in memory; use binarize='dynamic'"
        elif any(type(p).pretrain is not Part.pretrain and p.active(self) for p in self.parts):
            why = "greedy layer-wise pretraining keeps each layer's codings in memory"
        if why:
            raise DataError(f"this data is streamed from disk (it does not fit in memory, or in_memory=False), but "
                            f"{why}; train on a subset in memory, or change that setting")

    def _to_tensor(self, X: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(X, dtype=np.float32)).to(self.device_)

    def _map(self, fn: Callable[[torch.Tensor], torch.Tensor], X: Any, out: np.ndarray | None = None) -> np.ndarray:
        """``fn`` over the rows of ``X`` in eval mode, in bounded chunks; on the CPU a chunk of fewer than
        :data:`MIN_ROWS` rows is padded with zero rows first, because MKL's float32 GEMM takes another path for 1 or
        2 rows and a row's result would then depend on how many rows came with it (measured: every layer shape
        from 3 to 784 wide gives the same bits for 8 or more rows as inside a batch of 4096)."""
        self.model_.eval()
        precision = self._precision()

        def run(xb: torch.Tensor) -> torch.Tensor:  # inference follows the precision (set_params changes it)
            with precision.autocast(xb.device):
                return up(fn(xb))

        min_rows = MIN_ROWS if self.device_.type == "cpu" else 1
        with threads.using(self._threads()):
            if is_source(X):  # streamed: read in windows, converted per chunk, written into ``out`` as it comes
                return map_source(run, X, self.device_, out=out, min_rows=min_rows)
            if out is not None and len(out) != len(X):  # before any work, as map_source checks it
                raise DataError(f"out has {len(out)} rows, but X has {len(X)}; pass an array of {len(X)} rows")
            result = map_batches(run, self._to_tensor(X), min_rows=min_rows).cpu().numpy()
        if out is not None:
            out[...] = result
            return out
        return result

    # -- fitting -----------------------------------------------------------------------------------------------
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X: Any, y: Any = None) -> TorchEstimator:
        """Train on ``X`` (``y`` is ignored). With ``warm_start`` and a fitted model (e.g. from
        :func:`aekit.load`), training continues from its weights, optimizer and RNG states until ``epochs``
        epochs have run in total."""
        resume = bool(self.warm_start) and hasattr(self, "model_")
        X = self._validate(X, reset=not resume)
        rows = X.probe() if is_source(X) else X  # what settings decided from the data look at
        if not resume:
            self._resolve(rows)
        self._check_X(rows)
        if is_source(X):  # before anything changes (a refused fit leaves the estimator as it was)
            self._check_streamable(None)
        with self._writer_lock():
            if not resume:
                self._start(X.shape[1])
            self._precision().check(self.device_)
            with threads.using(self._threads()):
                self._fit_model(X)
        return self

    def _threads(self) -> int:
        """The CPU threads for this estimator's steps (:mod:`aekit.training.threads`), decided once per model."""
        if self.device_.type != "cpu":
            return torch.get_num_threads()
        key = (self.n_jobs, self.batch_size)
        if getattr(self, "_threads_for", (None, None))[0] != key:
            width = getattr(self.model_, "n_inputs", self.n_features_in_)  # a row as the model reads it
            madds = threads.step_madds(self.model_, width, self.batch_size)
            self._threads_for = (key, threads.chosen(self.n_jobs, madds))
        self.n_threads_ = self._threads_for[1]
        return self.n_threads_

    def check_fit(self, X: Any, y: Any = None) -> None:
        """Raise what ``fit(X)`` would raise before training (a parameter, the data against the settings, a model
        too large for this machine), without training or changing this estimator: the command line checks a run
        this way before it writes anything."""
        self._validate_params()
        probe = copy.copy(self)
        probe.verbose = 0  # fit says where the data lives; the check does not say it twice
        resume = bool(self.warm_start) and hasattr(self, "model_")
        rows = probe._validate(X, reset=not resume)
        streamed = is_source(rows)
        rows = rows.probe() if streamed else rows
        if not resume:
            probe._resolve(rows)
        probe._check_X(rows)
        if streamed:
            probe._check_streamable(None)
        if not resume:
            seed = int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))
            check_model_config(probe._model_name(), {**probe._model_config(rows.shape[1]), "seed": seed})
        self._precision().check(self.device_ if hasattr(self, "device_") else resolve_device(self.device))

    @contextlib.contextmanager
    def _writer_lock(self):
        """Hold ``checkpoint_dir``'s writer lock for the whole fit (one writer per run folder; only the main
        process writes). A fit that fails before its first checkpoint leaves no folder it created behind."""
        folder = None if self.checkpoint_dir is None or not is_main_process() else Path(self.checkpoint_dir)
        if folder is None:
            yield
            return
        created = not folder.exists()
        try:
            with folder_lock(folder):
                yield
        except BaseException:
            if created and folder.is_dir() and [p.name for p in folder.iterdir()] == [LOCK_FILE]:
                (folder / LOCK_FILE).unlink(missing_ok=True)
                folder.rmdir()
            raise

    def _resolve(self, X: np.ndarray) -> None:
        """The fitted settings the parts decide from the training data (e.g. ``loss_`` for ``loss="auto"``)."""
        for part in self.parts:
            for name, value in part.resolve(self, X).items():
                setattr(self, name, value)

    def _start(self, n_features: int) -> None:
        """A new model: device, seed, weights, empty history and training state."""
        self.device_ = resolve_device(self.device)
        self._precision().check(self.device_)
        self.seed_ = int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))
        self.model_ = self._build_model(n_features, self.seed_).to(self.device_)
        self.history_: History = []
        self.n_epochs_ = 0
        self._train_state: dict[str, torch.Tensor] = {}
        self._state_meta: dict[str, str] = {}

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
        train_rows, val = perm[n_val:], perm[:n_val]
        return X[train_rows], None if Y is None else Y[train_rows], X[val], None if Y is None else Y[val]

    def _auto_epochs(self) -> int:
        """``epochs="auto"``'s cap: ``max_epochs``, or (None) enough epochs over the training rows for
        :data:`AUTO_STEPS` steps, at least :data:`AUTO_MIN_EPOCHS`."""
        if self.max_epochs is not None:
            return int(self.max_epochs)
        rows = getattr(self, "_rows_per_epoch", 0) or 1
        steps = -(-rows // max(1, min(int(self.batch_size), rows)))
        return int(min(AUTO_MAX_EPOCHS, max(AUTO_MIN_EPOCHS, -(-AUTO_STEPS // steps))))

    def _end_to_end_epochs(self) -> int:
        epochs = self._auto_epochs() if self.epochs == "auto" else self.epochs
        return next((e for e in (part.end_to_end_epochs(self) for part in self.parts) if e is not None), epochs)

    def _record_extra(self) -> dict[str, Any] | None:
        return next((r for r in (part.record_extra(self) for part in self.parts) if r is not None), None)

    def _pretrain(self, X, generator, start, resume_optimizer, on_checkpoint, stop_requested) -> None:
        for part in self.parts:
            part.pretrain(self, X, generator, start, resume_optimizer, on_checkpoint, stop_requested)

    def _fit_model(self, X: np.ndarray, Y: np.ndarray | None = None) -> None:
        """Train on rows ``X`` with targets ``Y`` (None: the rows themselves, as autoencoders do)."""
        streamed = is_source(X)
        if streamed:
            self._check_streamable(Y)
        else:
            for part in self.parts:
                X = part.training_rows(self, X)
        X_train, Y_train, X_val, Y_val = self._split(X, Y)
        self._rows_per_epoch = len(X_train)
        X_t = Stream(X_train, self.device_) if streamed else self._to_tensor(X_train)
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
                position = self._saved_position()
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
            self.executor_ = getattr(step, "executor", "autograd")
            self._notice_slow_step(step, self._to_tensor(X_train.probe(self.batch_size)) if streamed else X_t, Y_t)
            if position is not None:
                resume_optimizer(step.optimizer)
            total = self._end_to_end_epochs()
            # the loop's callbacks, in order: those that change the record or their own state first, then the
            # checkpoint (so it holds what they decided), then the user's (after: they change nothing saved)
            callbacks: list = []
            schedule = parse_schedule(self.lr_schedule)
            scheduler = None
            if schedule.kind != "constant":
                scheduler = LearningRateSchedule(schedule, getattr(step, "optimizers", [step.optimizer]), total)
                callbacks.append(scheduler)
            convergence = None
            if self.epochs == "auto" and total == self._auto_epochs():
                convergence = Convergence(self.tol, self.n_iter_no_change, total)
                callbacks.append(convergence)
            family = self._training_callbacks(model, total)  # e.g. a VAE's KL warm-up
            callbacks.extend(family)
            stopper = None
            if X_v is not None:
                stopper = EarlyStopping(model, patience=self.patience)
                stopper.resume(self.history_, {k[len(BEST):]: v for k, v in state.items() if k.startswith(BEST)})
                callbacks.append(stopper)
            self._stopper = stopper

            def on_checkpoint(position: Position) -> None:
                checkpoint(step, position)

            def on_epoch(record: dict[str, Any], history: History) -> None:
                record["l2"] = l2_penalty(model.regularized_weights(), self.l2)
                self.n_epochs_ = record["epoch"]
                on_checkpoint(Position(record["epoch"], 0, generator.get_state()))

            callbacks.append(EpochCallback(on_epoch))
            users = UserCallbacks(self, self.callbacks)
            callbacks.append(users)
            users.begin()
            try:
                train(step, X_t, Y_t, epochs=total, batch_size=self.batch_size, generator=generator,
                      X_val=X_v, Y_val=Y_v, history=self.history_, start=start, callbacks=callbacks,
                      checkpoint_every=self.checkpoint_every, on_checkpoint=on_checkpoint,
                      stop_requested=stop_requested, progress=bool(self.verbose), description=type(self).__name__,
                      record_extra=self._record_extra())
            finally:
                for callback in ([scheduler] if scheduler is not None else []) + family:
                    callback.restore()
                self._stopper = None
            self.stopped_ = self._stopped_text(convergence, stopper, total)
            if stopper is not None and self.restore_best_weights:
                stopper.restore()
            users.end()
        model.eval()

    def _training_callbacks(self, model: torch.nn.Module, total: int) -> list:
        """Loop callbacks a family adds to end-to-end training (each with ``restore()``, called at the end)."""
        return []

    def _stopped_text(self, convergence, stopper, total: int) -> str:
        """Why training ended, in words (``stopped_``)."""
        if convergence is not None and convergence.reason:
            return convergence.reason
        if stopper is not None and stopper.wait >= stopper.patience:
            kept = (f"weights of epoch {stopper.best_epoch} restored" if self.restore_best_weights
                    else "last weights kept")
            return (f"early stopping: val_loss did not improve for {stopper.patience} epochs (stopped after epoch "
                    f"{self.n_epochs_}; {kept})")
        return f"all {total} epochs ran"

    def _notice_slow_step(self, step, X: torch.Tensor, Y: torch.Tensor | None) -> None:
        """Say once if this configuration's step costs more than ``NOTICE_RATIO`` times the plain model's (a
        penalty on autograd, the exact Jacobian, ...), with the epoch time it implies (:mod:`aekit.training.cost`)."""
        if not hasattr(self, "loss_") or world()[1] > 1 or not len(X):
            return
        objective = getattr(step, "objective", None)
        if objective is None or (not objective.penalties and getattr(step, "corrupt", None) is None):
            return  # the plain configuration itself
        plain = reconstruction_step(self.model_, Objective(self.loss_, [], reduction=self.reduction),
                                    make_optimizer("adam", self.model_.parameters(), [], 1e-3))  # never stepped
        batch = min(len(X), self.batch_size)
        result = relative_cost(step, plain, self.model_, X[:batch], None if Y is None else Y[:batch])
        if result is not None and result[1] > NOTICE_RATIO:
            parts = [f"{p.name} ({p.resolved(self.model_)})" if hasattr(p, "resolved") else p.name
                     for p in objective.penalties]
            if getattr(step, "corrupt", None) is not None:
                parts.append("input noise")
            notice(f"{', '.join(parts)}; {getattr(step, 'executor', 'autograd')}", result[0], result[1],
                   -(-len(X) // batch))

    def _saved_position(self) -> Position:
        """Where the saved training state stands (see :class:`~aekit.training.loop.Position`)."""
        state = self._train_state
        try:
            return Position(
                epoch=int(state.get("position.epoch", torch.tensor(self.n_epochs_))),
                step=int(state.get("position.step", torch.tensor(0))), shuffle_state=state["rng.shuffle"],
                totals={k[len("position.totals."):]: float(v) for k, v in state.items()
                        if k.startswith("position.totals.")},
                phase=int(state.get("position.phase", torch.tensor(0))))
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            raise CheckpointError(f"the checkpoint's training state is damaged ({exc!r}); resume from an intact "
                                  "copy or train again") from None

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
        stopper = getattr(self, "_stopper", None)
        if stopper is not None and stopper.best_state is not None:  # early stopping's best weights, for resume
            tensors.update({BEST + k: v for k, v in stopper.best_state.items()})
        self._train_state, self._state_meta = tensors, {"param_groups": groups}

    # -- persistence -------------------------------------------------------------------------------------------
    def _config(self) -> dict[str, Any]:
        check_is_fitted(self, "model_")
        return {
            "aekit_version": __version__,
            "estimator": type(self).__name__,
            "params": {k: None if k == "callbacks" else _jsonable(v)  # code, not settings: never saved
                       for k, v in self.get_params(deep=False).items()},
            "model": {"name": self.model_.registry_name, "config": self.model_.config},
            "fitted": {"n_features_in_": int(self.n_features_in_), "n_epochs_": int(self.n_epochs_),
                       "seed_": int(self.seed_),
                       **{n: getattr(self, n) for part in self.parts for n in part.fitted if hasattr(self, n)}},
            "extra": getattr(self, "checkpoint_extra_", {}),
        }

    def _checkpoint_state(self) -> dict[str, torch.Tensor]:
        """The tensors saved beside the weights: the training state (and what a family adds, e.g. an index)."""
        return self._train_state

    def save(self, path: str | os.PathLike) -> Path:
        """Write the fitted estimator to a checkpoint folder (safetensors + JSON, atomic, no pickle), and its
        history as ``metrics.csv`` beside it."""
        from ..runs import write_metrics

        out = save_checkpoint(path, self._config(), self.model_.state_dict(), self._checkpoint_state(),
                              self._state_meta, self.history_)
        write_metrics(out, self.history_)
        return out

    @classmethod
    def _from_checkpoint(cls, ckpt: Checkpoint, device: str | None = None) -> TorchEstimator:
        cfg = ckpt.config
        try:
            params = dict(cfg["params"])
            if device is not None:
                params["device"] = device
            known = set(cls._get_param_names())
            est = cls(**_from_json({k: v for k, v in params.items() if k in known}))
            est.device_ = resolve_device(est.device)
            est.model_ = build_model(cfg["model"]["name"], cfg["model"]["config"])
            fitted = cfg["fitted"]
            est.n_features_in_ = int(fitted["n_features_in_"])
            est.n_epochs_ = int(fitted["n_epochs_"])
            est.seed_ = int(fitted["seed_"])
            for part in est.parts:
                part.restore(est, fitted, params)
        except (KeyError, TypeError, AttributeError) as exc:
            raise CheckpointError(f"checkpoint config is missing or has a bad entry: {exc!r}") from None
        try:
            est.model_.load_state_dict(ckpt.weights)
        except RuntimeError as exc:
            raise CheckpointError(f"checkpoint weights do not fit the model its config describes: {exc}") from None
        est.model_.to(est.device_).eval()
        est.history_ = ckpt.history
        est._train_state, est._state_meta = dict(ckpt.state), dict(ckpt.state_meta)
        est.checkpoint_extra_ = cfg.get("extra", {})
        return est


def load(path: str | os.PathLike, device: str | None = None) -> TorchEstimator:
    """Rebuild a fitted estimator from a checkpoint folder written by ``save`` or during ``fit``.

    Only JSON and safetensors are read; checksums are verified; nothing is unpickled.
    """
    ckpt = load_checkpoint(path)
    name = ckpt.config.get("estimator")
    if not isinstance(name, str) or name not in ESTIMATORS:
        raise CheckpointError(f"checkpoint {path} names an unknown estimator {name!r}; known: "
                              f"{', '.join(ESTIMATORS.available())}")
    return ESTIMATORS.get(name)._from_checkpoint(ckpt, device=device)


class AutoencoderEstimator(ClassNamePrefixFeaturesOutMixin, TransformerMixin, TorchEstimator):
    """The scikit-learn API every autoencoder shares: ``transform`` (codings), ``inverse_transform`` (decode),
    ``predict`` (reconstruct), ``reconstruction_error`` / ``score_samples`` / ``score``."""

    @property
    def _n_features_out(self) -> int:
        return int(self.model_.n_codings)

    def transform(self, X: Any, out: np.ndarray | None = None) -> np.ndarray:
        """Codings of ``X``: (n_samples, coding size). ``out``: an array to write them into (e.g.
        ``np.lib.format.open_memmap``, for a streamed ``X`` whose codings do not fit in memory)."""
        check_is_fitted(self, "model_")
        return self._map(self.model_.encode, self._validate(X, reset=False), out=out)

    def inverse_transform(self, X: Any) -> np.ndarray:
        """Decode codings (n_samples, coding size) to reconstructions (n_samples, n_features)."""
        check_is_fitted(self, "model_")
        codings = check_array(X, dtype=np.float32, order="C")
        if codings.shape[1] != self._n_features_out:
            raise DataError(f"codings have {codings.shape[1]} columns, but the coding layer has "
                            f"{self._n_features_out} units")
        return self._map(lambda z: self.model_.output(self.model_.decode(self.model_.constrain(z))), codings)

    def predict(self, X: Any, out: np.ndarray | None = None) -> np.ndarray:
        """Reconstructions of ``X``, in its shape (images give images); flat rows for a streamed ``X``. ``out``: an
        array of flat rows to write them into (e.g. ``np.lib.format.open_memmap``)."""
        check_is_fitted(self, "model_")
        result = self._map(self.model_.reconstruct, self._validate(X, reset=False), out=out)
        return result.reshape(X.shape) if out is None and getattr(X, "ndim", 2) in (3, 4) else result

    def reconstruction_error(self, X: Any) -> np.ndarray:
        """Per-row mean squared reconstruction error (higher = more anomalous)."""
        from ..losses.reconstruction import mse

        check_is_fitted(self, "model_")
        X = self._validate(X, reset=False)
        model = self.model_

        def row_error(xb: torch.Tensor) -> torch.Tensor:
            target = model.target_of(xb)
            return mse(AEOutput(model.reconstruction_logits(xb), target, model.output_activation), target, "none")

        return self._map(row_error, X)

    def score_samples(self, X: Any) -> np.ndarray:
        """Negative per-row reconstruction MSE: scikit-learn's convention, the lower the more abnormal."""
        return -self.reconstruction_error(X)

    def score(self, X: Any, y: Any = None) -> float:
        """Negative mean squared reconstruction error over all elements (higher is better)."""
        return float(self.score_samples(X).mean())

    def export_module(self, part: str = "encoder") -> torch.nn.Module:
        """``part`` ("encoder", "decoder" or "model") of the fitted model as a plain ``torch.nn.Module`` (a copy,
        in eval mode, on the CPU); see :mod:`aekit.export` for TorchScript and ONNX files."""
        from ..export import export_module

        return export_module(self, part)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float32"]
        return tags


class Sampling:
    """``sample(n)``: codings drawn from the model's prior (its ``sample_codings``), or from a Gaussian mixture
    fitted on the training codings (:meth:`fit_sampler`, pythae's ``GaussianMixtureSampler``), decoded."""

    def sample(self, n: int, random_state: Any = None) -> np.ndarray:
        """``n`` new samples (n, n_features): codings drawn from the prior (or the fitted mixture, see
        :meth:`fit_sampler`), decoded; the decoder's means (pixel probabilities for a Bernoulli decoder)."""
        check_is_fitted(self, "model_")
        if int(n) < 1:
            raise DataError(f"n must be >= 1 samples, got {n}")
        z = self._draw_codings(int(n), generator_from(random_state))
        return self._map(lambda c: self.model_.output(self.model_.decode(c)), z.cpu().numpy())

    def _draw_codings(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """(n, latent) codings on the CPU: from the fitted mixture if there is one, else the model's prior."""
        mixture = getattr(self, "sampler_", None)
        if mixture is None:
            return self.model_.sample_codings(n, generator)
        weights, means, cholesky = (mixture[k] for k in ("weights", "means", "cholesky"))
        component = torch.multinomial(weights, n, replacement=True, generator=generator)
        eps = torch.randn(n, means.shape[1], 1, dtype=torch.float64, generator=generator)
        return (means[component] + (cholesky[component] @ eps)[..., 0]).float()

    def fit_sampler(self, X: Any, y: Any = None, n_components: int = 10, random_state: Any = 0) -> Any:
        """Fit a Gaussian mixture (``n_components`` full-covariance components, scikit-learn's
        :class:`~sklearn.mixture.GaussianMixture`) on the codings of ``X`` (``transform``: posterior means), so that
        :meth:`sample` draws codings from it instead of the prior: the ex-post density estimation of Ghosh et al.
        2020 and pythae's GMM sampler, which samples where the codings of real data lie. Saved with the model;
        training again drops it. Returns self."""
        from sklearn.mixture import GaussianMixture

        check_is_fitted(self, "model_")
        Z = self.transform(X) if y is None else self.transform(X, y)
        if len(Z) < int(n_components):
            raise DataError(f"a mixture of {n_components} components needs at least that many rows, got {len(Z)}")
        gmm = GaussianMixture(int(n_components), covariance_type="full", random_state=random_state).fit(Z)
        self.sampler_ = {"weights": torch.from_numpy(gmm.weights_).double(),
                         "means": torch.from_numpy(gmm.means_).double(),
                         "cholesky": torch.linalg.cholesky(torch.from_numpy(gmm.covariances_).double())}
        return self

    def _checkpoint_state(self) -> dict[str, torch.Tensor]:
        state = dict(super()._checkpoint_state())
        for name, tensor in (getattr(self, "sampler_", None) or {}).items():
            state[f"{_SAMPLER}.{name}"] = tensor
        return state

    @classmethod
    def _from_checkpoint(cls, ckpt: Checkpoint, device: str | None = None) -> Any:
        est = super()._from_checkpoint(ckpt, device)
        saved = {k.split(".", 1)[1]: est._train_state.pop(k) for k in list(est._train_state)
                 if k.startswith(_SAMPLER + ".")}
        if saved:
            if set(saved) != {"weights", "means", "cholesky"}:
                raise CheckpointError(f"checkpoint holds an incomplete sampler: {sorted(saved)}")
            est.sampler_ = saved
        return est

    def fit(self, X: Any, y: Any = None) -> Any:
        self.sampler_ = None  # trained (again): a mixture fitted before no longer describes the codings
        return super().fit(X, y)


_SAMPLER = "sampler"  # the mixture's tensors travel in the training state under sampler.*
