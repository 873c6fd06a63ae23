"""Conditional VAE (Sohn, Lee & Yan 2015, "Learning Structured Output Representation using Deep Conditional
Generative Models"; Kingma et al. 2014's M2 without the classifier): the label y, one-hot, is an input of both
the encoder q(z | x, y) and the decoder p(x | z, y); the prior is N(0, I). ``sample(n, y=3)`` draws images of
class 3; ``transform(X, y)`` gives the posterior means of labelled rows.

No label is the all-zero one-hot: with ``label_dropout`` (the share of training rows whose label is hidden, as
classifier-free guidance does) the same network also learns q(z | x) and p(x | z), which is what the methods use
for rows given without labels (``transform(X)``, ``predict(X)``); it is 0 by default, which conditions best.

The model sees each row with its one-hot label appended (features + classes columns; the estimator appends it),
so the one training loop carries labels without knowing of them: the encoder reads the whole row, the decoder
its codings with the label, and the reconstruction target is the row without the label. Dense only.
"""

from __future__ import annotations

import contextlib
from numbers import Real
from typing import Any

import numpy as np
import torch
from sklearn.utils._param_validation import Interval
from sklearn.utils.validation import check_array, check_is_fitted, column_or_1d

from ..data.binarize import bernoulli
from ..errors import DataError
from ..estimators.base import generator_from
from ..estimators.parts import Conv, Layers
from ..nn.layers import init_linear_, linear_layers
from ..params import Param
from ..registry import register_estimator, register_model
from .base import AEOutput
from .variational import VariationalAutoencoder, VariationalAutoencoderModule


@register_model("cvae")
class ConditionalVAEModule(VariationalAutoencoderModule):
    """The VAE with the one-hot label (the last ``n_classes`` columns of each row) fed to encoder and decoder."""

    def __init__(self, n_features: int, hidden_layers: list[int], latent_dim: int, n_classes: int = 2,
                 label_dropout: float = 0.0, init: str = "he", seed: int | None = None, **kwargs: Any) -> None:
        super().__init__(n_features, hidden_layers, latent_dim, init=init, seed=seed, **kwargs)
        c, generator = int(n_classes), torch.Generator().manual_seed(seed) if seed is not None else None
        self.config.update(n_classes=c, label_dropout=float(label_dropout))
        sizes = [int(n_features), *self.config["hidden_layers"]]
        self.encoder = linear_layers([sizes[0] + c, *sizes[1:]], init, generator)  # reads x and y
        self.mean = torch.nn.Linear(sizes[-1] + (c if len(sizes) == 1 else 0), int(latent_dim))
        self.logvar = torch.nn.Linear(self.mean.in_features, int(latent_dim))
        for head in (self.mean, self.logvar):
            init_linear_(head.weight, head.bias, "xavier", generator)
        self.decoder = linear_layers([int(latent_dim) + c, *reversed(sizes)], init, generator)  # reads z and y

    @property
    def n_inputs(self) -> int:
        """The width of a row as the model reads it: the features and the one-hot label."""
        return self.config["n_features"] + self.config["n_classes"]

    def with_label(self, rows: torch.Tensor) -> torch.Tensor:
        """Rows with their one-hot label (..., features + classes); rows of the features alone get no label (all
        zeros), so every tool that feeds a model plain rows (figures, exports) sees the unconditional model."""
        if rows.shape[-1] == self.config["n_features"]:
            rows = torch.cat([rows, rows.new_zeros(*rows.shape[:-1], self.config["n_classes"])], -1)
        return rows

    def split(self, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(the features, the one-hot label) of rows (..., features + classes) or (..., features)."""
        rows, f = self.with_label(rows), self.config["n_features"]
        return rows[..., :f], rows[..., f:]

    def encode_hidden(self, x: torch.Tensor) -> torch.Tensor:
        return super().encode_hidden(self.with_label(x))

    def variational_chain(self) -> None:
        return None

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encode_distribution(x)[0]

    def decode(self, codings: torch.Tensor) -> torch.Tensor:
        """Logits for codings with their one-hot labels (batch, latent + classes); codings alone (batch, latent)
        are decoded without a label."""
        if codings.shape[-1] == self.n_codings:
            codings = torch.cat([codings, codings.new_zeros(*codings.shape[:-1], self.config["n_classes"])], -1)
        return super().decode(codings)

    def decode_rows(self, z: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """The decoder's logits for codings ``z`` of ``rows`` (their labels condition it)."""
        return self.decode(torch.cat([z, self.split(rows)[1]], dim=-1))

    def target_of(self, rows: torch.Tensor) -> torch.Tensor:
        return self.split(rows)[0]

    def reconstruction_logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode_rows(self.encode(x), x)

    def forward(self, rows: torch.Tensor) -> AEOutput:
        x, y = self.split(rows)
        if self.training and self.config["dynamic_binarization"]:
            x = bernoulli(x)
        if self.training and self.config["label_dropout"]:  # some rows train the unconditional model
            keep = torch.rand(len(y), 1, device=y.device) >= self.config["label_dropout"]
            y = y * keep
        mu, logvar = self.encode_distribution(torch.cat([x, y], dim=1))
        z = self.reparameterize(mu, logvar)
        return AEOutput(self.decode(torch.cat([z, y], dim=1)), mu, self.output_activation,
                        terms=self.latent_terms(rows, mu, logvar, z), target=x, log_scale=self.log_scale)


@register_estimator("ConditionalVAE", cli="cvae")
class ConditionalVAE(VariationalAutoencoder):
    """A conditional VAE: ``fit(X, y)`` with class labels; every method that reads rows takes their labels too
    (``transform(X, y)``, ``predict(X, y)``, ``score(X, y)``, ``elbo(X, y)``, ``log_likelihood(X, y)``: log p(x |
    y)), and without them (``y=None``) uses the unconditional model that ``label_dropout`` > 0 trains;
    ``sample(n, y=None)`` draws images of the classes ``y`` (one label for all, or one per sample; None: the
    classes in turn); ``classes_`` holds the labels seen in ``fit``. Dense; otherwise the VAE's settings."""

    model_name = "cvae"
    conditional = True  # the command line passes the data set's labels
    own_params = (
        # 8 latent units: MNIST, 30 epochs, 96.3% of 1,000 samples judged the class asked for (20 units: 84.8%;
        # with the label known, fewer units leave the class to the label)
        *(p.replace(default=8) if p.name == "latent_dim" else p for p in VariationalAutoencoder.own_params),
        Param("label_dropout", 0.0, [Interval(Real, 0, 1, closed="left")],
              "Share of training rows whose label is hidden (the all-zero one-hot), so that the model also learns "
              "rows without labels (``transform(X)`` with no ``y``), as classifier-free guidance trains. 0 (the "
              "default): never, which conditions best (MNIST: 0.1 lowered the samples judged the class asked for "
              "from 96.3% to 93.6%); rows given without labels then meet an input the model never trained on.",
              type="float"),
    )
    parts = tuple(part for part in VariationalAutoencoder.parts if not isinstance(part, Conv))
    _labels: np.ndarray | None = None

    # -- labels ------------------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _given(self, y: Any):
        """Rows validated inside this block carry the labels ``y`` (None: no label, the all-zero one-hot)."""
        self._labels = None if y is None else column_or_1d(np.asarray(y), warn=True)
        try:
            yield
        finally:
            self._labels = None

    def _one_hot(self, y: np.ndarray | None, n: int) -> np.ndarray:
        out = np.zeros((n, len(self.classes_)), dtype=np.float32)
        if y is None:
            return out
        if len(y) != n:
            raise DataError(f"{n} rows but {len(y)} labels; give one label per row")
        index = np.searchsorted(self.classes_, y)
        known = (index < len(self.classes_)) & (self.classes_[np.minimum(index, len(self.classes_) - 1)] == y)
        if not known.all():
            raise DataError(f"labels {sorted(set(np.asarray(y)[~known].tolist()))[:5]} were not seen in fit (its "
                            f"classes: {self.classes_.tolist()[:10]})")
        out[np.arange(n), index] = 1.0
        return out

    def _validate(self, X: Any, reset: bool) -> np.ndarray:
        rows = super()._validate(X, reset)
        return np.hstack([rows, self._one_hot(self._labels, len(rows))])

    def _model_config(self, n_features: int) -> dict[str, Any]:
        c = len(self.classes_)
        return dict(n_features=n_features - c, hidden_layers=list(self.hidden_layers), latent_dim=self.latent_dim,
                    n_classes=c, label_dropout=self.label_dropout, activation=self.activation, init=Layers.resolved_init(self),
                    beta=self.beta,
                    output_activation=self._output_activation(), gaussian_decoder=self.loss_ == "gaussian",
                    dynamic_binarization=self.binarize_ == "dynamic", free_bits=self.free_bits)

    # -- the API with labels -----------------------------------------------------------------------------------
    def fit(self, X: Any, y: Any = None) -> ConditionalVAE:
        """Train on rows ``X`` with their class labels ``y`` (required)."""
        if y is None:
            raise DataError("a conditional VAE requires y to be passed, but the target y is None: fit(X, y) with "
                            "the rows' class labels")
        labels = column_or_1d(np.asarray(y), warn=True)
        if not (self.warm_start and hasattr(self, "model_")):
            self.classes_ = np.unique(labels)
        with self._given(labels):
            return super().fit(X)

    def check_fit(self, X: Any, y: Any = None) -> None:
        if y is None:
            raise DataError("a conditional VAE trains on labelled rows; these rows have no labels")
        fresh = not (self.warm_start and hasattr(self, "model_"))
        if fresh:
            self.classes_ = np.unique(column_or_1d(np.asarray(y), warn=True))
        try:
            with self._given(y):
                super().check_fit(X)
        finally:
            if fresh:
                del self.classes_

    def transform(self, X: Any, y: Any = None) -> np.ndarray:
        """Posterior means of rows ``X`` given their labels ``y`` (None: without labels)."""
        with self._given(y):
            return super().transform(X)

    def predict(self, X: Any, y: Any = None) -> np.ndarray:
        with self._given(y):
            return super().predict(X)

    def reconstruction_error(self, X: Any, y: Any = None) -> np.ndarray:
        with self._given(y):
            return super().reconstruction_error(X)

    def score_samples(self, X: Any, y: Any = None) -> np.ndarray:
        return -self.reconstruction_error(X, y)

    def score(self, X: Any, y: Any = None) -> float:
        return float(self.score_samples(X, y).mean())

    def inverse_transform(self, X: Any, y: Any = None) -> np.ndarray:
        """Decode codings (n, latent_dim) given labels ``y`` (one for all, one per row, or None: no label)."""
        check_is_fitted(self, "model_")
        codings = check_array(X, dtype=np.float32, order="C")
        if codings.shape[1] != self.latent_dim:
            raise DataError(f"codings have {codings.shape[1]} columns, but the coding layer has {self.latent_dim} "
                            "units")
        labels = None if y is None else np.full(len(codings), y) if np.ndim(y) == 0 else np.asarray(y)
        z = np.hstack([codings, self._one_hot(labels, len(codings))])
        return self._map(lambda c: self.model_.output(self.model_.decode(c)), z)

    def sample(self, n: int, y: Any = None, random_state: Any = None) -> np.ndarray:
        """``n`` samples decoded from prior draws, conditioned on ``y``: one label for all, ``n`` labels, or None
        (the classes in turn, ``classes_[i % n_classes]``: a grid of every class)."""
        check_is_fitted(self, "model_")
        if int(n) < 1:
            raise DataError(f"n must be >= 1 samples, got {n}")
        labels = np.resize(self.classes_, int(n)) if y is None else y
        z = self._draw_codings(int(n), generator_from(random_state)).numpy()  # the prior, or fit_sampler's mixture
        return self.inverse_transform(z, labels)

    def elbo(self, X: Any, y: Any = None, n_samples: int = 1, *, random_state: Any = None) -> np.ndarray:
        """The evidence lower bound of log p(x | y) per row (nats)."""
        with self._given(y):
            return super().elbo(X, n_samples, random_state=random_state)

    def log_likelihood(self, X: Any, y: Any = None, k: int = 5000, *, random_state: Any = None,
                       max_pairs: int = 16384) -> np.ndarray:
        """Importance-sampled log p(x | y) per row (nats)."""
        with self._given(y):
            return super().log_likelihood(X, k, random_state=random_state, max_pairs=max_pairs)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = True  # fit(X, y)
        return tags

    def _config(self) -> dict[str, Any]:
        config = super()._config()
        config["extra"] = {**config.get("extra", {}), "classes": self.classes_.tolist()}
        return config

    @classmethod
    def _from_checkpoint(cls, ckpt: Any, device: str | None = None) -> ConditionalVAE:
        est = super()._from_checkpoint(ckpt, device)
        est.classes_ = np.asarray(est.checkpoint_extra_["classes"])
        return est
