"""Wasserstein autoencoder, MMD variant (Tolstikhin, Bousquet, Gelly & Schölkopf 2018, "Wasserstein
Auto-Encoders", algorithm 2).

A deterministic encoder z = f(x) and a decoder, trained on

    c(x, G(f(x))) + lambda * MMD_k(q(z), p(z)),   p(z) = N(0, I)

where q(z) is the batch of codings and the MMD is the unbiased estimate against as many prior draws, with the
inverse multiquadratics kernel k(a, b) = C / (C + ||a - b||^2), C = 2 * latent * s for the scales
s in (0.1, 0.2, 0.5, 1, 2, 5, 10) summed (the paper's MNIST setting: squared error summed over pixels,
lambda = 10). ``kernel="rbf"`` uses exp(-||a - b||^2 / C) instead. The encoder and decoder are the VAE's
(:mod:`aekit.models.variational`) without the log-variance head; ``sample`` decodes prior draws. There is no
posterior, so no ELBO or importance-sampled likelihood.
"""

from __future__ import annotations

from typing import Any

import torch
from sklearn.utils._param_validation import StrOptions

from ..estimators.base import AutoencoderEstimator, Sampling
from ..estimators.parts import Conv, ImageShape, Layers, Reconstruction, Training, latent_dim
from ..params import Param, non_negative_float
from ..registry import register_estimator, register_model
from .base import AEOutput
from .variational import VariationalAutoencoderModule

SCALES = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)


def mmd(a: torch.Tensor, b: torch.Tensor, kernel: str = "imq") -> torch.Tensor:
    """The unbiased estimate of MMD^2 between samples ``a`` and ``b`` (n, d) each, the kernel summed over
    :data:`SCALES` (C = 2 d s; Tolstikhin et al.'s code)."""
    n, d = a.shape
    both = torch.cat([a, b])
    d2 = torch.cdist(both, both).pow(2)  # (2n, 2n)
    k = sum((c / (c + d2)) if kernel == "imq" else torch.exp(-d2 / c) for c in (2.0 * d * s for s in SCALES))
    off = 1.0 - torch.eye(n, dtype=a.dtype, device=a.device)
    within = ((k[:n, :n] + k[n:, n:]) * off).sum() / (n * (n - 1))
    return within - 2.0 * k[:n, n:].mean()


@register_model("wae")
class WAEModule(VariationalAutoencoderModule):
    """The VAE's encoder (the mean head only: deterministic codings) and decoder, with the MMD to N(0, I) as
    the model's own loss term."""

    def __init__(self, *args: Any, mmd_weight: float = 10.0, kernel: str = "imq", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.logvar = None  # deterministic encoder: no variance head
        self.config.update(mmd_weight=float(mmd_weight), kernel=kernel)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.mean(self.encode_hidden(x))

    def variational_chain(self) -> None:
        return None

    def forward(self, x: torch.Tensor) -> AEOutput:
        z = self.encode(x)
        prior = torch.randn_like(z)
        term = self.config["mmd_weight"] * mmd(z.float(), prior.float(), self.config["kernel"]) if len(z) > 1 \
            else z.new_zeros(())
        return AEOutput(self.decode(z), z, self.output_activation, terms={"mmd": term}, log_scale=self.log_scale)


@register_estimator("WAE", cli="wae")
class WAE(Sampling, AutoencoderEstimator):
    """A Wasserstein autoencoder with the MMD penalty (WAE-MMD): deterministic codings pressed towards N(0, I) as
    a whole (not each row's posterior), so ``sample`` decodes prior draws while reconstructions stay sharp.
    The loss per image is the reconstruction summed over features plus ``mmd_weight`` times the batch MMD."""

    model_name = "wae"
    reduction = "sum"  # per-image sums, as the paper's c(x, y) = ||x - y||^2
    positional = ("hidden_layers",)
    own_params = (
        latent_dim(8),
        Param("mmd_weight", 10.0, non_negative_float(), "lambda, the weight of the MMD (the paper: 10 on MNIST).",
              type="float"),
        Param("kernel", "imq", [StrOptions({"imq", "rbf"})],
              "The MMD's kernel: inverse multiquadratics (the paper's) or Gaussian, summed over 7 scales."),
    )
    parts = (
        Layers(hidden_layers=(500, 500)),
        Reconstruction("mse", ("mse", "bce"), auto="mse"),
        Conv(channels=(32, 64)),
        ImageShape(),
        Training(),
    )

    def _model_config(self, n_features: int) -> dict[str, Any]:
        return dict(n_features=n_features, hidden_layers=list(self.hidden_layers), latent_dim=self.latent_dim,
                    activation=self.activation, init=Layers.resolved_init(self),
                    output_activation="sigmoid" if self.loss_ == "bce" else "linear",
                    mmd_weight=self.mmd_weight, kernel=self.kernel, **self.part(Conv).config(self))
