"""beta-VAE (Higgins et al. 2017, "beta-VAE: Learning Basic Visual Concepts with a Constrained Variational
Framework") with the capacity annealing of Burgess et al. 2018 ("Understanding disentangling in beta-VAE").

The VAE's math (:mod:`aekit.models.variational`) with another latent term:

- ``capacity=0``: ``beta * KL`` (beta > 1 presses the posterior towards the factorized prior; 4 is Higgins et
  al.'s choice for dSprites and the default here);
- ``capacity=C > 0``: ``beta * |KL - C_t|`` with ``C_t`` raised linearly from 0 to C over the first
  ``capacity_epochs`` epochs (then held): the KL is steered towards a growing information budget rather than
  down to 0 (Burgess et al. use a large weight here, e.g. ``beta=1000`` with C = 25 nats).

``C_t`` is a pure function of the epoch (set at each epoch's start, recorded as ``capacity``), so a resumed run
recomputes it. This is one file: the model, its estimator, the epoch callback.
"""

from __future__ import annotations

from typing import Any

import torch

from ..params import Param, non_negative_float, positive_int
from ..registry import register_estimator, register_model
from .variational import VariationalAutoencoder, VariationalAutoencoderModule


@register_model("beta-vae")
class BetaVAEModule(VariationalAutoencoderModule):
    """The VAE with the KL weighted by ``beta``, or (``capacity > 0``) held near an annealed capacity."""

    def __init__(self, *args: Any, capacity: float = 0.0, capacity_epochs: int = 25, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.config.update(capacity=float(capacity), capacity_epochs=int(capacity_epochs))
        self.capacity_now = float(capacity)  # C_t: the annealing callback sets it each epoch; trained: C

    def latent_terms(self, x: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor,
                     z: torch.Tensor) -> dict[str, torch.Tensor]:
        kl = self.batch_kl(mu, logvar, z)
        weight = self.config["beta"] * self.kl_weight
        if self.config["capacity"] > 0:
            return {"kl": weight * (kl - self.capacity_now).abs()}
        return {"kl": weight * kl}


class CapacityAnnealing:
    """At each epoch's start ``C_t = C * min(1, epoch / capacity_epochs)``; the record gets ``capacity``."""

    def __init__(self, model: BetaVAEModule) -> None:
        self.model = model

    def capacity(self, epoch: int) -> float:
        cfg = self.model.config
        return cfg["capacity"] * min(1.0, epoch / cfg["capacity_epochs"])

    def on_epoch_begin(self, epoch: int, history: list) -> None:
        self.model.capacity_now = self.capacity(epoch)

    def on_epoch_end(self, record: dict[str, Any], history: list) -> bool:
        record["capacity"] = float(self.model.capacity_now)
        return False

    def restore(self) -> None:
        self.model.capacity_now = self.model.config["capacity"]


def _with_beta(params: tuple[Param, ...], default: float) -> tuple[Param, ...]:
    """The VAE's parameters with this family's beta, and 10 latent units (Higgins et al.'s dSprites models)."""
    return tuple(p.replace(default=default, doc=(
        "Weight of the KL term (Higgins et al. 2017: > 1 favours factorized codings; 4 for dSprites); with "
        "``capacity`` the weight of ``|KL - C_t|``.")) if p.name == "beta" else
        p.replace(default=10) if p.name == "latent_dim" else p for p in params)


@register_estimator("BetaVAE", cli="beta-vae")
class BetaVAE(VariationalAutoencoder):
    """A beta-VAE: the VAE with its KL term weighted by ``beta`` (default 4), optionally with Burgess et al.'s
    capacity annealing (``capacity``, ``capacity_epochs``). Everything else is the VAE's: dense or conv,
    Bernoulli or Gaussian decoder, KL warm-up, free bits, ``sample``, ``elbo``, ``log_likelihood``."""

    model_name = "beta-vae"
    own_params = (
        *_with_beta(VariationalAutoencoder.own_params, 4.0),
        Param("capacity", 0.0, non_negative_float(),
              "Burgess et al.'s capacity C in nats: the latent term becomes ``beta * |KL - C_t|``, C_t rising "
              "linearly from 0 to C over ``capacity_epochs`` epochs. 0: off (the plain ``beta * KL``).",
              type="float"),
        Param("capacity_epochs", 25, positive_int(),
              "Epochs over which the capacity rises from 0 to ``capacity`` (then it is held).", type="int"),
    )

    def _model_config(self, n_features: int) -> dict[str, Any]:
        return {**super()._model_config(n_features), "capacity": self.capacity,
                "capacity_epochs": self.capacity_epochs}

    def _training_callbacks(self, model: torch.nn.Module, total: int) -> list:
        extra = [CapacityAnnealing(model)] if self.capacity > 0 else []
        return [*super()._training_callbacks(model, total), *extra]
