"""``aekit.Autoencoder``: stacked, tied or linear autoencoders as a scikit-learn transformer."""

from __future__ import annotations

from collections.abc import Callable
from numbers import Integral, Real
from typing import Any

import numpy as np
import torch
from sklearn.base import ClassNamePrefixFeaturesOutMixin, TransformerMixin, _fit_context
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_array, check_is_fitted

from ..errors import ConfigError, DataError
from ..data.corruption import parse_noise
from ..losses import Objective
from ..losses.penalties import Contractive, parse_sparsity
from ..losses.reconstruction import mse
from ..models.base import AEOutput, AutoencoderModule, build_model
from ..nn.conv import image_shape3
from ..nn.layers import ACTIVATIONS, INITS
from ..registry import register_estimator
from ..training import ReconstructionStep, make_optimizer, reconstruction_step
from ..training.distributed import distributed
from ..training.greedy import Phase, greedy_pretrain
from ..training.loop import Position
from .base import TRAINING_PARAMETERS, TorchEstimator


def _ints(value: Any) -> list[int]:
    return [int(v) for v in np.ravel(value)]


@register_estimator("Autoencoder")
class Autoencoder(ClassNamePrefixFeaturesOutMixin, TransformerMixin, TorchEstimator):
    """A stacked (deep) autoencoder: ``n_features - hidden_layers - mirror - n_features``, or a convolutional one
    (``arch="conv"``: conv encoder, transposed-convolution decoder).

    Parameters
    ----------
    hidden_layers : sequence of int, default=(300, 150)
        Sizes of the encoder's layers; the last is the coding layer. ``(300, 150)`` on MNIST gives
        784-300-150-300-784.
    activation : {"elu", "selu", "relu", "sigmoid", "tanh", "linear"}, default="elu"
        Hidden activation. ``"linear"`` with one hidden layer is a linear autoencoder (spans PCA's subspace).
    coding_activation : str or None, default=None
        Activation of the coding layer; None means ``activation`` (sigmoid when ``sparsity`` is KL).
    init : {"he", "lecun", "xavier"}, default="he"
    tie_weights : bool, default=False
        Decoder uses the encoder's weights transposed (own biases); halves the weights.
    output_activation : {"auto", "linear", "sigmoid"}, default="auto"
        ``"auto"`` is sigmoid for ``loss="bce"`` and linear for ``loss="mse"``.
    loss : {"mse", "bce"}, default="mse"
        Reconstruction loss; ``"bce"`` is cross-entropy from logits and needs X in [0, 1].
    l2 : float, default=0.0
        L2 on weight matrices (never biases): adds ``l2/2 * sum(W**2)`` (TF1's ``l2_regularizer``, the book's).
    noise : str or None, default=None
        Denoising: corrupt the inputs in training only, reconstruct the clean ones: ``"gaussian:STD"``,
        ``"dropout:RATE"`` (inverted dropout, the book's), ``"mask:RATE"`` (zeroing), ``"saltpepper:RATE"``.
    sparsity : str or None, default=None
        ``"kl:TARGET:WEIGHT"`` (KL between TARGET and each coding unit's batch-mean activation, summed over units)
        or ``"l1:WEIGHT"`` (L1 on the codings).
    contractive : float, str or None, default=None
        Weight of the squared Frobenius norm of d(codings)/d(inputs); ``"WEIGHT:METHOD"`` picks the method
        (auto, closed, exact, hutchinson; see :class:`aekit.losses.penalties.Contractive`).
    wta : float or None, default=None
        Winner-take-all lifetime sparsity rate: in training each coding unit keeps its top ``ceil(wta * batch)``
        activations across the batch. With ``arch="conv"`` and no ``coding_size`` it is spatial + lifetime
        (conv-WTA): each feature map keeps only its maximum per sample, then its ``ceil(wta * batch)`` largest
        maxima across the batch (``wta=1``: spatial sparsity alone). Identity at inference.
    optimizer : {"adam", "adamw", "sgd"}, default="adam"
    learning_rate : float, default=1e-3
    batch_size : int, default=150
    epochs : int, default=10
        Total epochs (with ``warm_start``, training continues until this many have run).
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of X; stop after ``patience`` epochs without improvement and keep
        the best weights.
    validation_fraction : float, default=0.1
    patience : int, default=10
    random_state : int, RandomState instance or None, default=None
        Seeds initialisation, shuffling and noise; an int makes a CPU run repeatable bit for bit.
    device : str, default="auto"
        "auto" (CUDA if available), "cpu", "cuda", "cuda:N".
    checkpoint_dir : str or None, default=None
        If set, a checkpoint folder is written there after every epoch (and every ``checkpoint_every`` batches,
        and on SIGINT/SIGTERM); ``aekit.load`` + ``warm_start`` resumes from the exact batch.
    checkpoint_every : int, default=0
        Also checkpoint every this many batches inside an epoch (0: at epoch ends only).
    warm_start : bool, default=False
        Continue training a fitted (or loaded) model instead of starting again.
    pretrain : {None, "greedy"}, default=None
        ``"greedy"``: train one layer pair at a time first (then ``fine_tune_epochs`` end-to-end epochs;
        ``epochs`` is then not used).
    greedy_strategy : {"phases", "separate"}, default="phases"
        ``"phases"``: one model, lower layers frozen; ``"separate"``: one shallow autoencoder per pair, stacked.
    phase_epochs, phase_batch_sizes, phase_learning_rates : sequence or None, default=None
        Per-phase settings (one value is used for every phase; None means ``epochs``, ``batch_size``,
        ``learning_rate``).
    cache_codings : bool, default=True
        Compute the frozen layers' outputs once per phase instead of at every batch.
    fine_tune_epochs : int, default=0
        End-to-end epochs after greedy pretraining.
    arch : {"dense", "conv"}, default="dense"
        ``"conv"``: convolutional encoder (``channels``, ``kernel_sizes``, ``strides``, ``pool_sizes``; padding
        ``kernel // 2``) and its mirror transposed-convolution decoder, whose padding is solved so that every size
        (odd ones included, e.g. 7x9) comes back exactly; ``hidden_layers`` and ``tie_weights`` are not used.
        Needs ``image_shape`` for flat rows, or images ``(n, C, H, W)`` / ``(n, H, W)`` as X.
    channels : sequence of int, default=(16, 32, 64)
        Conv only: output channels of each conv layer.
    kernel_sizes, strides, pool_sizes : int or sequence of int, default=3, 2, 1
        Conv only: per conv layer (one value applies to all). ``pool_sizes`` > 1 adds max-pooling after the conv;
        its mirror is one transposed convolution with stride ``stride * pool``.
    coding_size : int or None, default=None
        Conv only: a dense coding layer of this size over the last feature maps; None makes the flattened last
        maps the codings (as conv-WTA needs).
    image_shape : tuple or None, default=None
        Shape of one sample as an image, (H, W) or (C, H, W): for figures, and the input shape of a conv model
        fed flat rows (rows stay flat at the estimator's boundary).
    verbose : int, default=0
        Progress bar and one line per epoch when > 0.

    Attributes
    ----------
    model_ : torch.nn.Module
    history_ : list of dict
        One record per epoch: each loss term, ``val_*`` terms, ``l2``, ``time``.
    n_epochs_ : int
    n_features_in_ : int
    """

    _parameter_constraints: dict = {
        **TRAINING_PARAMETERS,
        "hidden_layers": ["array-like"],
        "activation": [StrOptions(set(ACTIVATIONS))],
        "coding_activation": [StrOptions(set(ACTIVATIONS)), None],
        "init": [StrOptions(set(INITS))],
        "noise": [str, None],
        "sparsity": [str, None],
        "contractive": [Interval(Real, 0, None, closed="left"), str, None],
        "wta": [Interval(Real, 0, 1, closed="right"), None],
        "tie_weights": ["boolean"],
        "output_activation": [StrOptions({"auto", "linear", "sigmoid"})],
        "loss": [StrOptions({"mse", "bce"})],
        "checkpoint_every": [Interval(Integral, 0, None, closed="left")],
        "pretrain": [StrOptions({"greedy"}), None],
        "greedy_strategy": [StrOptions({"phases", "separate"})],
        "phase_epochs": [Interval(Integral, 0, None, closed="left"), "array-like", None],
        "phase_batch_sizes": [Interval(Integral, 1, None, closed="left"), "array-like", None],
        "phase_learning_rates": [Interval(Real, 0, None, closed="neither"), "array-like", None],
        "cache_codings": ["boolean"],
        "fine_tune_epochs": [Interval(Integral, 0, None, closed="left")],
        "image_shape": ["array-like", None],
        "arch": [StrOptions({"dense", "conv"})],
        "channels": ["array-like"],
        "kernel_sizes": [Interval(Integral, 1, None, closed="left"), "array-like"],
        "strides": [Interval(Integral, 1, None, closed="left"), "array-like"],
        "pool_sizes": [Interval(Integral, 1, None, closed="left"), "array-like"],
        "coding_size": [Interval(Integral, 1, None, closed="left"), None],
    }
    # conv settings, as class attributes too: subclasses without them (VAE, hasher) are dense
    arch = "dense"
    channels = (16, 32, 64)
    kernel_sizes = 3
    strides = 2
    pool_sizes = 1
    coding_size = None

    def __init__(
        self,
        hidden_layers: tuple[int, ...] = (300, 150),
        *,
        activation: str = "elu",
        coding_activation: str | None = None,
        init: str = "he",
        tie_weights: bool = False,
        output_activation: str = "auto",
        loss: str = "mse",
        l2: float = 0.0,
        noise: str | None = None,
        sparsity: str | None = None,
        contractive: float | str | None = None,
        wta: float | None = None,
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
        pretrain: str | None = None,
        greedy_strategy: str = "phases",
        phase_epochs: tuple[int, ...] | None = None,
        phase_batch_sizes: tuple[int, ...] | None = None,
        phase_learning_rates: tuple[float, ...] | None = None,
        cache_codings: bool = True,
        fine_tune_epochs: int = 0,
        image_shape: tuple[int, ...] | None = None,
        arch: str = "dense",
        channels: tuple[int, ...] = (16, 32, 64),
        kernel_sizes: int | tuple[int, ...] = 3,
        strides: int | tuple[int, ...] = 2,
        pool_sizes: int | tuple[int, ...] = 1,
        coding_size: int | None = None,
        verbose: int = 0,
    ) -> None:
        self.hidden_layers = hidden_layers
        self.activation = activation
        self.coding_activation = coding_activation
        self.init = init
        self.tie_weights = tie_weights
        self.output_activation = output_activation
        self.loss = loss
        self.l2 = l2
        self.noise = noise
        self.sparsity = sparsity
        self.contractive = contractive
        self.wta = wta
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
        self.pretrain = pretrain
        self.greedy_strategy = greedy_strategy
        self.phase_epochs = phase_epochs
        self.phase_batch_sizes = phase_batch_sizes
        self.phase_learning_rates = phase_learning_rates
        self.cache_codings = cache_codings
        self.fine_tune_epochs = fine_tune_epochs
        self.image_shape = image_shape
        self.arch = arch
        self.channels = channels
        self.kernel_sizes = kernel_sizes
        self.strides = strides
        self.pool_sizes = pool_sizes
        self.coding_size = coding_size
        self.verbose = verbose

    # -- hooks for TorchEstimator --------------------------------------------------------------------------
    def _output_activation(self) -> str:
        if self.output_activation != "auto":
            return self.output_activation
        return "sigmoid" if self.loss == "bce" else "linear"

    def _build_model(self, n_features: int, seed: int) -> AutoencoderModule:
        coding_activation = self.coding_activation
        if coding_activation is None and str(self.sparsity or "").startswith("kl"):
            coding_activation = "sigmoid"  # KL sparsity compares mean activations in (0, 1) with the target
        if self.arch == "conv":
            return build_model("conv", {
                "image_shape": self._conv_image_shape(), "channels": _ints(self.channels),
                "kernel_sizes": _ints(self.kernel_sizes), "strides": _ints(self.strides),
                "pool_sizes": _ints(self.pool_sizes), "coding_size": self.coding_size, "activation": self.activation,
                "init": self.init, "output_activation": self._output_activation(),
                "coding_activation": coding_activation, "wta": self.wta, "n_features": n_features, "seed": seed})
        config = dict(n_features=n_features, hidden_layers=list(self.hidden_layers), activation=self.activation,
                      init=self.init, tie_weights=self.tie_weights, output_activation=self._output_activation(),
                      coding_activation=coding_activation, wta=self.wta)
        return build_model(self.model_name, {**config, "seed": seed})

    # -- images (arch="conv"): X may be images (n, C, H, W) or (n, H, W); the model takes flat rows -----------
    def _conv_image_shape(self) -> tuple[int, ...]:
        shape = getattr(self, "_fit_image_shape", None) or (
            None if self.image_shape is None else image_shape3(self.image_shape))
        if shape is None:
            raise DataError("arch='conv' needs the shape of one image: pass image_shape=(H, W) or (C, H, W) with "
                            "flat rows, or X as images of shape (n, C, H, W) or (n, H, W)")
        return shape

    def _validate(self, X: Any, reset: bool) -> np.ndarray:
        if self.arch == "conv":
            X = self._image_rows(X, reset)
        return super()._validate(X, reset)

    def _image_rows(self, X: Any, reset: bool) -> Any:
        """Image stacks as flat rows, after checking their shape against the model's; other X unchanged."""
        if reset:
            self._fit_image_shape = None
        ndim = getattr(X, "ndim", None)
        if ndim not in (3, 4):
            return X
        shape = image_shape3(X.shape[1:])
        if reset:
            expected = None if self.image_shape is None else image_shape3(self.image_shape)
        else:
            check_is_fitted(self, "model_")
            expected = tuple(self.model_.config["image_shape"])
        if expected is not None and shape != expected:
            raise DataError(f"X holds images of shape {tuple(X.shape[1:])}, but the model expects {expected} "
                            "(C, H, W), channels first; for (n, H, W, C) arrays use X.transpose(0, 3, 1, 2)")
        if reset:
            self._fit_image_shape = shape
        return np.asarray(X).reshape(len(X), -1)

    def _penalties(self) -> list:
        penalties = [parse_sparsity(self.sparsity)]
        if self.contractive:
            weight, _, method = str(self.contractive).partition(":")
            try:
                penalties.append(Contractive(float(weight), method or "auto"))
            except ValueError:
                raise ConfigError(f"contractive={self.contractive!r} is not understood; use a weight like 1e-3 or "
                                  "'WEIGHT:METHOD' with METHOD auto, closed, exact or hutchinson") from None
        return [p for p in penalties if p is not None]

    def _step(self, module: torch.nn.Module, params, regularized, learning_rate: float, loss: str,
              coding_layer: bool = True) -> ReconstructionStep:
        params = list(params)
        optimizer = make_optimizer(self.optimizer, params, regularized, learning_rate, self.l2)
        objective = Objective(loss, self._penalties() if coding_layer else ())
        return reconstruction_step(distributed(module, params), objective, optimizer, corrupt=parse_noise(self.noise))

    def _make_step(self, model: AutoencoderModule) -> ReconstructionStep:
        return self._step(model, model.parameters(), model.regularized_weights(), self.learning_rate, self.loss)

    # -- greedy layer-wise pretraining ---------------------------------------------------------------------
    def _phases(self) -> list[Phase]:
        n = self.model_.n_pairs if hasattr(self, "model_") else len(self.hidden_layers)

        def per_phase(values, default, name):
            values = [default] if values is None else list(np.ravel(values))
            if len(values) == 1:
                values = values * n
            if len(values) != n:
                layers = (f"channels={tuple(self.channels)}, coding_size={self.coding_size}" if self.arch == "conv"
                          else f"hidden_layers={tuple(self.hidden_layers)}")
                raise DataError(f"{name} has {len(values)} values, but the model has {n} layer pairs "
                                f"({layers}); give one value or {n}")
            return values

        return [Phase(int(e), int(b), float(lr)) for e, b, lr in zip(
            per_phase(self.phase_epochs, self.epochs, "phase_epochs"),
            per_phase(self.phase_batch_sizes, self.batch_size, "phase_batch_sizes"),
            per_phase(self.phase_learning_rates, self.learning_rate, "phase_learning_rates"))]

    def _pretrain(self, X: torch.Tensor, generator: torch.Generator, start: Position | None,
                  resume_optimizer: Callable[[torch.optim.Optimizer], None] | None,
                  on_checkpoint: Callable[[Any, Position], None], stop_requested: Callable[[], int]) -> None:
        if self.pretrain != "greedy":
            return
        self.shallow_autoencoders_ = greedy_pretrain(
            self.model_, X, strategy=self.greedy_strategy, phases=self._phases(), make_step=self._step,
            loss=self.loss, generator=generator, cache=self.cache_codings, seed=self.seed_, history=self.history_,
            progress=bool(self.verbose), start=start, resume_optimizer=resume_optimizer, on_checkpoint=on_checkpoint,
            checkpoint_every=self.checkpoint_every, stop_requested=stop_requested,
        )

    def _end_to_end_epochs(self) -> int:
        return self.fine_tune_epochs if self.pretrain == "greedy" else self.epochs

    def _record_extra(self) -> dict[str, Any] | None:
        return {"phase": "fine-tune"} if self.pretrain == "greedy" else None

    def _check_X(self, X: np.ndarray) -> None:
        parse_noise(self.noise)  # malformed specs fail before any training
        self._penalties()
        super()._check_X(X)

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X: Any, y: Any = None) -> Autoencoder:
        """Train the autoencoder on ``X`` (n_samples, n_features); ``y`` is ignored."""
        return super().fit(X, y)

    # -- using the result ----------------------------------------------------------------------------------
    @property
    def _n_features_out(self) -> int:
        return int(getattr(self.model_, "n_codings", None) or self.model_.config["hidden_layers"][-1])

    def transform(self, X: Any) -> np.ndarray:
        """Codings of ``X``: (n_samples, coding size)."""
        check_is_fitted(self, "model_")
        return self._map(self.model_.encode, self._validate(X, reset=False))

    def inverse_transform(self, X: Any) -> np.ndarray:
        """Decode codings (n_samples, coding size) to reconstructions (n_samples, n_features)."""
        check_is_fitted(self, "model_")
        codings = check_array(X, dtype=np.float32, order="C")
        if codings.shape[1] != self._n_features_out:
            raise DataError(f"codings have {codings.shape[1]} columns, but the coding layer has "
                            f"{self._n_features_out} units")
        return self._map(lambda z: self.model_.output(self.model_.decode(z)), codings)

    def predict(self, X: Any) -> np.ndarray:
        """Reconstructions of ``X``, in its shape (images give images)."""
        check_is_fitted(self, "model_")
        out = self._map(self.model_.reconstruct, self._validate(X, reset=False))
        return out.reshape(X.shape) if getattr(X, "ndim", 2) in (3, 4) else out

    def reconstruction_error(self, X: Any) -> np.ndarray:
        """Per-row mean squared reconstruction error (higher = more anomalous)."""
        check_is_fitted(self, "model_")
        X = self._validate(X, reset=False)
        model = self.model_

        def row_error(xb: torch.Tensor) -> torch.Tensor:
            return mse(AEOutput(model.decode(model.encode(xb)), xb, model.output_activation), xb, "none")

        return self._map(row_error, X)

    def score_samples(self, X: Any) -> np.ndarray:
        """Negative per-row reconstruction MSE: scikit-learn's convention, the lower the more abnormal."""
        return -self.reconstruction_error(X)

    def score(self, X: Any, y: Any = None) -> float:
        """Negative mean squared reconstruction error over all elements (higher is better)."""
        return float(self.score_samples(X).mean())

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float32"]
        return tags
