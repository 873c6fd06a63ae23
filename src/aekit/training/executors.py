"""Fast executors: other ways to *run* a model's one definition, chosen only where they are known to compute the
same thing as autograd.

A model describes its math once (:mod:`aekit.nn.chain`: the layer spec its own ``encode``/``decode`` run under
autograd). An executor here runs the same spec with gradients written by hand, and declares what it supports as
an allow-list: the exact model classes (a subclass is never taken: it may compute something else), the
reconstruction losses, the penalty classes with a hand-written form, the activations with one (the spec's).
:func:`reconstruction_step` gives a configuration to the first executor that accepts it and to autograd
otherwise, so a new activation, penalty or model trains correctly at once, only without the speed-up. It fails
closed: nothing is taken by exclusion.

Each executor also says how to build small examples of every configuration it accepts
(:meth:`Executor.examples`), so that tests/test_common.py checks each against autograd in float64.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from ..losses.objective import Objective
from ..losses.penalties import Contractive, KLSparsity, L1Codings
from ..losses.reconstruction import LOSSES_WITH_GRAD
from ..nn.chain import DenseChain, VariationalChain, shadows
from ..nn.layers import ACTIVATIONS
from .distributed import unwrap, world
from .optim import optimizer_step
from .precision import FP32, Precision
from .steps import NonFiniteLoss, ReconstructionStep


@dataclass
class Example:
    """A configuration an executor accepts, small and in float64: ``module``, its ``objective``, a batch ``x``."""

    name: str
    module: torch.nn.Module
    objective: Objective
    x: torch.Tensor
    covers: dict[str, Any] = field(default_factory=dict)  # model class, activation, loss, penalty it exercises


@dataclass
class Allowed:
    """One model class on an executor's allow-list: ``when(module)`` adds a condition (None: always);
    ``examples(activations)`` yields small float64 modules of that class using those activations."""

    cls: type
    when: Callable[[torch.nn.Module], bool] | None
    examples: Callable[[Sequence[str]], Iterator[tuple[str, torch.nn.Module]]]


class Executor:
    """Base: the allow-list (``allowed`` models, ``losses``, ``penalties``, ``reduction``) and the acceptance test;
    subclasses give the spec they read (:meth:`spec`) and their step class."""

    name = "executor"
    losses: tuple[str, ...] = tuple(LOSSES_WITH_GRAD)
    penalties: tuple[type, ...] = ()
    reduction = "mean"
    corruption = True  # whether input corruption (drawn before the step) is allowed

    def __init__(self) -> None:
        self.allowed: dict[type, Allowed] = {}

    def allow(self, when: Callable[[torch.nn.Module], bool] | None = None,
              examples: Callable[[Sequence[str]], Iterator[tuple[str, torch.nn.Module]]] | None = None):
        """Class decorator: put exactly this class (not its subclasses) on the allow-list."""

        def decorator(cls: type) -> type:
            self.allowed[cls] = Allowed(cls, when, examples or (lambda activations: iter(())))
            return cls

        return decorator

    def spec(self, module: torch.nn.Module) -> Any:
        raise NotImplementedError

    precisions: tuple[str, ...] = ("32-true", "bf16-mixed")

    def refusal(self, module: torch.nn.Module, objective: Objective, corrupt: Any,
                precision: Precision = FP32) -> str | None:
        """Why this executor does not take the configuration (None: it does). The checks read only allow-lists."""
        if precision.name not in self.precisions:
            return f"precision {precision.name!r} (float16 needs loss scaling: autograd's GradScaler)"
        if world()[1] != 1:
            return "data-parallel training (several processes)"
        if torch.is_anomaly_enabled():
            return "autograd anomaly detection is on"
        entry = self.allowed.get(type(module))
        if entry is None:
            return f"{type(module).__name__} is not on its allow-list"
        if entry.when is not None and not entry.when(module):
            return f"this {type(module).__name__}'s configuration is not on its allow-list"
        if objective.reconstruction_name not in self.losses or objective.reduction != self.reduction:
            return f"loss {objective.reconstruction_name!r} ({objective.reduction}) has no hand-written gradient here"
        if corrupt is not None and not self.corruption:
            return "input corruption"
        for penalty in objective.penalties:
            if type(penalty) not in self.penalties or not penalty.hand_written(module):
                return f"penalty {type(penalty).__name__} has no hand-written form for this model"
        spec = self.spec(module)
        if spec is None or not spec.hand_written:
            return "the model's layers are not all expressible with hand-written gradients"
        if objective.penalties and getattr(spec, "coding_index", None) is None:
            return "the spec marks no coding layer for the penalties"
        return None

    def step(self, module: torch.nn.Module, objective: Objective, optimizer: torch.optim.Optimizer,
             corrupt: Any = None, precision: Precision = FP32) -> ReconstructionStep | None:
        """This executor's step for the configuration, or None where it does not accept it."""
        inner = unwrap(module)
        if self.refusal(inner, objective, corrupt, precision) is not None:
            return None
        return self.step_class(inner, self.spec(inner), objective, optimizer, corrupt, precision=precision)

    step_class: type

    # -- examples of every configuration it accepts, for tests/test_common.py -------------------------------------
    def hand_written_activations(self) -> list[str]:
        return [name for name, entry in ACTIVATIONS.items() if entry.hand_written]

    def penalty_examples(self) -> list[list[Any]]:
        return [[]]

    def examples(self) -> Iterator[Example]:
        g = torch.Generator().manual_seed(0)
        for entry in self.allowed.values():
            for (name, module), loss, penalties in itertools.product(
                    list(entry.examples(self.hand_written_activations())), self.losses, self.penalty_examples()):
                objective = Objective(loss, penalties, reduction=self.reduction)
                if self.refusal(module, objective, None) is not None:
                    continue  # e.g. a penalty whose hand-written form needs another coding layer
                n_in = next(p for p in module.parameters() if p.dim() == 2).shape[1]
                x = torch.rand(16, _input_size(module, n_in), generator=g, dtype=torch.float64)
                yield Example(f"{self.name}: {name}, {loss}, {[type(p).__name__ for p in penalties]}", module,
                              objective, x, {"model": type(module), "loss": loss,
                                             "penalties": [type(p) for p in penalties],
                                             "activations": _activations_of(self.spec(module))})


def _input_size(module: torch.nn.Module, default: int) -> int:
    size = getattr(module, "n_features", None)
    return int(size) if size else default


def _activations_of(spec: Any) -> set[str]:
    if isinstance(spec, DenseChain):
        return spec.activations()
    return spec.encoder.activations() | spec.decoder.activations()


class HandWrittenStep(ReconstructionStep):
    """A step whose model computes its own gradients (no autograd), written in place into the same ``.grad``
    tensors each step: subclasses give :meth:`loss_and_backward`. Evaluation is the ordinary path; on CUDA the
    step is captured as a graph like the autograd one's."""

    writes_grads_in_place = True
    executor = "hand-written"

    def __init__(
        self,
        model: torch.nn.Module,
        chain: DenseChain | VariationalChain,
        objective: Objective,
        optimizer: torch.optim.Optimizer,
        corrupt: Callable[[torch.Tensor], torch.Tensor] | None = None,
        cuda_graphs: bool | None = None,
        precision: Precision = FP32,
    ) -> None:
        super().__init__(model, objective, optimizer, corrupt, cuda_graphs, precision)
        # bf16-mixed: the chain computes on bfloat16 copies of the weights, refreshed after every update
        self.chain = chain.lowered(precision.dtype) if precision.mixed else chain
        self.shadows = shadows(self.chain.layers)
        self.loss_with_grad = LOSSES_WITH_GRAD[objective.reconstruction_name]

    def after_update(self) -> None:
        if self.shadows[0]:  # the lower-precision copies take the updated parameters
            with torch.no_grad():
                torch._foreach_copy_(*self.shadows)

    def loss_and_backward(self, seen: torch.Tensor, targets: torch.Tensor
                          ) -> tuple[dict[str, torch.Tensor], Callable[[], None]]:
        """Forward and loss terms; returns the terms and a function that writes the gradients (the backward)."""
        raise NotImplementedError

    def reconstruction_with_grad(self, chain: DenseChain, logits: torch.Tensor, targets: torch.Tensor
                                 ) -> tuple[torch.Tensor, torch.Tensor]:
        """The reconstruction loss of ``chain``'s output ``logits`` and its gradient with respect to them. The
        gradient may overwrite the logits where the backward will not read them again (it reads the last layer's
        output only to differentiate a non-linear activation of that layer's own)."""
        overwrite = chain.layers[-1].activation == "linear" and targets is not logits
        return self.loss_with_grad(logits, targets, chain.output_activation, overwrite=overwrite,
                                   reduction=self.objective.reduction)

    def forward_backward(self, seen: torch.Tensor, targets: torch.Tensor) -> dict[str, torch.Tensor]:
        terms, backward = self.loss_and_backward(seen, targets)
        backward()
        return terms

    def eager_update(self, seen: torch.Tensor, targets: torch.Tensor) -> dict[str, torch.Tensor]:
        terms, backward = self.loss_and_backward(seen, targets)
        value = float(terms["loss"])
        if not math.isfinite(value):
            raise NonFiniteLoss(f"loss is {value}")
        backward()
        optimizer_step(self.optimizer)
        self.after_update()
        return terms


class DenseChainStep(HandWrittenStep):
    """:class:`ReconstructionStep` for a stack of dense layers trained on a reconstruction loss, plus penalties with
    a hand-written gradient (``value_and_grad``: KL or L1 sparsity, the closed-form contractive term), without
    autograd: the chain's forward, the loss and its gradient in one pass each, the chain's hand-written backward
    (gradients written in place, a penalty's added at the coding layer and to the coding layer's weight), the
    optimizer step. Same update up to float rounding; ~10% faster than autograd on the book's model, ~10-20% with
    a penalty (benchmarks/executors.py, docs/benchmarks.md)."""

    executor = "hand-written dense chain"

    def loss_and_backward(self, seen: torch.Tensor, targets: torch.Tensor
                          ) -> tuple[dict[str, torch.Tensor], Callable[[], None]]:
        chain = self.chain
        outputs = chain.forward(seen)
        if chain.target_index is not None:
            targets = outputs[chain.target_index]
        loss, grad = self.reconstruction_with_grad(chain, outputs[-1], targets)
        i = chain.coding_index  # penalties read the codings, and maybe the weight of the layer that made them
        values, coding_grad, weight_grads = {}, None, []
        codings = outputs[i] if self.objective.penalties else None
        if codings is not None and codings.dtype in (torch.bfloat16, torch.float16):
            codings = codings.float()  # penalties in float32
        coding_layer = chain.layers[i - 1] if self.objective.penalties else None
        coding_weight = None if coding_layer is None else (
            coding_layer.weight if coding_layer.master_weight is None else coding_layer.master_weight)
        for penalty in self.objective.penalties:
            values[penalty.name], g, g_weight = penalty.value_and_grad(codings, coding_weight.detach())
            coding_grad = g * penalty.weight if coding_grad is None else coding_grad + g * penalty.weight
            if g_weight is not None:
                weight_grads.append((g_weight, penalty.weight))
        terms = self.objective.with_loss({"reconstruction": loss, **values})

        def backward() -> None:
            chain.backward(outputs, grad, extra=None if coding_grad is None else {i: coding_grad})
            for g_weight, weight in weight_grads:
                coding_weight.grad.add_(g_weight, alpha=weight)

        return terms, backward


class VariationalChainStep(HandWrittenStep):
    """The dense VAE's step without autograd (:class:`~aekit.nn.chain.VariationalChain`): the negative ELBO
    ``reconstruction + beta * kl`` (per image, "sum" reduction) and its gradients by hand. The same terms as the
    autograd step (``reconstruction``, ``kl`` already times beta, ``loss``), the same random draws."""

    executor = "hand-written variational chain"

    def loss_and_backward(self, seen: torch.Tensor, targets: torch.Tensor
                          ) -> tuple[dict[str, torch.Tensor], Callable[[], None]]:
        chain = self.chain
        p = chain.forward(seen)
        target = p.inputs if chain.binarize else targets  # a drawn binary image is its own target
        reconstruction, grad = self.reconstruction_with_grad(chain.decoder, p.decoder[-1], target)
        terms = self.objective.with_loss({"reconstruction": reconstruction, "kl": p.kl * chain.kl_beta})
        return terms, lambda: chain.backward(p, grad)


class DenseChainExecutor(Executor):
    """Stacked dense autoencoders (and their greedy layer pairs) on MSE or BCE averaged over elements, with KL or
    L1 sparsity or the closed-form contractive term, with or without input corruption."""

    name = "hand-written dense chain"
    penalties = (KLSparsity, L1Codings, Contractive)
    step_class = DenseChainStep

    def spec(self, module: torch.nn.Module) -> DenseChain | None:
        return module.dense_chain()

    def penalty_examples(self) -> list[list[Any]]:
        return [[], [KLSparsity(0.2, 0.7)], [KLSparsity(0.02, 3.0)], [L1Codings(0.05)], [Contractive(0.3)],
                [Contractive(0.3, "closed"), KLSparsity(0.2, 0.7)]]


class VariationalChainExecutor(Executor):
    """Dense VAEs (Bernoulli or MSE decoder, any beta, KL warm-up, dynamic binarization) on the negative ELBO per
    image, no penalty, no input corruption, no free bits (the model gives no chain then: autograd trains it)."""

    name = "hand-written variational chain"
    reduction = "sum"
    corruption = False
    step_class = VariationalChainStep

    def spec(self, module: torch.nn.Module) -> VariationalChain | None:
        return module.variational_chain()


DENSE_CHAIN = DenseChainExecutor()
VARIATIONAL_CHAIN = VariationalChainExecutor()
#: tried in order; a configuration none of them accepts trains through autograd
EXECUTORS: list[Executor] = [DENSE_CHAIN, VARIATIONAL_CHAIN]


def reconstruction_step(
    model: torch.nn.Module,
    objective: Objective,
    optimizer: torch.optim.Optimizer,
    corrupt: Callable[[torch.Tensor], torch.Tensor] | None = None,
    precision: Precision = FP32,
) -> ReconstructionStep:
    """The step for ``model``: the first executor of :data:`EXECUTORS` that accepts the configuration, else the
    autograd :class:`ReconstructionStep` over the same definition. ``step.executor`` names the choice."""
    for executor in EXECUTORS:
        step = executor.step(model, objective, optimizer, corrupt, precision)
        if step is not None:
            return step
    return ReconstructionStep(model, objective, optimizer, corrupt, precision=precision)


def explain(model: torch.nn.Module, objective: Objective, corrupt: Any = None,
            precision: Precision = FP32) -> dict[str, str | None]:
    """Each executor's reason for refusing the configuration (None: it accepts it)."""
    return {executor.name: executor.refusal(unwrap(model), objective, corrupt, precision) for executor in EXECUTORS}
