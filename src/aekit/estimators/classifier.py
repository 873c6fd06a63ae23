"""``aekit.PretrainedClassifier``: unsupervised pretraining as a scikit-learn classifier (Géron ch. 15, "Unsupervised
pretraining"; Erhan et al. 2010; Vincent et al. 2010).

An autoencoder trained on all the data (labelled or not) gives its encoder layers to a classifier; a softmax head
(with optional hidden layers) is trained on the labelled rows, the pretrained layers frozen or fine-tuned. Rows
whose label is ``-1`` are unlabelled (scikit-learn's semi-supervised convention; ``unlabelled=None`` turns it off):
they are used to pretrain the autoencoder only.
"""

from __future__ import annotations

import os
from numbers import Integral, Real
from typing import Any

import numpy as np
import torch
from scipy.special import softmax
from sklearn.base import ClassifierMixin, _fit_context, clone
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from ..device import resolve_device
from ..errors import CheckpointError, ConfigError, DataError
from ..io import Checkpoint
from ..models.base import build_model
from ..models.classifier import EncoderClassifier, ModelSuffix, encoder_spec
from ..params import Flag, Param, word_or_int
from ..registry import register_estimator
from ..training import make_optimizer, threads
from ..training.classification import ClassificationStep
from ..training.distributed import distributed
from ..training.loop import History
from .base import TorchEstimator, _jsonable, load
from .parts import Training, int_list


#: the autoencoder ``autoencoder_params=None`` pretrains: docs/results.md's few-labels recipe (``aekit experiment
#: few-labels``' defaults), which beat training from scratch at every label fraction, on every seed
PRETRAINING: dict[str, Any] = {"hidden_layers": (300, 150), "activation": "elu", "init": "he", "noise": "mask:0.3",
                               "loss": "auto", "epochs": 15}  # auto: BCE for X in [0, 1] (the recipe's), else MSE


_freeze_flag = word_or_int({"all": "all", "none": "none"}, "the number of frozen layers")  # --freeze


def _labelled_rows(y: np.ndarray, unlabelled: Any) -> np.ndarray:
    """Boolean mask of the rows whose label is not the marker ``unlabelled`` (None: every row is labelled)."""
    if unlabelled is None:
        return np.ones(len(y), dtype=bool)
    if y.dtype.kind in "iufO" or (y.dtype.kind in "US" and isinstance(unlabelled, str)):
        return np.asarray(y != unlabelled, dtype=bool)
    return np.ones(len(y), dtype=bool)  # e.g. string labels with the marker -1


def _described(est: Any, **more: Any) -> dict[str, Any]:
    """An autoencoder estimator's class and parameters, as JSON (where the classifier's encoder came from)."""
    params = {k: _jsonable(v) for k, v in est.get_params(deep=False).items()}
    return {"estimator": type(est).__name__, "params": params, **more}


@register_estimator("PretrainedClassifier")
class PretrainedClassifier(ClassifierMixin, TorchEstimator):
    """A classifier whose lower layers are a (denoising, stacked, ...) autoencoder's encoder.

    ``n_features - encoder layers - hidden_layers - n_classes`` (softmax). The encoder layers get the
    autoencoder's weights and activations (``pretrain=True``) or the same shapes from a random init
    (``pretrain=False``: the from-scratch baseline with the identical network).

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
    model_ : aekit.models.classifier.EncoderClassifier
    autoencoder_ : aekit.Autoencoder
        The autoencoder fitted by :meth:`fit` (only when it pretrained one; not saved in checkpoints).
    encoder_source_ : dict
        Where the encoder layers came from (saved with the checkpoint).
    n_frozen_ : int
        Number of lower encoder layers kept fixed.
    history_ : list of dict
        One record per epoch: ``loss`` (cross-entropy), ``accuracy``, ``val_*``, ``l2``, ``time``.
    n_epochs_ : int
    n_features_in_ : int
    """

    model_name = "classifier"

    positional = ("autoencoder",)
    own_params = (
        Param("autoencoder", None, [None, str, os.PathLike, HasMethods(["fit", "transform"])],
              "Where the encoder comes from: a fitted autoencoder (its weights are copied, never changed); an "
              "unfitted one (a copy is fitted on all rows of ``X``, labelled or not); a checkpoint folder written by "
              ":meth:`aekit.Autoencoder.save` or ``aekit train``; or None: an "
              "``aekit.Autoencoder(**autoencoder_params)`` is fitted on all rows of ``X``. An autoencoder that is "
              "already fitted never sees the unlabelled rows. scikit-learn's ``clone`` (``GridSearchCV``, "
              "``cross_val_score``) unfits an estimator parameter, so each clone would pretrain its own copy: pass a "
              "checkpoint folder to reuse one autoencoder everywhere.",
              type="aekit.Autoencoder, str, path or None", flag=Flag("--encoder", parse=str, metavar="RUN")),
        Param("autoencoder_params", None, [dict, None],
              "Parameters of the autoencoder pretrained when ``autoencoder=None``, e.g. ``{\"hidden_layers\": "
              "(64, 32)}`` (``{}``: ``aekit.Autoencoder()``'s defaults). None: the recipe that won in "
              "docs/results.md (``PRETRAINING``: a denoising 784-300-150 autoencoder, ELU, He, 30% masking noise, "
              "BCE (MSE for X outside [0, 1]), 15 epochs; fine-tuned with 1% of MNIST's labels it scored 89.0% against 86.1% from scratch, "
              "5 seeds). Its ``random_state``, ``device`` and ``precision`` default to this classifier's.",
              type="dict or None", flag=None),
        Param("pretrain", True, ["boolean"],
              "False: no autoencoder is trained or copied; the encoder layers start from a random init (the same "
              "architecture trained from scratch, the baseline).", flag=Flag("--scratch", action="store_false")),
        Param("freeze", "none", [StrOptions({"none", "all"}), Interval(Integral, 0, None, closed="left")],
              "Pretrained layers kept fixed: none (fine-tune everything), all encoder layers, or the lower ``k``. "
              "Frozen layers are left out of the optimizer and their outputs are computed once for the training set "
              "and cached.", type="{'none', 'all'} or int", flag=Flag(parse=_freeze_flag)),
        Param("hidden_layers", (), ["array-like"],
              "Hidden layers of the head between the encoder and the softmax output (the encoder's activation).",
              type="sequence of int", flag=Flag("--hidden", parse=int_list)),
        Param("dropout", 0.0, [Interval(Real, 0, 1, closed="left")],
              "Dropout rate on the outputs of the trained hidden layers (and of the frozen block), in training "
              "only.", type="float"),
        Param("steps", 2000, [Interval(Integral, 1, None, closed="left")],
              "The training budget in gradient steps when ``epochs`` is None (rounded up to whole epochs over the "
              "labelled rows), so that 1% of the labels gets as many updates as all of them.", type="int"),
        Param("unlabelled", -1, [Integral, str, None],
              "The label that marks unlabelled rows (scikit-learn's semi-supervised convention is -1); None: every "
              "row is labelled, so -1 can be a class.", type="int, str or None", flag=None),
    )
    parts = (Training(batch_size=64, epochs=Param(
        "epochs", None, [Interval(Integral, 0, None, closed="left"), None],
        "Epochs over the labelled rows (with ``warm_start``: in total); None: as many as make ``steps`` gradient "
        "steps, whatever the number of labels (75 labels and the old default of 20 epochs gave 40 steps and 0.53 "
        "accuracy on digits).", type="int or None", flag=Flag(parse=word_or_int({"none": None}, "epochs"),
                                                            metavar="N|none"))),)

    # -- the encoder ---------------------------------------------------------------------------------------
    def _source_autoencoder(self, X: np.ndarray) -> torch.nn.Module:
        """The autoencoder module whose encoder is reused (pretrained here on all rows of ``X`` if need be); with
        ``pretrain=False`` only its architecture matters and nothing is trained. Sets ``encoder_source_``."""
        ae = self.autoencoder
        if isinstance(ae, (str, os.PathLike)):
            est = load(ae, device="cpu")
            module = getattr(est, "model_", None)
            self.encoder_source_ = {"checkpoint": os.fspath(ae), "estimator": type(est).__name__}
            return module
        if ae is None:
            from ..models.autoencoder import Autoencoder

            ae = Autoencoder(**(PRETRAINING if self.autoencoder_params is None else self.autoencoder_params))
        elif self.autoencoder_params:
            raise ConfigError("autoencoder_params applies only with autoencoder=None; set the parameters on the "
                              "autoencoder you pass instead")
        if hasattr(ae, "model_"):  # fitted: used as it is
            self.encoder_source_ = _described(ae, fitted_by="caller")
            return ae.model_
        ae = clone(ae)
        params = ae.get_params()
        overrides = {"random_state": self.seed_ if params.get("random_state", 0) is None else None,
                     "device": self.device if params.get("device") == "auto" else None,
                     "precision": self.precision if params.get("precision") == "32-true" else None,
                     "verbose": self.verbose if "verbose" in params and not params["verbose"] else None}
        ae.set_params(**{k: v for k, v in overrides.items() if v is not None})
        if not self.pretrain:  # the architecture only: the baseline never sees the autoencoder's training
            self.encoder_source_ = _described(ae, fitted_by=None)
            ae._resolve(X)  # the settings fit would decide from the rows (loss="auto", ...), without training
            return ae._build_model(X.shape[1], self.seed_)
        self.autoencoder_ = ae.fit(X)
        self.encoder_source_ = _described(ae, fitted_by="PretrainedClassifier.fit", n_samples=len(X))
        return ae.model_

    def _build(self, X: np.ndarray) -> EncoderClassifier:
        source = self._source_autoencoder(X)
        spec = encoder_spec(source)
        if spec["n_features"] != X.shape[1]:
            raise DataError(f"X has {X.shape[1]} features, but the autoencoder's encoder expects {spec['n_features']}")
        init = getattr(source, "config", {}).get("init", "he")
        model = build_model(self.model_name, {**spec, "n_classes": len(self.classes_), "init": init,
                                              "hidden_layers": [int(h) for h in self.hidden_layers],
                                              "dropout": float(self.dropout), "seed": self.seed_})
        if self.pretrain:
            model.load_encoder(source)
        else:
            self.encoder_source_ = {**self.encoder_source_, "weights": "random init (pretrain=False)"}
        return model.to(self.device_)

    def _n_frozen(self) -> int:
        n = self.model_.n_encoder_layers
        if self.freeze == "none":
            return 0
        if self.freeze == "all":
            return n
        if int(self.freeze) > n:
            raise ConfigError(f"freeze={self.freeze}, but the encoder has only {n} layers; use 0..{n}, 'none' or 'all'")
        return int(self.freeze)

    # -- fitting -------------------------------------------------------------------------------------------
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X: Any, y: Any) -> PretrainedClassifier:
        """Pretrain (unless given a fitted autoencoder) on all rows of ``X``, then train the classifier on the rows
        whose label ``y`` is not ``unlabelled`` (-1)."""
        resume = bool(self.warm_start) and hasattr(self, "model_")
        X, y = validate_data(self, X, y, dtype=np.float32, order="C", reset=not resume)
        check_classification_targets(y)
        labelled = _labelled_rows(y, self.unlabelled)
        if not labelled.any():
            raise DataError(f"no labelled rows: all {len(y)} labels are {self.unlabelled!r} (unlabelled); label some "
                            "rows")
        if resume:
            known = np.isin(y[labelled], self.classes_)
            if not known.all():
                raise DataError(f"warm_start: labels {np.unique(y[labelled][~known])[:5].tolist()} are not among "
                                f"the classes the model was fitted on ({self.classes_.tolist()}); refit from scratch")
        else:
            classes = np.unique(y[labelled])
            if len(classes) < 2:
                raise DataError(f"a classifier needs samples of at least 2 classes, but the labelled rows hold only "
                                f"1 class ({classes[0]!r})")
            self.classes_ = classes
            self.device_ = resolve_device(self.device)
            self.seed_ = int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))
            self.model_ = self._build(X)
            self.history_: History = []
            self.n_epochs_ = 0
            self._train_state: dict[str, torch.Tensor] = {}
            self._state_meta: dict[str, str] = {}
        self._fit_labelled(X[labelled], np.searchsorted(self.classes_, y[labelled]))
        return self

    def _fit_labelled(self, X: np.ndarray, y: np.ndarray) -> None:
        model = self.model_
        self._n_labelled = len(X)
        self.n_frozen_ = k = self._n_frozen()
        model.freeze(k)
        # the frozen block's outputs, computed once for the training set (k = 0: the inputs themselves)
        features = self._map(lambda xb: model.encode_prefix(xb, k), X) if k else X
        with threads.using(self._threads()):
            self._fit_model(features, np.asarray(y, dtype=np.int64))  # targets: class indices

    def _end_to_end_epochs(self) -> int:
        if self.epochs is not None:
            return self.epochs
        from ..experiments import epochs_for_steps

        return epochs_for_steps(self._n_labelled, self.batch_size, self.steps)

    def _make_step(self, model: EncoderClassifier) -> ClassificationStep:
        trainee = ModelSuffix(model, self.n_frozen_)  # the layers above the frozen block
        params = list(trainee.parameters())
        optimizer = make_optimizer(self.optimizer, params, trainee.regularized_weights(), self.learning_rate, self.l2,
                                   clip_grad_norm=self.clip_grad_norm)
        return ClassificationStep(distributed(trainee, params), optimizer, self._precision())

    # -- using the result ----------------------------------------------------------------------------------
    def _logits(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "model_")
        return self._map(self.model_, self._validate(X, reset=False))  # (n, n_classes) float32

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities (n_samples, n_classes), columns in the order of ``classes_``."""
        return softmax(self._logits(X).astype(np.float64), axis=1)

    def predict(self, X: Any) -> np.ndarray:
        """The most probable class of each row."""
        logits = self._logits(X)
        return self.classes_[logits.argmax(axis=1)]

    def encode(self, X: Any) -> np.ndarray:
        """The encoder's codings of ``X`` (after any fine-tuning): (n_samples, coding size). Named ``encode``, not
        ``transform``, so the classifier is not taken for a transformer."""
        check_is_fitted(self, "model_")
        n = self.model_.n_encoder_layers
        return self._map(lambda xb: self.model_.encode_prefix(xb, n), self._validate(X, reset=False))

    # -- persistence: classes and provenance travel in the checkpoint's config --------------------------------
    def _config(self) -> dict[str, Any]:
        config = super()._config()
        config["params"]["autoencoder_params"] = (None if self.autoencoder_params is None else
                                                  {str(k): _jsonable(v) for k, v in self.autoencoder_params.items()})
        config["extra"] = {**config["extra"], "classes": self.classes_.tolist(),
                           "classes_dtype": self.classes_.dtype.str, "encoder_source": self.encoder_source_,
                           "n_frozen": int(getattr(self, "n_frozen_", 0))}
        return config

    @classmethod
    def _from_checkpoint(cls, ckpt: Checkpoint, device: str | None = None) -> PretrainedClassifier:
        est = super()._from_checkpoint(ckpt, device)
        extra = est.checkpoint_extra_
        try:
            est.classes_ = np.asarray(extra["classes"], dtype=np.dtype(extra["classes_dtype"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(f"checkpoint config lacks the classifier's classes: {exc}") from None
        if len(est.classes_) != est.model_.config["n_classes"]:
            raise CheckpointError(f"checkpoint lists {len(est.classes_)} classes, its model has "
                                  f"{est.model_.config['n_classes']} outputs")
        est.encoder_source_ = extra.get("encoder_source", {})
        est.n_frozen_ = int(extra.get("n_frozen", 0))
        return est
