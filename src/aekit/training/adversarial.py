"""The adversarial autoencoder's step (Makhzani et al. 2016, section 2): the one loop calls ``train_batch`` as for
any step; inside, one batch makes three updates, each with its own optimizer:

1. reconstruction: encoder + decoder minimise the reconstruction loss;
2. regularization, discriminator: D learns to output 1 on prior samples and 0 on codings;
3. regularization, generator: the encoder learns to make D output 1 on its codings (the non-saturating loss of
   Goodfellow et al. 2014).

Under torchrun the autoencoder and the discriminator are each wrapped in DistributedDataParallel. The three
optimizers travel in checkpoints as one (:class:`OptimizerSet`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

from ..losses.objective import Objective
from .distributed import distributed
from ..nn.chain import up
from .precision import FP32, Precision
from .steps import apply_update

if TYPE_CHECKING:
    from ..models.adversarial import AdversarialAutoencoderModule


class OptimizerSet:
    """Named optimizers seen as one by checkpoints: ``state_dict``, ``load_state_dict`` and ``param_groups`` span
    all of them, their parameters numbered one after the other in the given order."""

    def __init__(self, **optimizers: torch.optim.Optimizer) -> None:
        self.optimizers = optimizers

    def __getitem__(self, name: str) -> torch.optim.Optimizer:
        return self.optimizers[name]

    @property
    def param_groups(self) -> list[dict[str, Any]]:
        return [group for opt in self.optimizers.values() for group in opt.param_groups]

    def state_dict(self) -> dict[str, Any]:
        state: dict[int, Any] = {}
        groups: list[dict[str, Any]] = []
        offset = 0
        for opt in self.optimizers.values():
            sd = opt.state_dict()
            state.update({offset + i: slots for i, slots in sd["state"].items()})
            groups += [{**g, "params": [offset + i for i in g["params"]]} for g in sd["param_groups"]]
            offset += sum(len(g["params"]) for g in sd["param_groups"])
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        groups, offset, first = state_dict["param_groups"], 0, 0
        for opt in self.optimizers.values():
            mine = groups[first : first + len(opt.param_groups)]
            n = sum(len(g["params"]) for g in mine)
            opt.load_state_dict({
                "state": {i - offset: s for i, s in state_dict["state"].items() if offset <= i < offset + n},
                "param_groups": [{**g, "params": [i - offset for i in g["params"]]} for g in mine],
            })
            offset, first = offset + n, first + len(opt.param_groups)
        if first != len(groups):
            raise ValueError(f"the saved state has {len(groups)} parameter groups, these optimizers {first}")


class _Codec(nn.Module):
    """The autoencoder with a switch, so that DDP sees the generator update's forward stop at the codings (the
    decoder then counts as unused, not as a gradient that never comes)."""

    def __init__(self, autoencoder: nn.Module) -> None:
        super().__init__()
        self.autoencoder = autoencoder

    def forward(self, x: torch.Tensor, decode: bool = True) -> Any:
        return self.autoencoder(x) if decode else self.autoencoder.encode(x)


class AdversarialStep:
    """Reconstruction, discriminator and generator updates on one batch.

    ``optimizers`` holds ``"autoencoder"`` (encoder + decoder), ``"discriminator"`` and ``"generator"`` (encoder
    only). ``train_batch`` returns ``loss`` (= the reconstruction loss: what divergence checks and early stopping
    watch), ``reconstruction``, ``discriminator`` and ``generator`` (binary cross-entropies, nats per sample) and
    ``prior_accuracy`` (how often D is right, over prior samples and codings together).
    """

    def __init__(self, model: AdversarialAutoencoderModule, objective: Objective, optimizers: OptimizerSet,
                 precision: Precision = FP32) -> None:
        self.model, self.objective, self.optimizer = model, objective, optimizers
        self.precision = precision
        self.scaler = torch.amp.GradScaler("cuda") if precision.scaled else None
        encoder = [p for layer in model.encoder for p in layer.parameters()]
        # the decoder gets no gradient in the generator update: allowed (find_unused_parameters)
        self.autoencoder = distributed(_Codec(model.autoencoder), encoder)
        self.discriminator = distributed(model.discriminator)

    def _run(self, module, *args, **kwargs):
        """A forward under the precision's autocast, its outputs in float32 for the losses."""
        with self.precision.autocast(args[0].device):
            out = module(*args, **kwargs)
        return out.float32() if hasattr(out, "float32") else up(out)

    def _discriminator_terms(self, codings: torch.Tensor) -> dict[str, torch.Tensor]:
        prior = self.model.prior.sample(len(codings), device=codings.device)
        logits = self._run(self.discriminator, torch.cat([prior, codings.detach()]))  # one forward: DDP sees it once
        labels = torch.cat([torch.ones(len(prior), device=logits.device), torch.zeros(len(codings),
                                                                                      device=logits.device)])
        loss = F.binary_cross_entropy_with_logits(logits, labels)
        accuracy = ((logits > 0).float() == labels).float().mean()
        return {"loss": loss, "prior_accuracy": accuracy}

    def _generator_loss(self, codings: torch.Tensor) -> torch.Tensor:
        logits = self._run(self.discriminator, codings)
        return F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits))

    # -- the three updates, in the order train_batch makes them --------------------------------------------
    def reconstruction_update(self, inputs: torch.Tensor, targets: torch.Tensor) -> dict[str, torch.Tensor]:
        """Encoder and decoder, on the reconstruction loss."""
        return apply_update(self.optimizer["autoencoder"],
                            self.objective(self._run(self.autoencoder, inputs), targets, inputs, self.model),
                            self.scaler)

    def discriminator_update(self, codings: torch.Tensor) -> dict[str, torch.Tensor]:
        """The discriminator alone: prior samples -> 1, ``codings`` (detached) -> 0."""
        return apply_update(self.optimizer["discriminator"], self._discriminator_terms(codings), self.scaler)

    def generator_update(self, codings: torch.Tensor) -> dict[str, torch.Tensor]:
        """The encoder alone (``codings`` must come from it with their graph): make D call them prior samples."""
        return apply_update(self.optimizer["generator"], {"loss": self._generator_loss(codings)}, self.scaler)

    def train_batch(self, inputs: torch.Tensor, targets: torch.Tensor) -> dict[str, torch.Tensor]:
        terms = self.reconstruction_update(inputs, targets)
        codings = self._run(self.autoencoder, inputs, decode=False)  # one encoder pass for both updates:
        d_terms = self.discriminator_update(codings)  # D's update leaves the encoder as it is
        g_terms = self.generator_update(codings)
        return {**terms, "discriminator": d_terms["loss"], "prior_accuracy": d_terms["prior_accuracy"],
                "generator": g_terms["loss"]}

    @torch.no_grad()
    def eval_batch(self, inputs: torch.Tensor, targets: torch.Tensor) -> dict[str, torch.Tensor]:
        output = self._run(self.model, inputs)
        terms = self.objective(output, targets, inputs, self.model)
        d_terms = self._discriminator_terms(output.codings)
        return {**terms, "discriminator": d_terms["loss"], "prior_accuracy": d_terms["prior_accuracy"],
                "generator": self._generator_loss(output.codings)}
