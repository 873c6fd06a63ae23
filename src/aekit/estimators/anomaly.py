"""``aekit.AnomalyDetector``: anomaly detection with any registered autoencoder family, as a scikit-learn outlier
detector (the conventions of ``IsolationForest`` / ``OneClassSVM``) with what PyOD users look for.

``fit`` standardizes the columns (when they are not already in [0, 1]), trains the scorer (a dense autoencoder by
default; any family of ``aekit train --model``), optionally leaving the highest-error training rows out as it
goes (``trim``: training data that is itself contaminated), and sets the threshold from ``contamination``.
The score (:mod:`aekit.detection.scores`) is the reconstruction error, the distance of the codings to the nearest
training codings, both (``hybrid``, the default), or a VAE's ELBO / likelihood.

Conventions, both kept: scikit-learn's ``score_samples`` / ``decision_function`` are higher for more normal rows
and ``predict`` gives +1 (inlier) / -1 (outlier); PyOD's ``decision_scores_`` (the training rows) and
``threshold_`` are anomaly scores, higher for more abnormal rows: ``decision_scores_ == -score_samples(X_train)``
and ``threshold_ == -offset_``.
"""

from __future__ import annotations

import os
from numbers import Integral, Real
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, OutlierMixin, _fit_context, clone
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions
from sklearn.utils.validation import check_is_fitted, validate_data

from .. import __version__
from ..detection import calibration
from ..detection.scores import SCORES, Fitted, auto_score, contributions, get_score
from ..detection.tabular import Preprocessing, check_finite, standardizes
from ..errors import CheckpointError, ConfigError, DataError
from ..io import Checkpoint, save_checkpoint
from ..params import Flag, LiveOptions, Param, check_unique, make_init, parameters_doc, with_parameters_doc
from ..registry import ESTIMATORS, FAMILIES, register_estimator
from .base import _from_json, _jsonable
from .parts import Training

TRIM_WARMUP = 1 / 3  # with trim, the share of the epochs trained on every row before rows are left out
PROBABILITIES = {"rank": calibration.rank_probability, "linear": calibration.linear_probability,
                 "unify": calibration.unify_probability}  # predict_proba's methods
DETECTION_INIT = "he"  # a scorer left at init="auto" gets this (measured: see AnomalyDetector._scorer)


def _families() -> list[str]:
    return FAMILIES.available()


def _standardize_flag(text: str) -> str | bool:
    import argparse

    value = {"auto": "auto", "yes": True, "true": True, "no": False, "false": False}.get(text.lower())
    if value is None:
        raise argparse.ArgumentTypeError(f"expected auto, yes or no, got {text!r}")
    return value


_TRAINING = {p.name: p for p in Training.params}


@register_estimator("AnomalyDetector")
class AnomalyDetector(OutlierMixin, BaseEstimator):
    """An outlier detector whose scorer is an autoencoder of any registered family.

    Fit it on rows that are (mostly) normal; ``predict`` flags the rows that score beyond the threshold the
    ``contamination`` sets on the training rows (10% by default, PyOD's). For images pass rows in [0, 1] (or
    images ``(n, H, W)`` / ``(n, C, H, W)``); for tables, columns on any scale (standardized inside).

    Attributes
    ----------
    scorer_ : estimator
        The fitted autoencoder (e.g. ``aekit.Autoencoder``); it saw the preprocessed rows.
    score_ : str
        The score in use (``score_type="auto"`` resolved).
    offset_ : float
        ``decision_function = score_samples - offset_`` (the ``contamination`` quantile of the training rows'
        ``score_samples``, as in ``IsolationForest``).
    threshold_ : float
        ``-offset_``: rows whose anomaly score exceeds it are outliers (PyOD's convention).
    decision_scores_ : ndarray of shape (n_samples,)
        Anomaly scores of the training rows (higher = more abnormal; PyOD's convention).
    labels_ : ndarray of shape (n_samples,)
        PyOD's training labels: 1 for the outliers among the training rows, 0 for the inliers.
    training_rows_ : ndarray of shape (n_samples,), bool
        The rows the scorer trained on at the end (all of them unless ``trim``).
    standardize_ : bool
        Whether the columns are standardized (``standardize="auto"`` resolved).
    image_shape_ : tuple or None
        The shape of one row as an image, when ``X`` was given as images.
    n_features_in_ : int
    """

    parts: tuple = ()  # a task on a scorer, not a family: its parameters are its own
    positional = ("model",)
    own_params = (
        Param("model", "ae", [LiveOptions(_families), HasMethods(["fit", "reconstruction_error"])],
              "The scorer: a family name of ``aekit train --model`` (``\"ae\"``: a dense ``aekit.Autoencoder``; "
              "``\"vae\"``, ...; with ``model_params``), or an autoencoder estimator. An unfitted one is cloned and "
              "fitted on the preprocessed rows; a fitted one is used as it is (then ``standardize`` must not be "
              "True: it saw the rows as they are). A conv scorer: ``model_params={\"arch\": \"conv\"}``; a "
              "denoising one: ``{\"noise\": \"mask:0.3\"}``.", type="str or estimator", flag=None),
        Param("model_params", None, [dict, None],
              "Parameters of the scorer named by ``model`` (e.g. ``{\"hidden_layers\": (64, 16)}``); its "
              "``random_state``, ``device``, ``precision`` and ``verbose`` default to this detector's, an ``init`` "
              "left at ``\"auto\"`` is He (what the detection results were measured with).",
              type="dict or None", flag=None),
        Param("score_type", "auto", [StrOptions({"auto", *SCORES})],
              "How rows are scored (see :mod:`aekit.detection.scores`): ``\"reconstruction\"`` (mean squared "
              "error), ``\"latent\"`` (distance to the 5 nearest training codings), ``\"hybrid\"`` (both, each "
              "scaled by its spread on the training rows, summed), ``\"elbo\"`` / ``\"nll\"`` (a VAE's negative "
              "ELBO / importance-sampled likelihood); ``\"auto\"``: hybrid when the training rows are clean (one-class "
              "MNIST, mean ROC-AUC: reconstruction 0.963, hybrid 0.977), the reconstruction error with ``trim > 0`` "
              "(training rows with 10% anomalies, MNIST: reconstruction 0.920, hybrid 0.897).", type="str",
              flag=Flag("--score")),
        Param("contamination", 0.1, [Interval(Real, 0, 0.5, closed="right")],
              "Expected share of outliers in the training rows: the threshold flags this share of them "
              "(PyOD's default 0.1).", type="float"),
        Param("standardize", "auto", [StrOptions({"auto"}), "boolean"],
              "Scale each column to zero mean and unit variance on the training rows before the scorer sees "
              "them; ``\"auto\"``: unless every value lies in [0, 1] (images).", type="'auto' or bool",
              flag=Flag(parse=_standardize_flag, metavar="auto|yes|no")),
        Param("missing", "error", [StrOptions({"error", "impute"})],
              "Rows with NaN: ``\"error\"`` refuses them (naming the rows); ``\"impute\"`` fills each NaN with its "
              "column's training median. Infinite values are always refused.", type="str"),
        Param("trim", 0.0, [Interval(Real, 0, 0.5, closed="left")],
              "Robust training for contaminated training data: after the first third of the epochs, each epoch "
              "trains on the training rows without this share of the highest reconstruction errors (re-chosen "
              "every epoch); the latent references leave them out too; and ``score_type=\"auto\"`` takes the "
              "reconstruction error. 0: every row (training rows with 10% anomalies, mean ROC-AUC of the "
              "reconstruction error, MNIST 0.912, trim=0.1: 0.920; Fashion-MNIST 0.837 and 0.863).", type="float"),
        Param("epochs", 10, [Interval(Integral, 0, None, closed="left"), StrOptions({"auto"}), None],
              "Epochs of the scorer's training, where the scorer leaves them to ``\"auto\"`` (its default); "
              "None: the scorer's own. 10: longer training did not help on one-class MNIST (30 epochs, Xavier "
              "init, batch 64 gave class 0 a reconstruction AUC of 0.977 against 0.996 at 10).",
              type="int, 'auto' or None", flag=None),
        Param("batch_size", None, [Interval(Integral, 1, None, closed="left"), None],
              "Rows per gradient step of the scorer; None: the scorer's own.", type="int or None", flag=None),
        _TRAINING["random_state"],
        _TRAINING["device"].replace(flag=None),
        _TRAINING["precision"].replace(flag=None),
        _TRAINING["verbose"],
    )

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._declare()

    @classmethod
    def _declare(cls) -> None:
        params = cls.declared_params()
        check_unique(params)
        cls.__init__ = make_init(params, cls.positional, cls.__qualname__)  # type: ignore[method-assign]
        cls._parameter_constraints = {p.name: list(p.constraints) for p in params}
        cls.__doc__ = with_parameters_doc(cls.__dict__.get("__doc__"), parameters_doc(params, cls.positional))

    @classmethod
    def declared_params(cls) -> tuple[Param, ...]:
        return cls.own_params

    @classmethod
    def param_titles(cls) -> dict[str, str]:
        return {p.name: "anomaly detection" for p in cls.own_params}

    @classmethod
    def declared(cls, name: str) -> Param:
        for p in cls.own_params:
            if p.name == name:
                return p
        raise KeyError(name)

    # -- data ----------------------------------------------------------------------------------------------
    def _rows(self, X: Any, reset: bool) -> np.ndarray:
        """Validated float32 rows (images flattened), NaN kept for :func:`check_finite` to judge."""
        shape = getattr(X, "shape", None)
        if shape is not None and len(shape) in (3, 4) and not hasattr(X, "columns"):
            X = np.asarray(X)
            if reset:
                self.image_shape_ = tuple(int(s) for s in X.shape[1:])
            elif tuple(X.shape[1:]) != tuple(getattr(self, "image_shape_", None) or ()):
                raise DataError(f"X holds images of shape {tuple(X.shape[1:])}, but the detector was fitted on "
                                f"{'images of shape ' + str(self.image_shape_) if self.image_shape_ else 'rows'}")
            X = X.reshape(len(X), -1)
        elif reset:
            self.image_shape_ = None
        X = validate_data(self, X, dtype=np.float32, reset=reset, order="C", ensure_all_finite=False)
        check_finite(X, self.missing)
        return X

    def _prepared(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "scorer_")
        return self.preprocessing_.apply(self._rows(X, reset=False))

    # -- the scorer ----------------------------------------------------------------------------------------
    def _scorer(self) -> tuple[Any, bool]:
        """(the scorer, whether it still has to be trained)."""
        model = self.model
        if isinstance(model, str):
            scorer = FAMILIES.get(model)(**(self.model_params or {}))
        else:
            if self.model_params:
                raise ConfigError("model_params applies only when model is a family name; set the parameters on "
                                  "the estimator you pass instead")
            if hasattr(model, "model_"):  # fitted: used as it is
                if self.standardize is True:
                    raise ConfigError("standardize=True with a fitted scorer: it was trained on the rows as they "
                                      "are; pass standardize=False (or 'auto'), or an unfitted scorer")
                return model, False
            scorer = clone(model)
        params = scorer.get_params()
        overrides = {"random_state": self.seed_ if params.get("random_state") is None else None,
                     "device": self.device if params.get("device") == "auto" else None,
                     "precision": self.precision if params.get("precision") == "32-true" else None,
                     "verbose": self.verbose if not params.get("verbose") else None,
                     "epochs": self.epochs if params.get("epochs") == "auto" else None,
                     # the init the detection results were measured with (benchmarks/one_class.py; with the
                     # autoencoders' own "auto", LeCun for ELU, tests/test_anomaly.py's blobs fell from 0.97 to 0.90)
                     "init": DETECTION_INIT if params.get("init") == "auto" else None,
                     "batch_size": self.batch_size,
                     "image_shape": (self.image_shape_ if "image_shape" in params and params["image_shape"] is None
                                     else None)}
        scorer.set_params(**{k: v for k, v in overrides.items() if v is not None and k in params})
        return scorer, True

    def _train(self, scorer: Any, X: np.ndarray) -> np.ndarray:
        """Fit ``scorer`` on ``X`` (with ``trim``: epoch by epoch, each on the rows of lowest error); the mask of
        the rows it trained on last."""
        keep = np.ones(len(X), dtype=bool)
        if not self.trim:
            scorer.fit(X)
            return keep
        total = scorer.get_params()["epochs"]
        if total == "auto":
            raise ConfigError("trim trains epoch by epoch and needs a number of epochs: pass epochs=N (the "
                              "detector's) or model_params={'epochs': N}")
        total = int(total)
        warm = max(1, int(round(total * TRIM_WARMUP))) if total else 0
        scorer.set_params(epochs=warm)
        scorer.fit(X)
        n_keep = max(2, int(np.ceil(len(X) * (1 - self.trim))))
        for epoch in range(warm + 1, total + 1):
            errors = scorer.reconstruction_error(X)
            keep = np.zeros(len(X), dtype=bool)
            keep[np.argsort(errors, kind="stable")[:n_keep]] = True
            scorer.set_params(epochs=epoch, warm_start=True)
            scorer.fit(X[keep])
        scorer.set_params(warm_start=False)
        errors = scorer.reconstruction_error(X)
        keep = np.zeros(len(X), dtype=bool)
        keep[np.argsort(errors, kind="stable")[:n_keep]] = True
        return keep

    # -- fitting -------------------------------------------------------------------------------------------
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X: Any, y: Any = None) -> AnomalyDetector:
        """Fit on rows ``X`` (``y`` is ignored: the detector learns what normal rows look like)."""
        X = self._rows(X, reset=True)
        if len(X) < 2:
            raise DataError(f"an anomaly detector needs at least 2 training rows, got {len(X)} sample{'' if len(X) == 1 else 's'}")
        self.seed_ = int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))
        scorer, untrained = self._scorer()
        score = auto_score(scorer, contaminated=self.trim > 0) if self.score_type == "auto" else self.score_type
        reason = get_score(score).available(scorer)
        if reason:  # before any training
            raise ConfigError(reason)
        self.standardize_ = standardizes(X, self.standardize) if untrained else self.standardize is True
        self.preprocessing_ = Preprocessing.fit(X, self.missing, self.standardize_)
        rows = self.preprocessing_.apply(X)
        if untrained:
            if self.trim and not callable(getattr(scorer, "reconstruction_error", None)):
                raise ConfigError(f"trim needs a scorer with reconstruction_error; {type(scorer).__name__} has none")
            self.training_rows_ = self._train(scorer, rows)
        else:
            self.training_rows_ = np.ones(len(X), dtype=bool)
        self.scorer_ = scorer
        self.score_ = score
        self.fitted_score_ = get_score(self.score_).fit(scorer, rows[self.training_rows_], self.seed_)
        samples = -self._anomaly(rows)
        self.offset_ = float(np.percentile(samples, 100.0 * self.contamination))
        self.threshold_ = -self.offset_
        self.decision_scores_ = -samples
        self.labels_ = (self.decision_scores_ > self.threshold_).astype(int)
        return self

    def _anomaly(self, rows: np.ndarray) -> np.ndarray:
        scores = get_score(self.score_).score(self.scorer_, rows, self.fitted_score_, self.seed_)
        if not np.isfinite(scores).all():
            raise DataError("the scorer gave non-finite anomaly scores (a row far outside the training data's "
                            "range overflows float32); check the rows' scale")
        return np.asarray(scores, dtype=np.float64)

    @property
    def model_(self) -> torch.nn.Module:
        """The scorer's torch module (figures and the report read it)."""
        check_is_fitted(self, "scorer_")
        return self.scorer_.model_

    # -- scikit-learn's outlier API --------------------------------------------------------------------------
    def score_samples(self, X: Any) -> np.ndarray:
        """Normality of each row (n,) float64: the negated anomaly score (the lower, the more abnormal)."""
        return -self._anomaly(self._prepared(X))

    def decision_function(self, X: Any) -> np.ndarray:
        """``score_samples(X) - offset_``: negative for outliers."""
        return self.score_samples(X) - self.offset_

    def predict(self, X: Any) -> np.ndarray:
        """+1 for inliers, -1 for outliers."""
        return np.where(self.decision_function(X) < 0, -1, 1)

    # -- PyOD's extras ---------------------------------------------------------------------------------------
    def anomaly_score(self, X: Any) -> np.ndarray:
        """Anomaly scores (n,) float64, higher = more abnormal (PyOD's ``decision_function``): ``-score_samples``."""
        return -self.score_samples(X)

    def predict_proba(self, X: Any, method: str = "rank") -> np.ndarray:
        """(n, 2): the probability of each row being an inlier, then an outlier (PyOD's column order).

        ``method="rank"``: the share of training rows scored no higher, ``(1 + #{train <= s}) / (2 + n)``: 0.95
        means "more abnormal than 95% of the training rows"; ``"linear"``: the score min-max scaled over the
        training scores (PyOD's default); ``"unify"``: a Gaussian fitted to the training scores (Kriegel et al. 2011,
        PyOD's ``unify``). Neither is a calibrated probability of being an anomaly without
        labels; both are monotone in the score (see :mod:`aekit.detection.calibration`).
        """
        check_is_fitted(self, "scorer_")
        if method not in PROBABILITIES:  # before scoring anything
            raise ConfigError(f"method must be one of {', '.join(PROBABILITIES)}, got {method!r}")
        return self.proba_of(self.anomaly_score(X), method)

    def proba_of(self, scores: np.ndarray, method: str = "rank") -> np.ndarray:
        """:meth:`predict_proba` of rows whose :meth:`anomaly_score` is ``scores`` (no second scoring pass)."""
        outlier = PROBABILITIES[method](self.decision_scores_, scores)
        return np.column_stack([1.0 - outlier, outlier])

    def predict_confidence(self, X: Any) -> np.ndarray:
        """(n,) in [0, 1]: ExCeeD's confidence in each row's ``predict`` label (PyOD's ``predict_confidence``; see
        :mod:`aekit.detection.calibration`)."""
        check_is_fitted(self, "scorer_")
        return self.confidence_of(self.anomaly_score(X))

    def confidence_of(self, scores: np.ndarray) -> np.ndarray:
        """:meth:`predict_confidence` of rows whose :meth:`anomaly_score` is ``scores``."""
        return calibration.exceed_confidence(self.decision_scores_, scores, self.contamination,
                                             scores > self.threshold_)

    # -- explanations ----------------------------------------------------------------------------------------
    def explain(self, X: Any) -> np.ndarray:
        """Per-feature contributions (n, n_features) float64 to each row's anomaly score: the squared error of
        each feature's reconstruction in the detector's units (standardized columns), divided by the number of
        features; with ``score_type="reconstruction"`` a row's contributions sum to its anomaly score, with
        ``"hybrid"`` to its reconstruction term (see :func:`aekit.detection.scores.contributions`). The largest
        ones name the columns (or pixels) that make a row abnormal."""
        return contributions(self.scorer_, self.score_, self._prepared(X), self.fitted_score_)

    def reconstruct(self, X: Any) -> np.ndarray:
        """The scorer's reconstructions of ``X``, in the units of ``X`` (standardization undone), flat rows."""
        rows = self._prepared(X)
        out = self.scorer_.predict(rows).reshape(len(rows), -1).astype(np.float64)
        p = self.preprocessing_
        if p.mean is not None:
            out = out * p.scale.numpy() + p.mean.numpy()
        return out.astype(np.float32)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = self.missing == "impute"
        return tags

    # -- persistence -----------------------------------------------------------------------------------------
    def _model_json(self) -> Any:
        if isinstance(self.model, str):
            return self.model
        params = {k: _jsonable(v) for k, v in self.model.get_params(deep=False).items()}
        return {"estimator": type(self.model).__name__, "params": params}

    def save(self, path: str | os.PathLike) -> Path:
        """Write the fitted detector to a checkpoint folder (the scorer's weights, the preprocessing, the score's
        references and the training scores; safetensors + JSON, atomic, no pickle)."""
        check_is_fitted(self, "scorer_")
        scorer_config = self.scorer_._config()
        params = {k: _jsonable(v) for k, v in self.get_params(deep=False).items()}
        params["model"] = self._model_json()
        params["model_params"] = (None if self.model_params is None else
                                  {str(k): _jsonable(v) for k, v in self.model_params.items()})
        config = {
            "aekit_version": __version__, "estimator": type(self).__name__, "params": params,
            "model": scorer_config["model"], "scorer": scorer_config,
            "fitted": {"n_features_in_": int(self.n_features_in_), "seed_": int(self.seed_), "score_": self.score_,
                       "standardize_": bool(self.standardize_), "offset_": self.offset_,
                       "threshold_": self.threshold_,
                       "image_shape_": None if self.image_shape_ is None else list(self.image_shape_)},
        }
        state = {f"preprocessing.{k}": v for k, v in self.preprocessing_.tensors().items()}
        state.update({f"score.{k}": v for k, v in self.fitted_score_.tensors.items()})
        state["decision_scores"] = torch.from_numpy(self.decision_scores_)
        state["training_rows"] = torch.from_numpy(self.training_rows_.astype(np.uint8))
        from ..runs import write_metrics

        out = save_checkpoint(path, config, self.scorer_.model_.state_dict(), state, {}, self.scorer_.history_)
        write_metrics(out, self.scorer_.history_)
        return out

    @classmethod
    def _from_checkpoint(cls, ckpt: Checkpoint, device: str | None = None) -> AnomalyDetector:
        cfg = ckpt.config
        try:
            params = dict(cfg["params"])
            model = params["model"]
            if isinstance(model, dict):
                scorer_cls = ESTIMATORS.get(model["estimator"])
                params["model"] = scorer_cls(**_from_json(model["params"]))
            if params.get("model_params"):
                params["model_params"] = _from_json(params["model_params"])
            if device is not None:
                params["device"] = device
            known = set(cls._get_param_names())
            est = cls(**{k: v for k, v in params.items() if k in known})
            scorer_cfg = cfg["scorer"]
            scorer = ESTIMATORS.get(scorer_cfg["estimator"])._from_checkpoint(
                Checkpoint(config=scorer_cfg, weights=ckpt.weights, history=ckpt.history), device)
            fitted = cfg["fitted"]
            est.scorer_ = scorer
            est.n_features_in_ = int(fitted["n_features_in_"])
            est.seed_ = int(fitted["seed_"])
            est.score_ = str(fitted["score_"])
            get_score(est.score_)
            est.standardize_ = bool(fitted["standardize_"])
            est.offset_ = float(fitted["offset_"])
            est.threshold_ = float(fitted["threshold_"])
            shape = fitted.get("image_shape_")
            est.image_shape_ = None if shape is None else tuple(int(s) for s in shape)
            state = ckpt.state
            est.preprocessing_ = Preprocessing.from_tensors(
                {k[len("preprocessing."):]: v for k, v in state.items() if k.startswith("preprocessing.")})
            est.fitted_score_ = Fitted({k[len("score."):]: v for k, v in state.items() if k.startswith("score.")})
            est.decision_scores_ = state["decision_scores"].numpy().astype(np.float64)
            est.training_rows_ = state["training_rows"].numpy().astype(bool)
            est.labels_ = (est.decision_scores_ > est.threshold_).astype(int)
        except (KeyError, TypeError, AttributeError) as exc:
            raise CheckpointError(f"the detector's checkpoint is missing or has a bad entry: {exc!r}") from None
        return est

    def params_in_effect(self) -> dict[str, Any]:
        """The detector's parameters and, prefixed ``scorer.``, its scorer's (what a report lists)."""
        own = {k: v for k, v in self.get_params(deep=False).items() if k != "model"}
        own["model"] = self._model_json() if not isinstance(self.model, str) else self.model
        scorer = getattr(self, "scorer_", None)
        inner = scorer.params_in_effect() if hasattr(scorer, "params_in_effect") else {}
        return {**own, **{f"scorer.{k}": v for k, v in inner.items()}}

    @property
    def history_(self) -> list:
        """The scorer's training history (one record per epoch)."""
        check_is_fitted(self, "scorer_")
        return self.scorer_.history_

    @property
    def n_epochs_(self) -> int:
        check_is_fitted(self, "scorer_")
        return self.scorer_.n_epochs_


AnomalyDetector._declare()
