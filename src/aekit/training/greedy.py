"""Greedy layer-wise training, "one autoencoder at a time" (Hinton & Salakhutdinov 2006; Bengio et al. 2007;
Géron ch. 15, section 4), through the one loop.

A model that supports it exposes layer pairs: ``n_pairs``, ``encode_prefix(x, k)``, ``pair_encode(h, k)``,
``pair_decode(z, k)``, ``pair_parameters(k)``, ``pair_output_activation(k)``, ``shallow_autoencoder(k, seed)``
and ``load_pair(k, shallow)``. Pair k is encoder layer k with its mirror decoder layer.

- ``"phases"``: one model; phase k trains only pair k (the optimizer holds only its parameters, so only its
  weights are regularized) to reconstruct pair k's input; phase 1's output bypasses the inner layers through the
  real output layer. The frozen lower layers' outputs are cached once per phase (in chunks) unless
  ``cache=False``, in which case every batch goes through them again.
- ``"separate"``: shallow autoencoder k is a model of its own, trained on the codings of autoencoder k-1; their
  encoders are stacked in order and their decoders in reverse order into the model.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import torch
from torch import nn

from ..models.base import AEOutput
from ..nn.chain import DenseChain
from .callbacks import EpochCallback
from .executors import DENSE_CHAIN
from .loop import History, Position, Step, map_batches, train


@dataclass(frozen=True)
class Phase:
    epochs: int
    batch_size: int
    learning_rate: float


# (module, trainable params, regularized params, learning rate, reconstruction loss name, whether the module's
# codings are the model's coding layer, so coding penalties apply) -> step
MakeStep = Callable[[nn.Module, Sequence[nn.Parameter], Sequence[nn.Parameter], float, str, bool], Step]


def _pair_examples(activations: Sequence[str]):
    """Every layer pair of a small float64 dense autoencoder, cached or through the frozen lower layers."""
    from ..models.dense import DenseAutoencoder, _perturbed

    for act in activations:
        model = _perturbed(DenseAutoencoder(12, [9, 5, 3], activation=act, seed=2))
        for k in range(3):
            for through_prefix in (False, True):
                yield f"layer pair {k} of dense {act}, through_prefix={through_prefix}", LayerPair(model, k, through_prefix)
    model = _perturbed(DenseAutoencoder(12, [9, 5], activation="elu", coding_activation="sigmoid", seed=2))
    yield "innermost layer pair, sigmoid codings", LayerPair(model, 1, through_prefix=True)


@DENSE_CHAIN.allow(when=lambda pair: type(pair.model) in DENSE_CHAIN.allowed, examples=_pair_examples)
class LayerPair(nn.Module):
    """Pair ``k`` of a stacked model seen as an autoencoder of its own. With ``through_prefix`` it takes raw
    inputs, runs them through the frozen lower layers without autograd and reconstructs their output."""

    def __init__(self, model: nn.Module, k: int, through_prefix: bool = False) -> None:
        super().__init__()
        self.model, self.k, self.through_prefix = model, k, through_prefix

    def forward(self, x: torch.Tensor) -> AEOutput:
        target = None
        if self.through_prefix and self.k > 0:
            with torch.no_grad():
                x = target = self.model.encode_prefix(x, self.k)  # (batch, size of layer k-1)
        codings = self.model.pair_encode(x, self.k)
        logits = self.model.pair_decode(codings, self.k)
        return AEOutput(logits, codings, self.model.pair_output_activation(self.k), target=target)

    def regularized_weights(self) -> list[nn.Parameter]:
        return [p for p in self.model.pair_parameters(self.k) if p.dim() > 1]

    @property
    def n_features(self) -> int:
        """The size of this pair's input rows: the model's input with ``through_prefix``, else layer k-1's."""
        if self.through_prefix or self.k == 0:
            return self.model.config["n_features"]
        return self.model.config["hidden_layers"][self.k - 1]

    def dense_chain(self) -> DenseChain | None:
        """This pair (after the frozen lower layers, with ``through_prefix``) as a chain of the model's layer
        specs, when the model has them."""
        if not hasattr(self.model, "pair_layers"):
            return None
        prefix = [replace(self.model.pair_layers(i)[0], trainable=False) for i in range(self.k)] if (
            self.through_prefix) else []
        encode, decode = self.model.pair_layers(self.k)
        return DenseChain([*prefix, encode, decode], self.model.pair_output_activation(self.k),
                          target_index=len(prefix) if prefix else None, coding_index=len(prefix) + 1)


def greedy_pretrain(
    model: nn.Module,
    X: torch.Tensor,
    *,
    strategy: str,
    phases: Sequence[Phase],
    make_step: MakeStep,
    loss: str,
    generator: torch.Generator,
    cache: bool = True,
    seed: int = 0,
    history: History | None = None,
    progress: bool = False,
    start: Position | None = None,
    resume_optimizer: Callable[[torch.optim.Optimizer], None] | None = None,
    on_checkpoint: Callable[[Step, Position], None] | None = None,
    checkpoint_every: int = 0,
    stop_requested: Callable[[], int] | None = None,
) -> list[nn.Module]:
    """Train ``model`` pair by pair; returns the shallow autoencoders (``"separate"``) or ``[]``.

    Pair 0 uses the model's ``loss``; inner pairs reconstruct hidden activations with MSE.

    Checkpoints and resuming, as the end-to-end loop does them: ``on_checkpoint(step, position)`` is called at
    the end of every epoch, every ``checkpoint_every`` batches and when ``stop_requested()`` returns a signal
    (then :class:`~aekit.training.loop.TrainingInterrupted` is raised); its ``position.phase`` is the phase
    (1-based). With ``"separate"`` the shallow autoencoder's weights are first copied into the model's pair, so
    that the model's weights hold them. ``start`` (a position with ``phase`` >= 1) resumes inside that phase:
    earlier phases are not trained again (their pairs are in the model; the cached codings are recomputed
    from them), the phase's shallow autoencoder takes the model's pair weights back, ``resume_optimizer`` loads
    the phase's optimizer state, and training continues at ``start``'s batch.
    """
    history = [] if history is None else history
    n = model.n_pairs
    start = start if start is not None and start.phase else None
    first = start.phase - 1 if start is not None else 0  # the phase to resume (0-based), or the first
    shallow_models: list[nn.Module] = []
    inputs = X  # pair k's training inputs: X, then the cached codings of the layers below
    for k, phase in enumerate(phases[:n]):
        if k > 0 and (cache or strategy == "separate"):
            inputs = map_batches(lambda h, i=k - 1: model.pair_encode(h, i), inputs)  # (n, size of layer k-1)
        if strategy == "separate":
            before = start is not None and k <= first  # made (and trained, or partly) before the checkpoint
            # building it draws from the global RNG (nn.Linear's default init), which the checkpoint's state
            # already reflects for a module made before it: not again
            with torch.random.fork_rng(devices=[]) if before else contextlib.nullcontext():
                module = model.shallow_autoencoder(k, seed=seed + k).to(X.device)
            if before:  # its weights are in the model's pair k
                _copy_pair(model, k, module)
            params, regularized = list(module.parameters()), module.regularized_weights()
        else:
            module = LayerPair(model, k, through_prefix=not cache)
            params, regularized = model.pair_parameters(k), module.regularized_weights()
        if k < first:
            if strategy == "separate":
                shallow_models.append(module.eval())
            continue
        step = make_step(module, params, regularized, phase.learning_rate, loss if k == 0 else "mse", k == n - 1)
        resuming = start is not None and k == first
        if resuming and resume_optimizer is not None:
            resume_optimizer(step.optimizer)
        checkpoint = None if on_checkpoint is None else _phase_checkpoint(
            on_checkpoint, step, model, k, module if strategy == "separate" else None)
        callbacks = [] if checkpoint is None else [EpochCallback(
            lambda record, _, k=k, checkpoint=checkpoint: checkpoint(
                Position(record["epoch"], 0, generator.get_state(), phase=k + 1)))]
        train(step, inputs if (cache or strategy == "separate") else X, epochs=phase.epochs,
              batch_size=phase.batch_size, generator=generator, history=history, callbacks=callbacks,
              start=start if resuming else Position(phase=k + 1), checkpoint_every=checkpoint_every,
              on_checkpoint=checkpoint, stop_requested=stop_requested, progress=progress,
              description=f"greedy phase {k + 1}/{n}", record_extra={"phase": k + 1})
        if strategy == "separate":
            model.load_pair(k, module)
            shallow_models.append(module.eval())
    return shallow_models


def _phase_checkpoint(on_checkpoint: Callable[[Step, Position], None], step: Step, model: nn.Module, k: int,
                      shallow: nn.Module | None) -> Callable[[Position], None]:
    """Phase ``k``'s checkpoint: a shallow autoencoder in training (``"separate"``) is copied into the model's
    pair first, so that the model's weights hold it."""
    def checkpoint(position: Position) -> None:
        if shallow is not None:
            model.load_pair(k, shallow)
        on_checkpoint(step, position)

    return checkpoint


@torch.no_grad()
def _copy_pair(model: nn.Module, k: int, shallow: nn.Module) -> None:
    """The inverse of ``model.load_pair(k, shallow)``: pair ``k``'s weights into the shallow autoencoder."""
    for theirs, mine in zip(model.pair_parameters(k), shallow.pair_parameters(0), strict=True):
        mine.copy_(theirs)
