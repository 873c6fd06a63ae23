"""Penalty terms. Each is a small object with a ``name`` and a ``weight`` whose call returns the *unweighted*
term for a batch; :class:`~aekit.losses.objective.Objective` weights and sums them.

L2 on weights is not computed per batch: it enters the optimizer as coupled weight decay on the weight matrices
only (``grad += l2 * W``), which is exactly the gradient of ``l2/2 * sum(W**2)`` (TF1's ``l2_regularizer``, the
book's), at no extra pass. :func:`l2_penalty` gives the term's value for the history.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

import torch

from ..models.base import AEOutput, AutoencoderModule


class Penalty(Protocol):
    name: str
    weight: float

    def __call__(self, output: AEOutput, inputs: torch.Tensor, model: AutoencoderModule) -> torch.Tensor: ...


@torch.no_grad()
def l2_penalty(weights: Iterable[torch.Tensor], l2: float) -> float:
    """``l2/2 * sum(W**2)`` over ``weights`` (biases are never passed here)."""
    return 0.5 * l2 * float(sum(w.pow(2).sum() for w in weights)) if l2 else 0.0
