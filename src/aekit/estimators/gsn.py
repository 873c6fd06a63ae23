"""``aekit.GSN``: a generative stochastic network (a denoising autoencoder trained with walkback, sampled by a
corruption-reconstruction Markov chain) with the same estimator conventions as :class:`aekit.Autoencoder`."""

from __future__ import annotations

import math
from numbers import Integral
from typing import Any

import numpy as np
import torch
from sklearn.utils._param_validation import Interval
from sklearn.utils.validation import check_is_fitted

from ..data.corruption import parse_noise
from ..errors import ConfigError, DataError
from ..losses import Objective
from ..models.base import AutoencoderModule, build_model
from ..registry import register_estimator
from ..training import ReconstructionStep, make_optimizer
from ..training.distributed import distributed
from .autoencoder import Autoencoder
from .variational import _generator


@register_estimator("GSN")
class GSN(Autoencoder):
    """A generative stochastic network (Bengio et al. 2013, 2014): a denoising autoencoder trained with walkback.

    Training corrupts each clean batch with ``noise``, then makes ``walkback`` corruption-reconstruction steps,
    each next input drawn from the previous reconstruction's output distribution; every reconstruction is scored
    against the clean input (``history_``: ``reconstruction`` for the first step, ``walkback`` for the sum of the
    others). :meth:`sample_chain` runs the chain that generates; :meth:`sample` keeps its last state.

    Parameters beyond :class:`aekit.Autoencoder`'s
    ----------------------------------------------
    noise : str, default="saltpepper:0.4"
        The chain's corruption C(x~ | x) (see :mod:`aekit.data.corruption`); required.
    walkback : int, default=3
        Corruption-reconstruction steps per training batch (1: a plain denoising autoencoder).
    loss : {"bce", "mse"}, default="bce"
        Bernoulli outputs (X in [0, 1]) or Gaussian outputs.
    """

    model_name = "gsn"
    _parameter_constraints: dict = {
        **Autoencoder._parameter_constraints,
        "noise": [str],
        "walkback": [Interval(Integral, 1, None, closed="left")],
    }
    # Autoencoder options that do not apply to this family
    sparsity = contractive = wta = pretrain = None

    def __init__(
        self,
        hidden_layers: tuple[int, ...] = (2000,),
        *,
        noise: str = "saltpepper:0.4",
        walkback: int = 3,
        activation: str = "tanh",
        coding_activation: str | None = None,
        init: str = "xavier",
        tie_weights: bool = False,
        loss: str = "bce",
        l2: float = 0.0,
        optimizer: str = "adam",
        learning_rate: float = 1e-3,
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
        self.noise = noise
        self.walkback = walkback
        self.activation = activation
        self.coding_activation = coding_activation
        self.init = init
        self.tie_weights = tie_weights
        self.loss = loss
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
        self.verbose = verbose

    def _build_model(self, n_features: int, seed: int) -> AutoencoderModule:
        return build_model(self.model_name, dict(
            n_features=n_features, hidden_layers=list(self.hidden_layers), activation=self.activation,
            init=self.init, tie_weights=self.tie_weights, output_activation=self._output_activation(),
            coding_activation=self.coding_activation, noise=self.noise, walkback=self.walkback, loss=self.loss,
            seed=seed))

    def _check_X(self, X: np.ndarray) -> None:
        if parse_noise(self.noise) is None:
            raise ConfigError("a GSN needs a corruption to walk with: noise='saltpepper:0.4', 'gaussian:0.5', ...")
        super()._check_X(X)

    def _make_step(self, model: AutoencoderModule) -> ReconstructionStep:
        optimizer = make_optimizer(self.optimizer, model.parameters(), model.regularized_weights(),
                                   self.learning_rate, self.l2)
        return ReconstructionStep(distributed(model), Objective(self.loss), optimizer)  # corrupts inside

    # -- generating ----------------------------------------------------------------------------------------
    def _output_std(self) -> float:
        """The Gaussian output's standard deviation for ``loss="mse"``: the root of the last epoch's denoising
        MSE (the maximum-likelihood scale of P(x | x~)); 0 for Bernoulli outputs."""
        if self.loss != "mse":
            return 0.0
        last = self.history_[-1] if self.history_ else {}
        return math.sqrt(last.get("reconstruction", 0.0))

    def sample_chain(self, n: int, steps: int = 100, *, start: Any = None, random_state: Any = None) -> np.ndarray:
        """Run ``n`` chains for ``steps`` steps (corrupt, reconstruct, draw from the output distribution) and
        return every step's reconstruction means: (steps, n, n_features).

        ``start``: (n, n_features) initial states; default uniform noise in [0, 1].
        """
        return self._run_chains(n, steps, start, random_state, every_step=True)

    def sample(self, n: int, steps: int = 100, *, random_state: Any = None) -> np.ndarray:
        """``n`` samples: the last reconstruction means of ``n`` chains run for ``steps`` steps, (n, n_features)
        (only the current state is kept: memory does not grow with ``steps``)."""
        return self._run_chains(n, steps, None, random_state, every_step=False)

    def _run_chains(self, n: int, steps: int, start: Any, random_state: Any, every_step: bool) -> np.ndarray:
        check_is_fitted(self, "model_")
        if steps < 1 or n < 1:
            raise DataError(f"n and steps must be >= 1, got n={n}, steps={steps}")
        generator = _generator(random_state)
        if start is None:
            x = torch.rand(n, self.n_features_in_, generator=generator)
        else:
            x = torch.from_numpy(self._validate(start, reset=False))
            if len(x) != n:
                raise DataError(f"start has {len(x)} rows, but n={n} chains were asked for")
        self.model_.eval()
        devices = [self.device_] if self.device_.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(int(torch.randint(2**31 - 1, (), generator=generator)))
            kept = []
            for mean in self.model_.chain(x.to(self.device_), steps, self._output_std()):
                if every_step:
                    kept.append(mean.cpu())
                else:
                    kept = [mean.cpu()]
        return torch.stack(kept).numpy() if every_step else kept[-1].numpy()

