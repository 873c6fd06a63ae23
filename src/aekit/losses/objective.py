"""The objective: one reconstruction loss plus a weighted sum of penalty terms, each reported on its own."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..models.base import AEOutput, AutoencoderModule
from .penalties import Penalty
from .reconstruction import reconstruction_loss


class Objective:
    """``loss = reconstruction(output, target) + sum(p.weight * p(output, inputs, model))``.

    Calling it returns a dict of terms (``"reconstruction"``, one per penalty, and their weighted sum ``"loss"``).
    """

    def __init__(self, reconstruction: str = "mse", penalties: Sequence[Penalty] = (), reduction: str = "mean") -> None:
        self.reconstruction_name = reconstruction
        self.reconstruction = reconstruction_loss(reconstruction)
        self.penalties = list(penalties)
        self.reduction = reduction

    def __call__(
        self, output: AEOutput, target: torch.Tensor, inputs: torch.Tensor, model: AutoencoderModule
    ) -> dict[str, torch.Tensor]:
        if output.target is not None:
            target = output.target
        terms = {"reconstruction": self.reconstruction(output, target, self.reduction), **output.terms}
        terms.update({penalty.name: penalty(output, inputs, model) for penalty in self.penalties})
        return self.with_loss(terms)

    def with_loss(self, terms: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """``terms`` (the reconstruction first) with their sum ``"loss"`` added, in their order: each penalty's term
        times its weight, any other term (a model's own, e.g. a VAE's KL) as it is. The hand-written steps
        (:mod:`aekit.training.steps`) sum their terms here too."""
        weights = {penalty.name: penalty.weight for penalty in self.penalties}
        names = iter(terms)
        loss = terms[next(names)]
        for name in names:
            loss = loss + weights[name] * terms[name] if name in weights else loss + terms[name]
        return {**terms, "loss": loss}
