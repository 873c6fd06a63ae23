"""Learning-rate schedules, by name, and convergence-based stopping: what the loop does at each epoch's start and
end besides training. Each is a pure function of the epoch and the history so far, so a resumed run (from any
batch) recomputes exactly the rates and decisions of the run it continues: nothing extra to checkpoint.

``lr_schedule`` texts (the factor multiplies each group's base learning rate, once per epoch):

- ``"constant"``: 1;
- ``"step:E:G"``: times ``G`` every ``E`` epochs (``"step"``: ``E`` = a third of the epochs, ``G`` = 0.1);
- ``"cosine"`` / ``"cosine:W"``: ``W`` warm-up epochs rising linearly to 1 (default 0), then half a cosine to 0
  at the last epoch (Loshchilov & Hutter 2017, without restarts);
- ``"onecycle"`` / ``"onecycle:P:M"``: up from 1/``M`` to 1 over the first ``P`` of the epochs (default 0.3,
  ``M`` = 25), then a cosine down to 1/(``M`` * 1e4) (Smith & Topin 2018; torch's ``OneCycleLR`` defaults, per
  epoch);
- ``"plateau"`` / ``"plateau:N:G"``: times ``G`` (default 0.5) whenever the monitored loss (``val_loss`` with
  early stopping, else ``loss``) has not improved on its best for ``N`` epochs (default 5; PyTorch's
  ``ReduceLROnPlateau`` with ``threshold=0``), down to 1e-4 of the base rate at most.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError

History = list[dict[str, Any]]
KINDS = ("constant", "step", "cosine", "onecycle", "plateau")
PLATEAU_FLOOR = 1e-4  # the plateau schedule never goes below this share of the base rate


def monitored(record: dict[str, Any]) -> float:
    """The loss an epoch is judged by: the validation loss when there is one, else the training loss."""
    return float(record.get("val_loss", record["loss"]))


class Progress:
    """The best monitored loss so far and the epochs since it last improved (by more than ``tol * |best|`` +
    ``min_delta``), kept up to date from a growing history: :meth:`follow` reads only the records it has not
    seen, so a callback that follows the history every epoch (and, on resume, rebuilds itself from it) does
    linear work, not quadratic. Early stopping, ``epochs="auto"`` and the plateau schedule judge epochs by it."""

    def __init__(self, tol: float = 0.0, min_delta: float = 0.0) -> None:
        self.tol, self.min_delta = float(tol), float(min_delta)
        self.best, self.best_epoch, self.since, self.seen = math.inf, 0, 0, 0

    def update(self, value: float, epoch: int = 0) -> bool:
        """Take one epoch's loss; True if it is the new best."""
        bar = self.best if self.best == math.inf else self.best - self.tol * abs(self.best) - self.min_delta
        if value < bar or self.best == math.inf:
            self.best, self.best_epoch, self.since = value, int(epoch), 0
            return True
        self.since += 1
        return False

    def follow(self, history: Sequence[dict[str, Any]], upto: int | None = None) -> None:
        """Take the records ``history[seen:upto]`` (the epochs not taken yet)."""
        end = len(history) if upto is None else upto
        for record in history[self.seen:end]:
            self.update(monitored(record), record.get("epoch", 0))
        self.seen = max(self.seen, end)


class _Plateau:
    """The plateau schedule's state: the factor after the epochs it has taken (one :class:`Progress`)."""

    def __init__(self, patience: float, gamma: float) -> None:
        self.patience, self.gamma = int(patience), float(gamma)
        self.progress, self.value = Progress(), 1.0

    def factor(self, epoch: int, history: Sequence[dict[str, Any]]) -> float:
        while self.progress.seen < epoch:  # one record at a time: a reduction restarts the count
            self.progress.follow(history, self.progress.seen + 1)
            if self.progress.since > self.patience:
                self.value, self.progress.since = max(self.value * self.gamma, PLATEAU_FLOOR), 0
        return self.value


@dataclass(frozen=True)
class Schedule:
    """A parsed ``lr_schedule``: :meth:`factor` of the base learning rate for an epoch."""

    kind: str
    args: tuple[float, ...] = ()

    def factor(self, epoch: int, total: int, history: Sequence[dict[str, Any]],
               plateau: _Plateau | None = None) -> float:
        """The factor for epoch ``epoch`` (0-based) of ``total``, given the records of the epochs before it;
        ``plateau``: the state of earlier calls (epochs in order), from :meth:`state`, so that the plateau
        schedule reads each record once."""
        total = max(int(total), 1)
        if self.kind == "constant":
            return 1.0
        if self.kind == "step":
            every, gamma = self.args or (max(1, total // 3), 0.1)
            return float(gamma) ** (epoch // max(1, int(every)))
        if self.kind == "cosine":
            warmup = int(self.args[0]) if self.args else 0
            if epoch < warmup:
                return (epoch + 1) / (warmup + 1)
            span = max(1, total - warmup)
            return 0.5 * (1 + math.cos(math.pi * min(epoch - warmup, span) / span))
        if self.kind == "onecycle":
            pct, div = self.args or (0.3, 25.0)
            rise = max(1, int(round(pct * total)))
            if epoch < rise:
                return 1 / div + (1 - 1 / div) * epoch / rise
            span = max(1, total - 1 - rise)
            low = 1 / (div * 1e4)
            return low + (1 - low) * 0.5 * (1 + math.cos(math.pi * min(epoch - rise, span) / span))
        return (plateau or self.state()).factor(epoch, history)

    def state(self) -> _Plateau | None:
        """What :meth:`factor` carries between epochs (the plateau schedule's), None for the others."""
        if self.kind != "plateau":
            return None
        return _Plateau(*(self.args or (5, 0.5)))


def parse_schedule(text: str) -> Schedule:
    """``"cosine:5"`` -> Schedule("cosine", (5.0,)); a ``ConfigError`` naming the forms otherwise."""
    forms = "constant, step[:EVERY:GAMMA], cosine[:WARMUP], onecycle[:PCT:DIV], plateau[:PATIENCE:GAMMA]"
    kind, *rest = str(text).split(":")
    if kind not in KINDS:
        raise ConfigError(f"unknown lr_schedule {text!r}; use one of {forms}")
    try:
        args = tuple(float(a) for a in rest)
    except ValueError:
        raise ConfigError(f"lr_schedule {text!r}: the values after the name must be numbers ({forms})") from None
    arity = {"constant": (0,), "step": (0, 2), "cosine": (0, 1), "onecycle": (0, 2), "plateau": (0, 2)}[kind]
    if len(args) not in arity:
        raise ConfigError(f"lr_schedule {text!r}: {kind} takes {' or '.join(map(str, arity))} values ({forms})")
    bad = {"step": lambda a: a[0] < 1 or not 0 < a[1] <= 1, "cosine": lambda a: a[0] < 0,
           "onecycle": lambda a: not 0 < a[0] < 1 or a[1] < 1, "plateau": lambda a: a[0] < 0 or not 0 < a[1] < 1}
    if args and kind in bad and bad[kind](args):
        raise ConfigError(f"lr_schedule {text!r}: out of range (step: EVERY >= 1, 0 < GAMMA <= 1; cosine: WARMUP "
                          ">= 0; onecycle: 0 < PCT < 1, DIV >= 1; plateau: PATIENCE >= 0, 0 < GAMMA < 1)")
    return Schedule(kind, args)


class LearningRateSchedule:
    """A loop callback: at each epoch's start, every optimizer group's rate = its base rate x the schedule's
    factor; each epoch's record gets ``lr`` (the first group's)."""

    def __init__(self, schedule: Schedule, optimizers: Sequence[Any], total: int) -> None:
        self.schedule, self.total = schedule, total
        self.groups = [(g, float(g["lr"])) for opt in optimizers for g in opt.param_groups]
        self.lr = self.groups[0][1] if self.groups else 0.0
        self.plateau = schedule.state()

    def on_epoch_begin(self, epoch: int, history: History) -> None:
        factor = self.schedule.factor(epoch, self.total, history, self.plateau)
        for group, base in self.groups:
            group["lr"] = base * factor
        self.lr = self.groups[0][0]["lr"] if self.groups else 0.0

    def on_epoch_end(self, record: dict[str, Any], history: History) -> bool:
        record["lr"] = self.lr
        return False

    def restore(self) -> None:
        """The base rates back (the optimizer outlives the fit: warm starts begin from them)."""
        for group, base in self.groups:
            group["lr"] = base


class Convergence:
    """``epochs="auto"``: stop when the monitored loss has not improved on its best by ``tol`` (relative: by
    ``tol * |best|``, so one setting serves an MSE of 0.006 and an ELBO of 100 nats) for ``n_iter_no_change``
    epochs (scikit-learn's MLP rule, which takes ``tol`` absolute); ``reason`` says why training ended."""

    def __init__(self, tol: float, n_iter_no_change: int, max_epochs: int) -> None:
        self.tol, self.n, self.max_epochs = float(tol), int(n_iter_no_change), int(max_epochs)
        self.progress = Progress(tol=self.tol)
        self.reason = ""

    def converged(self, history: Sequence[dict[str, Any]]) -> bool:
        self.progress.follow(history)
        return self.progress.since >= self.n

    def on_epoch_end(self, record: dict[str, Any], history: History) -> bool:
        if self.converged(history):
            self.reason = (f"converged: the loss did not improve by tol={self.tol:g} (relative) for {self.n} epochs "
                           f"(stopped after epoch {record['epoch']})")
            return True
        if record["epoch"] >= self.max_epochs:
            self.reason = (f"not converged: the cap of {self.max_epochs} epochs reached while the loss still "
                           f"improved by more than tol={self.tol:g} (relative); raise max_epochs or tol")
        return False


class KLWarmup:
    """KL warm-up: at each epoch's start the model's ``kl_weight`` = ``min(1, (epoch + 1) / (epochs + 1))``
    (a pure function of the epoch, so resumes match); the record gets ``kl_weight``; :meth:`restore` sets 1."""

    def __init__(self, model: Any, epochs: int) -> None:
        self.model, self.epochs = model, int(epochs)

    def weight(self, epoch: int) -> float:
        return min(1.0, (epoch + 1) / (self.epochs + 1))

    def on_epoch_begin(self, epoch: int, history: History) -> None:
        self.model.kl_weight = self.weight(epoch)

    def on_epoch_end(self, record: dict[str, Any], history: History) -> bool:
        record["kl_weight"] = float(self.model.kl_weight)
        return False

    def restore(self) -> None:
        self.model.kl_weight = 1.0
