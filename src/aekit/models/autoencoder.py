"""``aekit.Autoencoder``: the stacked (dense) autoencoder and its convolutional form as one scikit-learn
transformer, with every regularizer of the chapter (denoising, sparse, contractive, winner-take-all) and greedy
layer-wise training as parts that compose.

The math is the dense family's (:mod:`aekit.models.dense`: stacked, tied, linear) or the conv family's
(:mod:`aekit.models.conv`), picked by ``arch``; a variant that is only a penalty needs no model of its own.
"""

from __future__ import annotations

from typing import Any

from ..estimators.base import AutoencoderEstimator
from ..estimators.parts import (
    CodingActivation,
    Conv,
    ConvCoding,
    Greedy,
    ImageShape,
    Layers,
    OutputActivation,
    Reconstruction,
    Regularizers,
    TiedWeights,
    Training,
)
from ..registry import register_estimator


@register_estimator("Autoencoder", cli="ae")
class Autoencoder(AutoencoderEstimator):
    """A stacked (deep) autoencoder: ``n_features - hidden_layers - mirror - n_features``, or a convolutional one
    (``arch="conv"``: conv encoder, transposed-convolution decoder; ``hidden_layers`` and ``tie_weights`` are then
    not used).

    Attributes
    ----------
    model_ : torch.nn.Module
    history_ : list of dict
        One record per epoch: each loss term, ``val_*`` terms, ``l2``, ``time``.
    n_epochs_ : int
    n_features_in_ : int
    executor_ : str
        What ran the training steps: ``"hand-written dense chain"`` or ``"autograd"`` (see
        :mod:`aekit.training.executors`).
    """

    positional = ("hidden_layers",)
    parts = (
        Layers(),
        CodingActivation(),
        TiedWeights(),
        OutputActivation(),
        Reconstruction("mse", ("mse", "bce"), auto="mse"),
        Regularizers(),
        Greedy(),
        Conv(),
        ConvCoding(),
        ImageShape(),
        Training(),
    )

    def _unused_params(self) -> tuple[str, ...]:
        return ("hidden_layers", "tie_weights") if self.arch == "conv" else ()

    def _model_name(self) -> str:
        return "conv" if self.arch == "conv" else "dense"

    def _model_config(self, n_features: int) -> dict[str, Any]:
        common = dict(n_features=n_features, activation=self.activation, init=Layers.resolved_init(self),
                      output_activation=self._output_activation(),
                      coding_activation=Regularizers.coding_activation(self), wta=self.wta)
        if self.arch == "conv":
            return {**common, **self.part(Conv).config(self), "coding_size": ConvCoding.resolved(self)}
        return {**common, "hidden_layers": list(self.hidden_layers), "tie_weights": self.tie_weights}
