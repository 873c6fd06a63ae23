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
        terms = {"reconstruction": self.reconstruction(output, target, self.reduction)}
        loss = terms["reconstruction"]
        for name, term in output.terms.items():
            terms[name] = term
            loss = loss + term
        for penalty in self.penalties:
            terms[penalty.name] = penalty(output, inputs, model)
            loss = loss + penalty.weight * terms[penalty.name]
        terms["loss"] = loss
        return terms
