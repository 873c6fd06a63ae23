"""``aekit.VariationalAutoencoder``: the same estimator conventions as :class:`aekit.Autoencoder`, plus
``latent_dim``, ``beta``, ``binarize``, :meth:`sample`, :meth:`interpolate`, :meth:`log_likelihood` (importance
sampling) and :meth:`elbo`."""

from __future__ import annotations

from numbers import Integral, Real
from typing import Any

import numpy as np
import torch
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from ..data.binarize import binarize as binarize_array
from ..errors import DataError
from ..losses import Objective
from ..models.base import AutoencoderModule, build_model
from ..registry import register_estimator
from ..training import ReconstructionStep, make_optimizer, reconstruction_step
from ..training.distributed import distributed
from .autoencoder import Autoencoder, _ints


@register_estimator("VariationalAutoencoder")
class VariationalAutoencoder(Autoencoder):
    """A dense variational autoencoder (Gaussian encoder; Bernoulli decoder with BCE from logits by default).

    The loss per image is the negative ELBO: reconstruction cross-entropy summed over pixels plus ``beta`` times
    the analytic KL to N(0, I) (book: 784-500-500-20, ELU, He, Adam 1e-3, batch 150, ~97.6 nats after 50 epochs).
    ``transform`` gives the posterior means; ``sample(n)`` decodes codings drawn from the prior.

    Parameters beyond :class:`aekit.Autoencoder`'s
    ----------------------------------------------
    latent_dim : int, default=20
    beta : float, default=1.0
        Weight of the KL term (1: the ELBO; beta-VAE otherwise).
    loss : {"bce", "gaussian", "mse"}, default="bce"
        The decoder: ``"bce"`` Bernoulli (sigmoid outputs; X in [0, 1]); ``"gaussian"`` Gaussian with linear
        means and one learned standard deviation; ``"mse"`` the summed squared error (no density: no
        :meth:`log_likelihood`).
    binarize : {None, "static", "dynamic"}, default=None
        Train on binarized X: ``"static"`` one fixed Bernoulli draw (seeded by ``random_state``), ``"dynamic"`` a
        fresh draw per batch (Burda et al. 2015). Evaluate on a statically binarized copy,
        ``aekit.data.binarize(X_test, seed)``.
    arch : {"dense", "conv"}, default="dense"
        ``"conv"``: a convolutional encoder (``channels``, ``kernel_sizes``, ``strides``, ``pool_sizes``, as in
        :class:`aekit.Autoencoder`) before the dense ``hidden_layers`` (which may be empty) and the Gaussian
        heads; the decoder mirrors it with transposed convolutions. Needs ``image_shape`` for flat rows.
    channels : sequence of int, default=(32, 64)
    kernel_sizes, strides, pool_sizes : int or sequence of int, default=3, 2, 1
    """

    model_name = "vae"
    _parameter_constraints: dict = {
        **Autoencoder._parameter_constraints,
        "latent_dim": [Interval(Integral, 1, None, closed="left")],
        "beta": [Interval(Real, 0, None, closed="left")],
        "loss": [StrOptions({"bce", "gaussian", "mse"})],
        "binarize": [StrOptions({"static", "dynamic"}), None],
    }
    coding_size = None  # the codings are the latent_dim means
    # Autoencoder options that do not apply to this family
    noise = sparsity = contractive = wta = pretrain = coding_activation = None
    tie_weights = False

    def __init__(
        self,
        hidden_layers: tuple[int, ...] = (500, 500),
        *,
        latent_dim: int = 20,
        beta: float = 1.0,
        activation: str = "elu",
        init: str = "he",
        loss: str = "bce",
        binarize: str | None = None,
        l2: float = 0.0,
        optimizer: str = "adam",
        learning_rate: float = 1e-3,
        batch_size: int = 150,
        epochs: int = 10,
        early_stopping: bool = False,
        validation_fraction: float = 0.1,
        patience: int = 10,
        random_state: Any = None,
        device: str = "auto",
        checkpoint_dir: str | None = None,
        checkpoint_every: int = 0,
        warm_start: bool = False,
        image_shape: tuple[int, ...] | None = None,
        arch: str = "dense",
        channels: tuple[int, ...] = (32, 64),
        kernel_sizes: int | tuple[int, ...] = 3,
        strides: int | tuple[int, ...] = 2,
        pool_sizes: int | tuple[int, ...] = 1,
        verbose: int = 0,
    ) -> None:
        self.hidden_layers = hidden_layers
        self.latent_dim = latent_dim
        self.beta = beta
        self.activation = activation
        self.init = init
        self.loss = loss
        self.binarize = binarize
        self.output_activation = "auto"
        self.l2 = l2
        self.optimizer = optimizer
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.epochs = epochs
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.patience = patience
        self.random_state = random_state
        self.device = device
        self.checkpoint_dir = checkpoint_dir
        self.checkpoint_every = checkpoint_every
        self.warm_start = warm_start
        self.image_shape = image_shape
        self.arch = arch
        self.channels = channels
        self.kernel_sizes = kernel_sizes
        self.strides = strides
        self.pool_sizes = pool_sizes
        self.verbose = verbose

    def _build_model(self, n_features: int, seed: int) -> AutoencoderModule:
        conv = {}
        if self.arch == "conv":
            conv = {"image_shape": self._conv_image_shape(), "channels": _ints(self.channels),
                    "kernel_sizes": _ints(self.kernel_sizes), "strides": _ints(self.strides),
                    "pool_sizes": _ints(self.pool_sizes)}
        return build_model(self.model_name, dict(
            n_features=n_features, hidden_layers=list(self.hidden_layers), latent_dim=self.latent_dim,
            activation=self.activation, init=self.init, output_activation=self._output_activation(), beta=self.beta,
            gaussian_decoder=self.loss == "gaussian", dynamic_binarization=self.binarize == "dynamic", seed=seed,
            **conv))

    def _output_activation(self) -> str:
        return "sigmoid" if self.loss == "bce" else "linear"

    def _check_X(self, X: np.ndarray) -> None:
        super()._check_X(X)
        if self.binarize and (X.min() < 0 or X.max() > 1):
            raise DataError(f"binarize={self.binarize!r} needs X in [0, 1] (intensities as probabilities), but X "
                            f"ranges over [{X.min():.3g}, {X.max():.3g}]; scale it first (e.g. MinMaxScaler)")

    def _fit_model(self, X: np.ndarray, Y: np.ndarray | None = None) -> None:
        if self.binarize == "static":  # one draw, the same on every (re)start of this run
            X = binarize_array(X, seed=self.seed_)
        super()._fit_model(X, Y)

    def _make_step(self, model: AutoencoderModule) -> ReconstructionStep:
        optimizer = make_optimizer(self.optimizer, model.parameters(), model.regularized_weights(),
                                   self.learning_rate, self.l2)
        # per-image sums: the loss is the negative ELBO in nats
        return reconstruction_step(distributed(model), Objective(self.loss, reduction="sum"), optimizer)

    @property
    def _n_features_out(self) -> int:
        return int(self.model_.config["latent_dim"])

    def sample(self, n: int, random_state: Any = None) -> np.ndarray:
        """``n`` new samples: codings drawn from N(0, I), decoded (n, n_features); the decoder's means (pixel
        probabilities for the Bernoulli decoder)."""
        check_is_fitted(self, "model_")
        z = torch.randn(n, self._n_features_out, generator=_generator(random_state)).to(self.device_)
        return self._map(lambda c: self.model_.output(self.model_.decode(c)), z.cpu().numpy())

    def interpolate(self, a: Any, b: Any, steps: int = 10) -> np.ndarray:
        """Decode ``steps`` codings evenly spaced on the segment between the posterior means of ``a`` and ``b``
        (both ends included): (steps, n_features) for two rows, (n, steps, n_features) for two (n, n_features)
        arrays."""
        check_is_fitted(self, "model_")
        if steps < 2:
            raise DataError(f"steps must be >= 2 (both ends are included), got {steps}")
        single = np.ndim(a) == 1
        A, B = (self._validate(np.atleast_2d(v), reset=False) for v in (a, b))
        if A.shape != B.shape:
            raise DataError(f"a and b must have the same shape, got {A.shape} and {B.shape}")
        za, zb = self.transform(A), self.transform(B)  # (n, latent) each
        t = np.linspace(0.0, 1.0, steps, dtype=np.float32)[None, :, None]
        path = ((1 - t) * za[:, None] + t * zb[:, None]).reshape(-1, za.shape[1])  # (n * steps, latent)
        out = self.inverse_transform(path).reshape(len(A), steps, -1)
        return out[0] if single else out

    def log_likelihood(self, X: Any, k: int = 5000, *, random_state: Any = None,
                       max_pairs: int = 16384) -> np.ndarray:
        """Importance-sampled log p(x) per row in nats (Burda et al. 2015, encoder as the proposal; ``k``
        samples per row; see :func:`aekit.evaluation.importance_log_likelihood`). Memory is bounded by
        ``max_pairs`` (row, sample) pairs per pass. -mean is the test NLL; with binarized training, pass binarized
        rows (``aekit.data.binarize``)."""
        from ..evaluation import importance_log_likelihood

        check_is_fitted(self, "model_")
        X = self._validate(X, reset=False)
        ll = importance_log_likelihood(self.model_, self._to_tensor(X), int(k), loss=self.loss, max_pairs=max_pairs,
                                       generator=_generator(random_state))
        return ll.cpu().numpy()

    def elbo(self, X: Any, n_samples: int = 1, *, random_state: Any = None) -> np.ndarray:
        """The evidence lower bound per row (nats): Monte Carlo reconstruction term over ``n_samples`` codings,
        analytic KL. ``-elbo(X).mean()`` is the test loss of a beta = 1 model."""
        from ..evaluation import elbo

        check_is_fitted(self, "model_")
        X = self._validate(X, reset=False)
        return elbo(self.model_, self._to_tensor(X), n_samples, loss=self.loss,
                    generator=_generator(random_state)).cpu().numpy()


def _generator(random_state: Any) -> torch.Generator:
    """A CPU generator seeded from ``random_state`` (None: fresh entropy, as scikit-learn)."""
    seed = int(check_random_state(random_state).randint(np.iinfo(np.int32).max))
    return torch.Generator().manual_seed(seed)
