"""A classifier whose lower layers are an autoencoder's encoder: unsupervised pretraining (Hinton & Salakhutdinov
2006; Bengio et al. 2007, "Greedy layer-wise training of deep networks"; Erhan et al. 2010, "Why does unsupervised
pre-training help deep learning?"; Vincent et al. 2010, stacked denoising autoencoders; Géron ch. 15).

``n_features - encoder_layers - hidden_layers - n_classes``: the encoder layers take an autoencoder's encoder
weights (same activations, the coding activation on the last one) or a random init (the from-scratch baseline);
the head's hidden layers and the output layer (logits, softmax in the loss) start random.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ..errors import ConfigError
from ..nn.layers import ACTIVATIONS, linear_layers
from ..nn.layers import activation as get_activation
from ..registry import register_model


def activation_name(fn: object) -> str:
    """The name under which ``fn`` is in :data:`~aekit.nn.layers.ACTIVATIONS` (to copy a model's activations)."""
    for name, candidate in ACTIVATIONS.items():
        if candidate is fn:
            return name
    raise ConfigError(f"activation {fn!r} is not one of aekit's named activations ({', '.join(ACTIVATIONS)})")


@register_model("classifier")
class EncoderClassifier(nn.Module):
    """Encoder layers (pretrained or random) + optional hidden head layers + a linear output layer (logits).

    ``encode_prefix(x, k)`` runs the lower ``k`` encoder layers; ``forward_from(h, k)`` runs the rest, so the
    outputs of frozen lower layers can be computed once and cached (see :class:`ModelSuffix`).
    """

    def __init__(
        self,
        n_features: int,
        encoder_layers: Sequence[int],
        n_classes: int,
        hidden_layers: Sequence[int] = (),
        activation: str = "elu",
        coding_activation: str | None = None,
        init: str = "he",
        dropout: float = 0.0,
        seed: int | None = None,
    ) -> None:
        super().__init__()
        encoder_layers = [int(h) for h in encoder_layers]
        hidden_layers = [int(h) for h in hidden_layers]
        if not encoder_layers or min(encoder_layers + hidden_layers) < 1:
            raise ConfigError(f"encoder_layers must be a non-empty list of positive sizes (and hidden_layers positive), "
                             f"got {encoder_layers} and {hidden_layers}")
        if int(n_classes) < 1:
            raise ConfigError(f"n_classes must be >= 1, got {n_classes}")
        if not 0.0 <= float(dropout) < 1.0:
            raise ConfigError(f"dropout must be in [0, 1), got {dropout}")
        self.config = dict(n_features=int(n_features), encoder_layers=encoder_layers, n_classes=int(n_classes),
                           hidden_layers=hidden_layers, activation=activation, coding_activation=coding_activation,
                           init=init, dropout=float(dropout))
        self.act = get_activation(activation)
        self.coding_act = get_activation(coding_activation or activation)
        self.dropout = nn.Dropout(float(dropout)) if dropout else nn.Identity()
        generator = torch.Generator().manual_seed(seed) if seed is not None else None
        self.encoder = linear_layers([int(n_features), *encoder_layers], init, generator)
        self.head = linear_layers([encoder_layers[-1], *hidden_layers, int(n_classes)], init, generator)

    @property
    def n_encoder_layers(self) -> int:
        return len(self.encoder)

    def encoder_layer(self, h: torch.Tensor, k: int) -> torch.Tensor:
        act = self.coding_act if k == len(self.encoder) - 1 else self.act
        return act(self.encoder[k](h))

    def encode_prefix(self, x: torch.Tensor, k: int) -> torch.Tensor:
        """Output of encoder layers ``0..k-1`` (no dropout): ``k = n_encoder_layers`` gives the codings."""
        for i in range(k):
            x = self.encoder_layer(x, i)
        return x

    def forward_from(self, h: torch.Tensor, k: int) -> torch.Tensor:
        """Logits ``(batch, n_classes)`` from the output ``h`` of encoder layer ``k - 1`` (``k = 0``: inputs).

        Dropout (training only) acts on every hidden layer's output, ``h`` included when ``k > 0``."""
        if k > 0:
            h = self.dropout(h)
        for i in range(k, len(self.encoder)):
            h = self.dropout(self.encoder_layer(h, i))
        for layer in self.head[:-1]:
            h = self.dropout(self.act(layer(h)))
        return self.head[-1](h)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_from(x, 0)  # logits (batch, n_classes)

    def regularized_weights(self) -> list[nn.Parameter]:
        """Weight matrices only; biases are never regularized."""
        return [p for name, p in self.named_parameters() if name.endswith("weight")]

    def freeze(self, k: int) -> None:
        """Freeze the lower ``k`` encoder layers (``requires_grad=False``: optimizers skip them); unfreeze the rest."""
        for i, layer in enumerate(self.encoder):
            layer.requires_grad_(i >= k)
        self.head.requires_grad_(True)

    @torch.no_grad()
    def load_encoder(self, autoencoder: nn.Module) -> None:
        """Copy an autoencoder's encoder (an ``encoder`` ModuleList of ``nn.Linear``, e.g.
        :class:`~aekit.models.DenseAutoencoder`) into the encoder layers; shapes and activations must match."""
        theirs = getattr(autoencoder, "encoder", None)
        if theirs is None or len(theirs) != len(self.encoder):
            n = 0 if theirs is None else len(theirs)
            raise ConfigError(f"cannot copy the encoder of {type(autoencoder).__name__}: it has {n} encoder layers, "
                             f"this classifier {len(self.encoder)}")
        for k, (mine, other) in enumerate(zip(self.encoder, theirs)):
            if mine.weight.shape != other.weight.shape:
                raise ConfigError(f"encoder layer {k} has shape {tuple(other.weight.shape)} in the autoencoder but "
                                 f"{tuple(mine.weight.shape)} here")
            mine.weight.copy_(other.weight)
            mine.bias.copy_(other.bias)


class ModelSuffix(nn.Module):
    """``model.forward_from(h, k)`` as a module: what the training loop sees when the lower ``k`` layers are frozen
    and their outputs cached (``k = 0``: the whole model)."""

    def __init__(self, model: EncoderClassifier, k: int) -> None:
        super().__init__()
        self.model, self.k = model, k

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.model.forward_from(h, self.k)

    def regularized_weights(self) -> list[nn.Parameter]:
        return self.model.regularized_weights()


def encoder_spec(autoencoder: nn.Module) -> dict:
    """Sizes and activations of an autoencoder module's encoder, as :class:`EncoderClassifier` keyword arguments."""
    encoder = getattr(autoencoder, "encoder", None)
    if not encoder or not all(isinstance(layer, nn.Linear) for layer in encoder):
        raise ConfigError(f"{type(autoencoder).__name__} has no dense encoder (an 'encoder' list of linear layers) "
                         "to reuse; use a stacked autoencoder such as aekit.Autoencoder")
    return dict(n_features=encoder[0].in_features, encoder_layers=[layer.out_features for layer in encoder],
                activation=activation_name(autoencoder.act), coding_activation=activation_name(autoencoder.coding_act))
