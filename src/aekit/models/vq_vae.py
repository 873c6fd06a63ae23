"""VQ-VAE (van den Oord, Vinyals & Kavukcuoglu 2017, "Neural Discrete Representation Learning"), dense or conv.

The encoder's output is cut into vectors of ``code_dim`` values (dense: ``n_latents`` of them; conv: one per
position of the last feature map, after a 1x1 convolution to ``code_dim`` channels), each replaced by its
nearest entry of a codebook of ``n_codes`` vectors; the decoder sees the quantized vectors, and the gradient
passes the quantization unchanged (straight-through). The loss is

    reconstruction + ||sg[z_e] - e||^2 (codebook; not with EMA) + commitment * ||z_e - sg[e]||^2

(squared errors averaged over the elements, as the reconstruction; commitment 0.25, the paper's). With ``ema``
(the paper's appendix, decay 0.99) the codebook is not trained by gradients but moved to the running mean of
the vectors assigned to each code (Laplace-smoothed counts). Dead codes (no vector assigned in an epoch) are
restarted at the epoch's end on encoder outputs of the last batch (``restart_dead``; Dhariwal et al. 2020's
Jukebox and Zeghidour et al.'s SoundStream do the same), seeded by the epoch, so a resumed run does the same.
Each epoch's record holds ``usage`` (share of the codes used) and ``perplexity`` (exp of the entropy of the
codes' frequencies; ``n_codes`` at most). ``transform`` gives code indices (``codes="indices"``) or the quantized
vectors (``codes="vectors"``); ``inverse_transform`` decodes either. There is no prior over the codes, so no
``sample`` (a PixelCNN over the indices would be one).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from numbers import Real

from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_array, check_is_fitted
from torch import nn

from ..errors import DataError
from ..estimators.base import AutoencoderEstimator
from ..estimators.parts import Conv, ImageShape, Layers, Reconstruction, Training
from ..nn.conv import as_images, conv_encoder, conv_geometry, transposed_decoder
from ..nn.layers import activation as get_activation
from ..nn.layers import check_sizes, init_linear_, linear_layers
from ..params import Param, positive_float, positive_int
from ..registry import register_estimator, register_model
from .base import AEOutput, AutoencoderModule


class VectorQuantizer(nn.Module):
    """A codebook (n_codes, code_dim): nearest-code assignment, EMA updates, usage counts for the epoch, and
    the last batch's inputs kept for restarts (all buffers, so they travel with the weights)."""

    def __init__(self, n_codes: int, code_dim: int, ema: bool, decay: float,
                 generator: torch.Generator | None) -> None:
        super().__init__()
        self.ema, self.decay = bool(ema), float(decay)
        codebook = torch.empty(n_codes, code_dim)
        if codebook.device.type != "meta":
            codebook.uniform_(-1.0 / n_codes, 1.0 / n_codes, generator=generator)  # the paper's code's init
        if self.ema:
            self.register_buffer("codebook", codebook)
            self.register_buffer("cluster_size", torch.zeros(n_codes))
            self.register_buffer("embed_sum", codebook.clone())
        else:
            self.codebook = nn.Parameter(codebook)
        self.register_buffer("epoch_counts", torch.zeros(n_codes))
        self.register_buffer("recent", torch.zeros(n_codes, code_dim))  # encoder vectors of the last batch

    def assign(self, z: torch.Tensor) -> torch.Tensor:
        """Index of the nearest code of each vector (N, code_dim) -> (N,), distances in float32."""
        z, e = z.float(), self.codebook.float()
        d2 = z.pow(2).sum(1, keepdim=True) - 2.0 * z @ e.T + e.pow(2).sum(1)
        return d2.argmin(1)

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(quantized vectors (N, code_dim), indices (N,)); in training also counts and (EMA) moves the codes."""
        index = self.assign(z)
        quantized = self.codebook[index].to(z.dtype)
        if self.training:
            with torch.no_grad():
                flat = z.detach().float()
                counts = torch.bincount(index, minlength=len(self.codebook)).float()
                self.epoch_counts += counts
                pick = torch.randint(len(flat), (len(self.recent),), device=flat.device)
                self.recent.copy_(flat[pick])
                if self.ema:
                    sums = torch.zeros_like(self.embed_sum).index_add_(0, index, flat)
                    self.cluster_size.mul_(self.decay).add_(counts, alpha=1 - self.decay)
                    self.embed_sum.mul_(self.decay).add_(sums, alpha=1 - self.decay)
                    n, k = self.cluster_size.sum(), len(self.codebook)
                    smoothed = (self.cluster_size + 1e-5) / (n + k * 1e-5) * n
                    self.codebook.copy_(self.embed_sum / smoothed[:, None])
        return quantized, index

    @torch.no_grad()
    def end_epoch(self, generator: torch.Generator, restart: bool) -> dict[str, float]:
        """The epoch's usage and perplexity; restarts the codes no vector chose (on the last batch's vectors);
        clears the counts."""
        counts = self.epoch_counts.double()
        total = counts.sum()
        p = counts / total if total > 0 else counts
        entropy = -(p[p > 0] * p[p > 0].log()).sum()
        stats = {"usage": float((counts > 0).double().mean()), "perplexity": float(entropy.exp()),
                 "dead_codes": int((counts == 0).sum())}
        dead = (counts == 0).nonzero().flatten()
        if restart and total > 0 and len(dead):
            pick = torch.randint(len(self.recent), (len(dead),), generator=generator).to(self.recent.device)
            fresh = self.recent[pick]
            self.codebook[dead] = fresh.to(self.codebook.dtype)
            if self.ema:
                self.embed_sum[dead] = fresh
                self.cluster_size[dead] = 1.0
        self.epoch_counts.zero_()
        return stats


@register_model("vq-vae")
class VQVAEModule(AutoencoderModule):
    """Encoder, vector quantizer, decoder: dense (``n_latents`` vectors) or conv (one vector per position)."""

    def __init__(self, n_features: int, hidden_layers: list[int], n_codes: int = 512, code_dim: int = 16,
                 n_latents: int = 16, activation: str = "elu", init: str = "he", output_activation: str = "sigmoid",
                 commitment: float = 0.25, ema: bool = True, decay: float = 0.99,
                 image_shape: list[int] | None = None, channels: list[int] | None = None,
                 kernel_sizes: int | list[int] = 3, strides: int | list[int] = 2, pool_sizes: int | list[int] = 1,
                 seed: int | None = None) -> None:
        super().__init__()
        hidden_layers = [int(h) for h in hidden_layers]
        check_sizes("n_codes, code_dim, n_latents", [n_codes, code_dim, n_latents])
        self.config = dict(n_features=int(n_features), hidden_layers=hidden_layers, n_codes=int(n_codes),
                           code_dim=int(code_dim), n_latents=int(n_latents), activation=activation, init=init,
                           output_activation=output_activation, commitment=float(commitment), ema=bool(ema),
                           decay=float(decay), seed=seed)
        self.output_activation = output_activation
        self.act = get_activation(activation)
        generator = torch.Generator().manual_seed(seed) if seed is not None else None
        d = int(code_dim)
        self.conv = bool(channels)
        if self.conv:
            stages, self.shapes, geometry = conv_geometry(image_shape, channels, kernel_sizes, strides, pool_sizes,
                                                          n_features)
            self.config.update(geometry)
            last = self.shapes[-1]
            self.positions = last[1] * last[2]
            self.encoder = conv_encoder(self.shapes[0], stages, init, generator)
            self.to_codes = nn.Conv2d(last[0], d, 1)
            self.from_codes = nn.Conv2d(d, last[0], 1)
            self.decoder = transposed_decoder(self.shapes, stages, init, generator)
        else:
            self.positions = int(n_latents)
            self.encoder = linear_layers([int(n_features), *hidden_layers], init, generator)
            self.to_codes = nn.Linear(hidden_layers[-1] if hidden_layers else int(n_features), self.positions * d)
            self.from_codes = nn.Linear(self.positions * d, hidden_layers[-1] if hidden_layers else int(n_features))
            self.decoder = linear_layers([*reversed(hidden_layers), int(n_features)], init, generator) \
                if hidden_layers else nn.ModuleList()
        for layer in (self.to_codes, self.from_codes):
            init_linear_(layer.weight, layer.bias, "xavier", generator)
        self.quantizer = VectorQuantizer(int(n_codes), d, ema, decay, generator)

    @property
    def n_features(self) -> int:
        return self.config["n_features"]

    @property
    def n_codings(self) -> int:
        return self.positions * self.config["code_dim"]

    # codings are flat rows (batch, positions * code_dim): position-major for dense, (h, w, d) for conv
    def _vectors(self, codings: torch.Tensor) -> torch.Tensor:
        return codings.reshape(-1, self.config["code_dim"])

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The encoder's output before quantization, (batch, positions * code_dim)."""
        if self.conv:
            h = as_images(x, self.shapes[0])
            for block in self.encoder:
                h = self.act(block(h))
            return self.to_codes(h).permute(0, 2, 3, 1).flatten(1)  # (batch, h * w * d)
        h = x
        for layer in self.encoder:
            h = self.act(layer(h))
        return self.to_codes(h)

    def quantize(self, codings: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(quantized codings (batch, positions * code_dim), code indices (batch, positions))."""
        quantized, index = self.quantizer(self._vectors(codings))
        return quantized.view(len(codings), -1), index.view(len(codings), -1)

    def constrain(self, codings: torch.Tensor) -> torch.Tensor:
        return self.quantize(codings)[0]  # the decoder only ever sees codes

    def decode(self, codings: torch.Tensor) -> torch.Tensor:
        if self.conv:
            _, hh, ww = self.shapes[-1]
            h = codings.view(-1, hh, ww, self.config["code_dim"]).permute(0, 3, 1, 2)
            h = self.act(self.from_codes(h))
            for j, layer in enumerate(self.decoder):
                h = layer(h)
                if j < len(self.decoder) - 1:
                    h = self.act(h)
            return h.flatten(1)
        h = self.from_codes(codings)
        for layer in self.decoder:
            h = layer(self.act(h))
        return h  # logits

    def decode_indices(self, index: torch.Tensor) -> torch.Tensor:
        """Logits for code indices (batch, positions)."""
        return self.decode(self.quantizer.codebook[index.long()].to(self.from_codes.weight.dtype).flatten(1))

    def forward(self, x: torch.Tensor) -> AEOutput:
        z_e = self.encode(x)
        z_q, _ = self.quantize(z_e)
        terms = {"commitment": self.config["commitment"] * F.mse_loss(z_e.float(), z_q.detach().float())}
        if not self.config["ema"]:
            terms = {"codebook": F.mse_loss(z_q.float(), z_e.detach().float()), **terms}
        straight = z_e + (z_q - z_e).detach()  # straight-through: the decoder's gradient reaches the encoder
        return AEOutput(self.decode(straight), z_e, self.output_activation, terms=terms)


class CodebookEpoch:
    """At each epoch's end: the record gets ``usage``, ``perplexity``, ``dead_codes``; dead codes restart."""

    def __init__(self, model: VQVAEModule, restart: bool) -> None:
        self.model, self.restart = model, restart

    def on_epoch_end(self, record: dict[str, Any], history: list) -> bool:
        seed = (self.model.config.get("seed") or 0) * 100003 + int(record["epoch"])
        record.update(self.model.quantizer.end_epoch(torch.Generator().manual_seed(seed), self.restart))
        return False

    def restore(self) -> None:
        pass


@register_estimator("VQVAE", cli="vq-vae")
class VQVAE(AutoencoderEstimator):
    """A VQ-VAE: discrete codings, each of ``n_latents`` (dense) or h x w (conv) positions one of ``n_codes``
    codebook vectors. ``transform`` gives the code indices (``codes="indices"``, integers) or the quantized
    vectors (``codes="vectors"``); ``inverse_transform`` decodes either; ``predict`` reconstructs; each epoch
    records the codebook's ``usage`` and ``perplexity``. No ``sample``: the codes have no prior."""

    model_name = "vq-vae"
    positional = ("hidden_layers",)
    own_params = (
        Param("n_codes", 512, positive_int(), "Codebook size K (the paper: 512).", type="int", small=8),
        Param("code_dim", 16, positive_int(), "Size of each code vector.", type="int", small=2),
        Param("n_latents", 16, positive_int(), "Dense only: the code vectors per row (conv: one per position of "
                                               "the last feature map).", type="int", small=3),
        Param("commitment", 0.25, positive_float(), "beta, the commitment loss's weight (the paper: 0.25).",
              type="float"),
        Param("ema", True, ["boolean"], "Move the codes to the running mean of their vectors (exponential moving "
                                        "averages, the paper's appendix) instead of a codebook loss."),
        Param("decay", 0.99, [Interval(Real, 0, 1, closed="neither")], "EMA decay of the codebook.",
              type="float"),
        Param("restart_dead", True, ["boolean"], "Restart codes no vector chose in an epoch on encoder outputs "
                                                 "(dead-code restarts)."),
        Param("codes", "indices", [StrOptions({"indices", "vectors"})],
              "What ``transform`` gives: code indices (n, positions) or quantized vectors (n, positions * "
              "code_dim)."),
    )
    parts = (
        Layers(hidden_layers=(500, 500)),
        Reconstruction("mse", ("mse", "bce"), auto="mse"),
        Conv(channels=(32, 64)),
        ImageShape(),
        Training(),
    )

    def _model_config(self, n_features: int) -> dict[str, Any]:
        return dict(n_features=n_features, hidden_layers=list(self.hidden_layers), n_codes=self.n_codes,
                    code_dim=self.code_dim, n_latents=self.n_latents, activation=self.activation,
                    init=Layers.resolved_init(self), output_activation="sigmoid" if self.loss_ == "bce" else "linear",
                    commitment=self.commitment, ema=self.ema, decay=self.decay, **self.part(Conv).config(self))

    def _training_callbacks(self, model: torch.nn.Module, total: int) -> list:
        return [CodebookEpoch(model, self.restart_dead)]

    @property
    def _n_features_out(self) -> int:
        return int(self.model_.positions if self.codes == "indices" else self.model_.n_codings)

    def transform(self, X: Any) -> np.ndarray:
        """Code indices (n, positions), int64, or quantized vectors (n, positions * code_dim) (``codes``)."""
        check_is_fitted(self, "model_")
        rows = self._validate(X, reset=False)
        if self.codes == "indices":
            return self._map(lambda x: self.model_.quantize(self.model_.encode(x))[1].float(), rows).astype(np.int64)
        return self._map(lambda x: self.model_.quantize(self.model_.encode(x))[0], rows)

    def inverse_transform(self, X: Any) -> np.ndarray:
        """Reconstructions from code indices (n, positions; integers) or code vectors (n, positions * code_dim)."""
        check_is_fitted(self, "model_")
        codes = np.asarray(X)
        model = self.model_
        if np.issubdtype(codes.dtype, np.integer):
            if codes.ndim != 2 or codes.shape[1] != model.positions or codes.min() < 0 or \
                    codes.max() >= model.config["n_codes"]:
                raise DataError(f"code indices must be (n, {model.positions}) integers in [0, "
                                f"{model.config['n_codes']}), got shape {codes.shape}")
            return self._map(lambda i: model.output(model.decode_indices(i)), codes.astype(np.float32))
        codings = check_array(codes, dtype=np.float32, order="C")
        if codings.shape[1] != model.n_codings:
            raise DataError(f"code vectors have {codings.shape[1]} columns, but the model's codings have "
                            f"{model.n_codings} (positions x code_dim); or pass integer code indices")
        return self._map(lambda z: model.output(model.decode(model.constrain(z))), codings)

    def codebook_usage(self, X: Any) -> dict[str, float]:
        """The codes ``X`` uses: ``usage`` (share of the codebook) and ``perplexity``."""
        check_is_fitted(self, "model_")
        model = self.model_
        index = self._map(lambda x: model.quantize(model.encode(x))[1].float(), self._validate(X, reset=False))
        counts = np.bincount(index.astype(np.int64).ravel(), minlength=self.n_codes).astype(np.float64)
        p = counts[counts > 0] / counts.sum()
        return {"usage": float((counts > 0).mean()), "perplexity": float(np.exp(-(p * np.log(p)).sum()))}

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = []  # indices are integers
        return tags
