"""Steps: what one batch of training does. The loop calls ``train_batch`` and ``eval_batch`` and knows nothing
else about the model; a family with an unusual update (adversarial) brings its own step. The hand-written steps
that run a model's spec without autograd are in :mod:`aekit.training.executors`. On CUDA a step's whole update
is captured once as a CUDA graph and replayed (:class:`CapturedStep`)."""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Callable

import torch

from ..losses.objective import Objective
from ..models.base import AutoencoderModule
from .distributed import unwrap, world
from .optim import Adam, clip_gradients, optimizer_step
from .precision import FP32, Precision


class NonFiniteLoss(FloatingPointError):
    """Raised by a step before it applies an update computed from a NaN/inf loss."""


def apply_update(optimizer: torch.optim.Optimizer, terms: dict[str, torch.Tensor],
                 scaler: torch.amp.GradScaler | None = None) -> dict[str, torch.Tensor]:
    """One optimizer update from ``terms["loss"]``, refused (:class:`NonFiniteLoss`) before it is applied if the
    loss is NaN/inf; returns the terms detached. With a ``scaler`` (16-mixed) the loss is scaled for the backward
    and the update skipped where the scaled gradients overflowed, as torch's GradScaler does."""
    loss = terms["loss"]
    value = float(loss.detach())  # one host read per step (the loop's divergence check needs it anyway)
    if not math.isfinite(value):
        raise NonFiniteLoss(f"loss is {value}")
    optimizer.zero_grad(set_to_none=True)
    if scaler is None:
        loss.backward()
        optimizer_step(optimizer)
    else:
        scaler.scale(loss).backward()
        if getattr(optimizer, "clip_grad_norm", None):
            scaler.unscale_(optimizer)  # clip the true gradients, as torch's AMP recipe does
            clip_gradients(optimizer)
        scaler.step(optimizer)
        scaler.update()
    return {k: v.detach() for k, v in terms.items()}


def cuda_graphs_enabled() -> bool:
    """Whether steps on CUDA are captured as CUDA graphs (default yes; ``AEKIT_CUDA_GRAPHS=0`` turns it off)."""
    return os.environ.get("AEKIT_CUDA_GRAPHS", "1") != "0"


class ReconstructionStep:
    """Forward (optionally on a corrupted copy of the inputs), objective, backward, optimizer step.

    On CUDA, in a single process, once the optimizer has its state (after the first eager steps), the whole
    update is captured as one CUDA graph and replayed (:class:`CapturedStep`): at autoencoder sizes a step is
    mostly kernel launches otherwise. ``cuda_graphs=False`` (default: :func:`cuda_graphs_enabled`) keeps every
    step eager."""

    #: the gradients are written into the same ``.grad`` tensors every step (DenseChainStep); autograd's are new
    writes_grads_in_place = False
    executor = "autograd"

    def __init__(
        self,
        model: AutoencoderModule,
        objective: Objective,
        optimizer: torch.optim.Optimizer,
        corrupt: Callable[[torch.Tensor], torch.Tensor] | None = None,
        cuda_graphs: bool | None = None,
        precision: Precision = FP32,
    ) -> None:
        self.model, self.objective, self.optimizer, self.corrupt = model, objective, optimizer, corrupt
        self.precision = precision
        # float16 needs loss scaling, which a captured graph does not do: 16-mixed steps stay eager
        self.cuda_graphs = (cuda_graphs_enabled() if cuda_graphs is None else cuda_graphs) and not precision.scaled
        self.scaler = torch.amp.GradScaler("cuda") if precision.scaled else None
        self.captured: CapturedStep | None = None

    def terms(self, seen: torch.Tensor, targets: torch.Tensor) -> dict[str, torch.Tensor]:
        """The loss terms of a batch: the model's forward under the precision's autocast, the objective on its
        float32 outputs."""
        with self.precision.autocast(seen.device):
            output = self.model(seen)
        return self.objective(output.float32(), targets, seen, unwrap(self.model))

    def after_update(self) -> None:
        """Work after each optimizer update (a lower-precision copy of the weights to refresh)."""

    def train_batch(self, inputs: torch.Tensor, targets: torch.Tensor) -> dict[str, torch.Tensor]:
        seen = self.corrupt(inputs) if self.corrupt is not None else inputs
        captured = self._captured(seen, targets) if seen.is_cuda and self.cuda_graphs else None
        if captured is not None:
            return captured(seen, targets)
        return self.eager_update(seen, targets)

    def eager_update(self, seen: torch.Tensor, targets: torch.Tensor) -> dict[str, torch.Tensor]:
        """One update without a graph, refused (:class:`NonFiniteLoss`) before it is applied if the loss is NaN/inf."""
        return apply_update(self.optimizer, self.terms(seen, targets), self.scaler)

    def forward_backward(self, seen: torch.Tensor, targets: torch.Tensor) -> dict[str, torch.Tensor]:
        """The batch's terms with every gradient written, and no host synchronisation (what a graph captures)."""
        self.optimizer.zero_grad(set_to_none=True)
        terms = self.terms(seen, targets)
        terms["loss"].backward()
        return {k: v.detach() for k, v in terms.items()}

    def _captured(self, seen: torch.Tensor, targets: torch.Tensor) -> CapturedStep | None:
        captured = self.captured
        if captured is None or not captured.fits(seen, targets):
            captured = CapturedStep.capture(self, seen, targets)
            self.captured = captured or self.captured  # a short last batch keeps the graph for the next epoch
        return captured

    @torch.no_grad()
    def eval_batch(self, inputs: torch.Tensor, targets: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.terms(inputs, targets)


class CapturedStep:
    """A step's whole update (its :meth:`~ReconstructionStep.forward_backward`, then fused Adam) captured as one
    CUDA graph on static buffers: a step copies its batch in, replays the graph and reads the loss. A NaN/inf
    loss is refused on the device (``found_inf`` makes the Adam kernel a no-op), so the update is still never
    applied, and reading the loss afterwards is the step's only host synchronisation. Random draws inside the
    model (a VAE's sampling, dynamic binarization) come from torch's default CUDA generator, which graphs
    advance at each replay; corruption noise is drawn before, outside the graph.

    Valid while the batch shape, the optimizer's parameters, state and learning rates (and, for a step that
    writes gradients in place, its gradient tensors) stay the same objects (:meth:`fits`); otherwise the step is
    captured again (a changed learning rate) or run eagerly (the last, shorter batch of an epoch). Only for
    :class:`~aekit.training.optim.Adam` on its fused path, in one process, outside anomaly mode; a capture that
    fails warns once and leaves the step eager."""

    def __init__(self, step: ReconstructionStep, seen: torch.Tensor, targets: torch.Tensor) -> None:
        self.optimizer = optimizer = step.optimizer
        self.plan = optimizer._plan
        self.lrs = [group["lr"] for group in optimizer.param_groups]
        self.params = [p for group in optimizer.param_groups for p in group["params"]]
        self.check_grads = step.writes_grads_in_place
        self.shape, self.self_target = seen.shape, targets is seen
        self.seen = seen.clone()
        self.targets = self.seen if self.self_target else targets.clone()
        self.graph = torch.cuda.CUDAGraph()
        torch.cuda.synchronize(seen.device)
        with torch.cuda.device(seen.device), torch.cuda.graph(self.graph):
            terms = step.forward_backward(self.seen, self.targets)
            found_inf = torch.isfinite(terms["loss"]).logical_not().float()
            applied = optimizer.fused_step(found_inf=found_inf)
            step.after_update()
        if not applied:  # the lean Adam path does not apply after all: this graph would skip the update
            raise RuntimeError("the optimizer step could not be captured")
        self.terms = terms
        self.grads = [p.grad for p in self.params]  # autograd's were allocated in the graph's memory: kept alive

    @classmethod
    def capture(cls, step: ReconstructionStep, seen: torch.Tensor, targets: torch.Tensor) -> CapturedStep | None:
        """The captured step, or None where it cannot be (yet): not Adam's lean path, no optimizer state yet (the
        first steps are eager), several processes, anomaly mode, gradient clipping (eager: the graph holds no
        clip), or a short batch (the epoch's last)."""
        optimizer = step.optimizer
        if (not isinstance(optimizer, Adam) or optimizer._plan is None or world()[1] > 1
                or torch.is_anomaly_enabled() or getattr(optimizer, "clip_grad_norm", None)
                or (step.writes_grads_in_place
                    and any(p.grad is None for g in optimizer.param_groups for p in g["params"]))
                or (step.captured is not None and len(seen) < step.captured.shape[0])):
            return None
        try:
            return cls(step, seen, targets)
        except RuntimeError as exc:  # keep training, eagerly, rather than fail on an optimisation
            warnings.warn(f"aekit: could not capture the training step as a CUDA graph ({exc}); training "
                          "continues without (AEKIT_CUDA_GRAPHS=0 skips the attempt)", RuntimeWarning, stacklevel=4)
            step.cuda_graphs = False
            return None

    def fits(self, seen: torch.Tensor, targets: torch.Tensor) -> bool:
        optimizer = self.optimizer
        return (seen.shape == self.shape and (targets is seen) == self.self_target and optimizer._plan is self.plan
                and [group["lr"] for group in optimizer.param_groups] == self.lrs
                and (not self.check_grads or all(p.grad is g for p, g in zip(self.params, self.grads))))

    def __call__(self, seen: torch.Tensor, targets: torch.Tensor) -> dict[str, torch.Tensor]:
        self.seen.copy_(seen)
        if not self.self_target:
            self.targets.copy_(targets)
        self.graph.replay()
        terms = {k: v.clone() for k, v in self.terms.items()}  # the graph overwrites its outputs at the next replay
        value = float(terms["loss"])
        if not math.isfinite(value):
            raise NonFiniteLoss(f"loss is {value}")
        return terms
