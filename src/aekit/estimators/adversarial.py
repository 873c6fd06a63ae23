"""``aekit.AdversarialAutoencoder``: the same estimator conventions as :class:`aekit.Autoencoder`, plus a
discriminator on the codings, a prior, and :meth:`sample` (decode prior samples)."""

from __future__ import annotations

from numbers import Integral, Real
from typing import Any

import numpy as np
from sklearn.utils._param_validation import Interval
from sklearn.utils.validation import check_is_fitted

from ..losses import Objective
from ..models.adversarial import parse_prior
from ..models.base import AutoencoderModule, build_model
from ..registry import register_estimator
from ..training import make_optimizer
from ..training.adversarial import AdversarialStep, OptimizerSet
from .autoencoder import Autoencoder
from .variational import _generator


ADVERSARIAL_BETAS = (0.5, 0.999)


@register_estimator("AdversarialAutoencoder")
class AdversarialAutoencoder(Autoencoder):
    """An adversarial autoencoder (Makhzani et al. 2016): a deterministic encoder whose codings a discriminator
    learns to tell from prior samples while the encoder learns to fool it; new data = decoded prior samples.

    Each batch makes three updates (see :class:`aekit.training.adversarial.AdversarialStep`): reconstruction
    (encoder + decoder; ``optimizer`` at ``learning_rate``), discriminator (``discriminator_learning_rate``) and
    generator (the encoder; ``generator_learning_rate``), the last two with Adam, beta1 = 0.5 (Radford et al.
    2016's setting for adversarial updates). ``history_`` records ``reconstruction``, ``discriminator``,
    ``generator`` and ``prior_accuracy`` (near 0.5 when the codings look like prior samples).

    Parameters beyond :class:`aekit.Autoencoder`'s
    ----------------------------------------------
    latent_dim : int, default=8
    discriminator_layers : sequence of int, default=(1000, 1000)
    prior : str, default="gaussian"
        ``"gaussian"``, ``"gaussian:STD"``, ``"mixture:K[:RADIUS[:STD]]"`` (K Gaussians on a circle in the first
        two coding dimensions; see :mod:`aekit.models.adversarial`).
    discriminator_learning_rate : float, default=1e-4
    generator_learning_rate : float, default=5e-4
        The two sides of the game need different speeds. On MNIST (784-1000-1000-8, batch 100, reconstruction Adam
        1e-3): with 1e-3 for all three (beta1 0.9) the two chase each other (discriminator loss ~3); with 1e-4 for
        both the discriminator wins (95% right after 30 epochs, codings no longer like the prior); 1e-4 / 5e-4 with
        beta1 0.5 holds the game at ~50% with codings' mean ~0 and std ~1 per dimension.
    loss : {"bce", "mse"}, default="bce"
        Reconstruction loss, averaged over features.
    """

    model_name = "aae"
    _parameter_constraints: dict = {
        **Autoencoder._parameter_constraints,
        "latent_dim": [Interval(Integral, 1, None, closed="left")],
        "discriminator_layers": ["array-like"],
        "prior": [str],
        "discriminator_learning_rate": [Interval(Real, 0, None, closed="neither")],
        "generator_learning_rate": [Interval(Real, 0, None, closed="neither")],
    }
    # Autoencoder options that do not apply to this family
    noise = sparsity = contractive = wta = pretrain = coding_activation = None
    tie_weights = False

    def __init__(
        self,
        hidden_layers: tuple[int, ...] = (1000, 1000),
        *,
        latent_dim: int = 8,
        discriminator_layers: tuple[int, ...] = (1000, 1000),
        prior: str = "gaussian",
        activation: str = "relu",
        init: str = "he",
        loss: str = "bce",
        l2: float = 0.0,
        optimizer: str = "adam",
        learning_rate: float = 1e-3,
        discriminator_learning_rate: float = 1e-4,
        generator_learning_rate: float = 5e-4,
        batch_size: int = 100,
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
        verbose: int = 0,
    ) -> None:
        self.hidden_layers = hidden_layers
        self.latent_dim = latent_dim
        self.discriminator_layers = discriminator_layers
        self.prior = prior
        self.activation = activation
        self.init = init
        self.loss = loss
        self.output_activation = "auto"
        self.l2 = l2
        self.optimizer = optimizer
        self.learning_rate = learning_rate
        self.discriminator_learning_rate = discriminator_learning_rate
        self.generator_learning_rate = generator_learning_rate
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
        self.verbose = verbose

    def _build_model(self, n_features: int, seed: int) -> AutoencoderModule:
        return build_model(self.model_name, dict(
            n_features=n_features, hidden_layers=list(self.hidden_layers), latent_dim=self.latent_dim,
            discriminator_layers=list(self.discriminator_layers), activation=self.activation, init=self.init,
            output_activation=self._output_activation(), prior=self.prior, seed=seed))

    def _check_X(self, X: np.ndarray) -> None:
        parse_prior(self.prior, self.latent_dim)  # a malformed prior fails before any training
        super()._check_X(X)

    def _make_step(self, model: AutoencoderModule) -> AdversarialStep:
        encoder = [p for layer in model.encoder for p in layer.parameters()]
        optimizers = OptimizerSet(
            autoencoder=make_optimizer(self.optimizer, model.autoencoder.parameters(), model.regularized_weights(),
                                       self.learning_rate, self.l2),
            discriminator=make_optimizer("adam", model.discriminator.parameters(), [],
                                         self.discriminator_learning_rate, betas=ADVERSARIAL_BETAS),
            generator=make_optimizer("adam", encoder, [], self.generator_learning_rate, betas=ADVERSARIAL_BETAS),
        )
        return AdversarialStep(model, Objective(self.loss), optimizers)

    @property
    def _n_features_out(self) -> int:
        return int(self.model_.config["latent_dim"])

    def sample(self, n: int, random_state: Any = None) -> np.ndarray:
        """``n`` new samples: prior draws, decoded (n, n_features); the decoder's outputs (pixel intensities)."""
        check_is_fitted(self, "model_")
        z = self.model_.prior.sample(n, generator=_generator(random_state))
        return self._map(lambda c: self.model_.output(self.model_.decode(c)), z.numpy())

    def sample_prior(self, n: int, random_state: Any = None) -> np.ndarray:
        """``n`` draws of the prior p(z), (n, latent_dim): compare them with ``transform(X)``."""
        check_is_fitted(self, "model_")
        return self.model_.prior.sample(n, generator=_generator(random_state)).numpy()

