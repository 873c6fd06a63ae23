"""Stacked (deep) fully connected autoencoders, with optional tied weights; a linear one is PCA.

Hinton & Salakhutdinov (2006), "Reducing the dimensionality of data with neural networks"; tied weights as in
Géron, Hands-On ML ch. 15 (decoder layer N-L+1 uses W_L transposed); linear AE = PCA (Baldi & Hornik 1989).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ..nn.chain import DenseChain, DenseLayer
from ..nn.layers import activation as get_activation
from ..nn.layers import check_sizes, linear_layers
from ..nn.wta import LifetimeWTA
from ..registry import register_model
from ..training.executors import DENSE_CHAIN
from .base import LayerPairs


def _examples(activations: Sequence[str]):
    """Small float64 dense autoencoders for every hand-written configuration (tests/test_common.py)."""
    for tied in (False, True):
        for act in activations:
            for output in ("linear", "sigmoid"):
                yield (f"dense {act} tied={tied} out={output}",
                       _perturbed(DenseAutoencoder(12, [9, 5, 3], activation=act, tie_weights=tied,
                                                   output_activation=output, coding_activation="tanh", seed=1)))
        yield (f"dense sigmoid coding tied={tied}",
               _perturbed(DenseAutoencoder(12, [9, 5], activation="elu", coding_activation="sigmoid",
                                           tie_weights=tied, seed=1)))
        yield (f"dense one sigmoid layer tied={tied}",
               _perturbed(DenseAutoencoder(12, [7], coding_activation="sigmoid", tie_weights=tied, seed=1)))


def _perturbed(model: nn.Module) -> nn.Module:
    """``model`` in float64 with every parameter moved off its initial value (biases off zero), so that every term
    of a gradient shows."""
    model = model.double()
    g = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=g, dtype=p.dtype))
    return model


@DENSE_CHAIN.allow(examples=_examples)
@register_model("dense")
class DenseAutoencoder(LayerPairs):
    """``n_features - hidden_layers... - reversed(hidden_layers[:-1]) - n_features``.

    With ``tie_weights`` the decoder has only biases: decoder layer j multiplies by the transposed weight of the
    mirrored encoder layer inside the matmul (no copy), so the weight count halves.
    """

    def __init__(
        self,
        n_features: int,
        hidden_layers: Sequence[int],
        activation: str = "elu",
        init: str = "he",
        tie_weights: bool = False,
        output_activation: str = "linear",
        coding_activation: str | None = None,
        wta: float | None = None,
        seed: int | None = None,
    ) -> None:
        super().__init__()
        hidden_layers = check_sizes("hidden_layers", hidden_layers)
        get_activation(output_activation)  # validates the name
        self.config = dict(
            n_features=int(n_features), hidden_layers=hidden_layers, activation=activation, init=init,
            tie_weights=bool(tie_weights), output_activation=output_activation, coding_activation=coding_activation,
            wta=wta,
        )
        self.coding_filter = LifetimeWTA(wta) if wta else None
        self.output_activation = output_activation
        self.act = get_activation(activation)
        self.coding_act = get_activation(coding_activation or activation)
        self._activation_names = (activation, coding_activation or activation)  # hidden layers, innermost encoder layer
        generator = torch.Generator().manual_seed(seed) if seed is not None else None
        sizes = [int(n_features), *hidden_layers]
        self.encoder = linear_layers(sizes, init, generator)
        if tie_weights:
            # decoder layer j mirrors encoder layer -1-j; biases are never tied
            self.decoder_biases = nn.ParameterList(nn.Parameter(torch.zeros(n)) for n in reversed(sizes[:-1]))
        else:
            self.decoder = linear_layers(sizes[::-1], init, generator)

    def extra_repr(self) -> str:
        cfg = self.config
        return (f"activation={cfg['activation']!r}, coding_activation={cfg['coding_activation'] or cfg['activation']!r}, "
                f"output_activation={cfg['output_activation']!r}, tie_weights={cfg['tie_weights']}")

    @property
    def tie_weights(self) -> bool:
        return self.config["tie_weights"]

    @property
    def n_codings(self) -> int:
        return self.config["hidden_layers"][-1]

    # -- layer pairs (pair k = encoder layer k + its mirror decoder layer), defined by their layer specs ---------

    def pair_activations(self, k: int) -> tuple[str, str]:
        """Names of pair ``k``'s activations: its encoder layer's (the coding activation for the innermost pair) and
        its decoder layer's ("linear" for pair 0, whose outputs are logits)."""
        hidden, coding = self._activation_names
        return (coding if k == len(self.encoder) - 1 else hidden), ("linear" if k == 0 else hidden)

    def pair_encode(self, x: torch.Tensor, k: int) -> torch.Tensor:
        return self.pair_layers(k)[0](x)

    def pair_decode(self, h: torch.Tensor, k: int) -> torch.Tensor:
        """Decoder layer mirroring encoder layer ``k``: logits for ``k == 0``, else activations."""
        return self.pair_layers(k)[1](h)

    def pair_layers(self, k: int) -> tuple[DenseLayer, DenseLayer]:
        """Pair ``k`` as two :class:`~aekit.nn.chain.DenseLayer`: the model's math, defined once. ``pair_encode`` and
        ``pair_decode`` run them under autograd; the hand-written executor runs the same specs. A tied decoder
        layer multiplies by W_k transposed inside the matmul: (batch, out_k) @ (out_k, in_k), no copy."""
        j = len(self.encoder) - 1 - k
        enc = self.encoder[k]
        encode_activation, decode_activation = self.pair_activations(k)
        encode = DenseLayer(enc.weight, enc.bias, encode_activation, module=enc)
        if self.tie_weights:
            return encode, DenseLayer(enc.weight, self.decoder_biases[j], decode_activation, transposed=True)
        dec = self.decoder[j]
        return encode, DenseLayer(dec.weight, dec.bias, decode_activation, module=dec)

    def dense_chain(self) -> DenseChain | None:
        """The whole model as a :class:`~aekit.nn.chain.DenseChain` (the spec of :meth:`encode` then
        :meth:`decode`); None with a winner-take-all coding filter between them, which a chain does not
        express."""
        if self.coding_filter is not None:
            return None
        pairs = [self.pair_layers(k) for k in range(len(self.encoder))]
        return DenseChain([e for e, _ in pairs] + [d for _, d in reversed(pairs)], self.output_activation,
                          coding_index=len(pairs))

    def pair_parameters(self, k: int) -> list[nn.Parameter]:
        j = len(self.encoder) - 1 - k
        decoder = [self.decoder_biases[j]] if self.tie_weights else list(self.decoder[j].parameters())
        return [*self.encoder[k].parameters(), *decoder]

    def pair_output_activation(self, k: int) -> str:
        """How pair ``k``'s output is read: the model's output activation for pair 0; the hidden activation is
        already applied inside ``pair_decode`` for the others."""
        return self.output_activation if k == 0 else "linear"

    def shallow_autoencoder(self, k: int, seed: int | None = None) -> DenseAutoencoder:
        """A separate one-hidden-layer autoencoder with the shapes and activations of pair ``k``."""
        cfg = self.config
        sizes = [cfg["n_features"], *cfg["hidden_layers"]]
        return DenseAutoencoder(
            sizes[k], [sizes[k + 1]], activation=cfg["activation"], init=cfg["init"], tie_weights=cfg["tie_weights"],
            output_activation=cfg["output_activation"] if k == 0 else cfg["activation"],
            coding_activation=self.pair_activations(k)[0], seed=seed,
        )

    @torch.no_grad()
    def load_pair(self, k: int, shallow: DenseAutoencoder) -> None:
        """Copy a trained shallow autoencoder's weights into pair ``k``."""
        for mine, theirs in zip(self.pair_parameters(k), shallow.pair_parameters(0)):
            mine.copy_(theirs)
