"""The layer spec of a fully connected model, and its hand-written executor.

A dense model describes its math once, as :class:`DenseLayer` specs (which weight, which bias, which activation,
whether a tied weight is used transposed). Two executors read that one spec: calling a layer or a
:class:`DenseChain` runs it under autograd (this is what the model's own ``encode``/``decode`` do), and
:meth:`DenseChain.forward` / :meth:`DenseChain.backward` run it without autograd, with gradients written by hand.
The hand-written executor only takes what is on its allow-list (:mod:`aekit.training.executors`); anything
else trains through autograd over the same spec.

Why by hand: autograd records a node per layer and per activation, allocates every gradient afresh and reduces the
loss in a pass of its own; on the book's MNIST model (784-300-150-300-784, batch 150, 2 CPU threads) that
bookkeeping costs about 10% of a step on top of the matrix multiplies (benchmarks/executors.py). Here each layer
is ``h = act(h @ W.T + b)`` (or ``h @ W + b`` for a tied decoder layer, ``W`` used transposed without a copy);
activations are applied in place and differentiated from their outputs, gradients are written straight into
each parameter's ``.grad`` with ``out=``/in-place matmuls (a weight used twice, as tied weights are, gets both
contributions). The result equals autograd's up to float rounding (tests/test_common.py, tests/test_chain.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace

import torch
import torch.nn.functional as F

from ..data.binarize import bernoulli
from .layers import ACTIVATIONS, activation


def supports(name: str) -> bool:
    """Whether the activation called ``name`` has a hand-written form (see :class:`aekit.nn.layers.Activation`)."""
    entry = ACTIVATIONS.get(name)
    return entry is not None and entry.hand_written


def activate_(z: torch.Tensor, name: str) -> torch.Tensor:
    """``activation(z)`` computed in place."""
    entry = ACTIVATIONS[name]
    return z if entry.identity else entry.inplace(z)


def activation_backward_(grad: torch.Tensor, output: torch.Tensor, name: str) -> torch.Tensor:
    """``grad * activation'(x)`` in place, from the activation's ``output``."""
    entry = ACTIVATIONS[name]
    if not entry.identity:
        entry.grad_from_output(grad, output)
    return grad


@dataclass(frozen=True, eq=False)
class DenseLayer:
    """``activation(h @ weight.T + bias)``, or ``activation(h @ weight + bias)`` when ``transposed`` (a tied decoder
    layer reusing an encoder weight). ``trainable=False``: the layer is only run forward (a frozen lower layer).
    ``module``: the ``nn.Linear`` holding ``weight`` and ``bias``, called under autograd (so that its hooks see
    the layer run: what ``F.linear`` computes is ``addmm(bias, h, weight.T)``, the same op)."""

    weight: torch.Tensor  # (out, in), or (in, out) when transposed
    bias: torch.Tensor  # (out,)
    activation: str
    transposed: bool = False
    trainable: bool = True
    module: torch.nn.Module | None = None
    # in a lower-precision chain (bf16-mixed): the float32 parameters that weight and bias copy and that receive the
    # gradients; None: weight and bias are the parameters themselves
    master_weight: torch.Tensor | None = None
    master_bias: torch.Tensor | None = None
    grad_scratch: torch.Tensor | None = None  # where the lower-precision weight gradient is computed

    def lowered(self, dtype: torch.dtype, shadows: dict[int, torch.Tensor]) -> DenseLayer:
        """This layer computing in ``dtype``: copies of its weight and bias (one per parameter, shared through
        ``shadows``, e.g. by a tied decoder layer), the parameters as masters."""
        def shadow(p: torch.Tensor) -> torch.Tensor:
            if id(p) not in shadows:
                shadows[id(p)] = p.detach().to(dtype)
            return shadows[id(p)]

        weight = shadow(self.weight)
        scratch = shadows.setdefault(-id(self.weight), torch.empty_like(weight))  # one per weight, as the copy
        return replace(self, weight=weight, bias=shadow(self.bias), module=None, master_weight=self.weight,
                       master_bias=self.bias, grad_scratch=scratch)

    def __call__(self, h: torch.Tensor) -> torch.Tensor:
        """The layer's math under autograd: what the model computes (the hand-written executor computes the same
        from the same spec, :meth:`DenseChain.forward`)."""
        if self.module is not None:
            return activation(self.activation)(self.module(h))
        weight = self.weight if self.transposed else self.weight.T  # (in, out): W used transposed, no copy
        return activation(self.activation)(torch.addmm(self.bias, h, weight))


@dataclass(frozen=True)
class DenseChain:
    """Layers from the input to the logits; ``output_activation`` turns the logits into the reconstruction;
    ``target_index``: reconstruct the output of that many leading layers instead of the given targets (a greedy
    phase that runs its inputs through the frozen lower layers); ``coding_index``: the output of that many leading
    layers is the model's codings (where penalties on the codings apply)."""

    layers: Sequence[DenseLayer]
    output_activation: str = "linear"
    target_index: int | None = None
    coding_index: int | None = None

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """The chain under autograd, input to logits."""
        for layer in self.layers:
            x = layer(x)
        return x

    def activations(self) -> set[str]:
        """Every activation the chain applies, the output activation included."""
        return {layer.activation for layer in self.layers} | {self.output_activation}

    @property
    def hand_written(self) -> bool:
        """Whether every activation has a hand-written form (else only the autograd executor runs it)."""
        return all(supports(name) for name in self.activations())

    def lowered(self, dtype: torch.dtype, shadows: dict[int, torch.Tensor] | None = None) -> DenseChain:
        """This chain computing in ``dtype`` (bf16-mixed: bfloat16 matrix multiplies and activations, the
        gradients written into the float32 parameters); :func:`shadows` says what to copy in again after each update."""
        shadows = {} if shadows is None else shadows
        return replace(self, layers=[layer.lowered(dtype, shadows) for layer in self.layers])

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The input and every layer's output, without autograd (a lower-precision chain takes its input to its
        dtype first)."""
        if self.layers and x.dtype != self.layers[0].weight.dtype:
            x = x.to(self.layers[0].weight.dtype)
        outputs = [x]
        for layer in self.layers:
            weight = layer.weight if layer.transposed else layer.weight.T
            outputs.append(activate_(torch.addmm(layer.bias, outputs[-1], weight), layer.activation))
        return outputs

    @torch.no_grad()
    def backward(self, outputs: Sequence[torch.Tensor], grad: torch.Tensor, input_grad: bool = False,
                 extra: dict[int, torch.Tensor] | None = None) -> torch.Tensor | None:
        """Given ``grad`` = d loss / d (last layer's output) (overwritten), set ``.grad`` of every trainable layer's weight and bias
        (allocated on first use, then overwritten in place each step). ``input_grad``: also return d loss / d input
        (a chain fed by something trainable, as a VAE's decoder is by the sampled codings). ``extra``: gradients of
        further loss terms with respect to inner outputs (index into ``outputs``: a penalty on the codings)."""
        layers = self.layers
        first = 0 if input_grad else next((k for k, layer in enumerate(layers) if layer.trainable), len(layers))
        if layers and grad.dtype != layers[-1].weight.dtype:
            grad = grad.to(layers[-1].weight.dtype)  # a float32 loss gradient into a lower-precision chain
        written: set[int] = set()
        for k in range(len(layers) - 1, first - 1, -1):
            layer, h = layers[k], outputs[k]  # h: the layer's input (batch, in)
            if extra and k + 1 in extra:
                grad.add_(extra[k + 1])  # d loss / d outputs[k + 1], every term (a row broadcasts)
            activation_backward_(grad, outputs[k + 1], layer.activation)  # now d loss / d pre-activation
            if layer.trainable:
                # weight grad: grad.T @ h, (out, in); a transposed layer's weight is (in, out): h.T @ grad
                a, b = (h.T, grad) if layer.transposed else (grad.T, h)
                weight = layer.weight if layer.master_weight is None else layer.master_weight
                _write_grad(weight, a, b, accumulate=id(weight) in written, scratch=layer.grad_scratch)
                written.add(id(weight))
                bias = layer.bias if layer.master_bias is None else layer.master_bias
                torch.sum(grad, 0, dtype=bias.dtype, out=_grad_buffer(bias))
            if k > first or input_grad:
                grad = grad @ (layer.weight.T if layer.transposed else layer.weight)  # (batch, in)
        return grad if input_grad else None


def up(t: torch.Tensor | None) -> torch.Tensor | None:
    """``t`` in float32 if it is of lower precision (bfloat16, float16); float32, float64 and None as they are."""
    return t.float() if t is not None and t.dtype in (torch.bfloat16, torch.float16) else t


def _grad_buffer(param: torch.Tensor) -> torch.Tensor:
    if param.grad is None or param.grad.shape != param.shape:
        param.grad = torch.zeros_like(param)
    return param.grad


def _write_grad(param: torch.Tensor, a: torch.Tensor, b: torch.Tensor, accumulate: bool,
                scratch: torch.Tensor | None = None) -> None:
    """``param.grad = a @ b`` (``+=`` with ``accumulate``), in place; ``a @ b`` in the operands' dtype when they are
    of lower precision than the float32 parameter, then taken to float32. ``scratch``: the parameter's own
    lower-precision buffer, which still holds its previous product when one accumulates (a tied weight's second
    use): the sum is made there, by the matrix multiply, and copied over."""
    buffer = _grad_buffer(param)
    if a.dtype == buffer.dtype:
        if accumulate:
            buffer.addmm_(a, b)
        else:
            torch.mm(a, b, out=buffer)
    elif scratch is None:
        product = torch.mm(a, b)
        buffer.add_(product) if accumulate else buffer.copy_(product)
    else:
        buffer.copy_(scratch.addmm_(a, b) if accumulate else torch.mm(a, b, out=scratch))


def shadows(layers: Iterable[DenseLayer]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """A lower-precision chain's weight and bias copies and the float32 parameters they copy, each once:
    ``torch._foreach_copy_(*shadows(layers))`` refreshes the copies after an update, in one multi-tensor copy."""
    pairs: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
    for layer in layers:
        for shadow, master in ((layer.weight, layer.master_weight), (layer.bias, layer.master_bias)):
            if master is not None:
                pairs.setdefault(id(shadow), (shadow, master))
    return [s for s, _ in pairs.values()], [m for _, m in pairs.values()]


@dataclass
class VariationalPass:
    """What :meth:`VariationalChain.forward` computed, for its backward: the input the encoder saw (drawn
    binary under dynamic binarization), every layer's output, the codings' mean, log-variance, standard deviation
    and noise, and the batch-mean KL divergence to N(0, I) (before ``beta``)."""

    inputs: torch.Tensor
    encoder: list[torch.Tensor]
    mean: torch.Tensor
    logvar: torch.Tensor
    std: torch.Tensor
    eps: torch.Tensor
    decoder: list[torch.Tensor]
    kl: torch.Tensor


@dataclass(frozen=True)
class VariationalChain:
    """A dense variational autoencoder for the hand-written fast path: the ``encoder`` chain (input -> last
    hidden layer), the linear ``mean`` and ``logvar`` heads, the reparameterized codings ``z = mean + std * eps``,
    the ``decoder`` chain (codings -> logits, its output activation for the reconstruction); the KL term
    ``0.5 * sum(exp(logvar) + mean^2 - 1 - logvar)`` per row, averaged over the batch (as
    :func:`aekit.models.variational.gaussian_kl`), weighted by ``beta``. ``binarize``: each batch is drawn as a
    Bernoulli image first (dynamic binarization), which is also the target. Random draws come in the autograd
    model's order (the binary image, then the noise), so both paths see the same numbers."""

    encoder: DenseChain
    mean: DenseLayer
    logvar: DenseLayer
    decoder: DenseChain
    beta: float = 1.0
    binarize: bool = False
    #: the KL term's weight at this step, read at each step (KL warm-up changes it between epochs); None: 1
    kl_weight: Callable[[], float] | None = None

    @property
    def kl_beta(self) -> float:
        """``beta`` times the current KL weight: what the KL term is multiplied by now."""
        return self.beta * (1.0 if self.kl_weight is None else float(self.kl_weight()))

    @property
    def hand_written(self) -> bool:
        return self.encoder.hand_written and self.decoder.hand_written

    def lowered(self, dtype: torch.dtype) -> VariationalChain:
        """This VAE computing its matrix multiplies in ``dtype`` (the heads' outputs, the sampling and the KL term
        stay float32)."""
        shadows: dict[int, torch.Tensor] = {}
        return replace(self, encoder=self.encoder.lowered(dtype, shadows), decoder=self.decoder.lowered(dtype, shadows),
                       mean=self.mean.lowered(dtype, shadows), logvar=self.logvar.lowered(dtype, shadows))

    @property
    def layers(self) -> list[DenseLayer]:
        return [*self.encoder.layers, self.mean, self.logvar, *self.decoder.layers]

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> VariationalPass:
        if self.binarize:
            x = bernoulli(x)
        encoder = self.encoder.forward(x)
        h = encoder[-1]
        mean = up(torch.addmm(self.mean.bias, h, self.mean.weight.T))  # float32 also from a bf16 chain
        logvar = up(torch.addmm(self.logvar.bias, h, self.logvar.weight.T))
        std = torch.exp(0.5 * logvar)
        eps = torch.randn_like(mean)
        decoder = self.decoder.forward(torch.addcmul(mean, std, eps))
        kl = 0.5 * (logvar.exp() + mean.pow(2) - 1.0 - logvar).sum(dim=1).mean()
        return VariationalPass(x, encoder, mean, logvar, std, eps, decoder, kl)

    @torch.no_grad()
    def backward(self, p: VariationalPass, grad: torch.Tensor) -> None:
        """Given ``grad`` = d reconstruction loss / d logits (overwritten), set every weight's and bias's ``.grad``
        for the loss ``reconstruction + beta * kl``."""
        dz = up(self.decoder.backward(p.decoder, grad, input_grad=True))  # (batch, latent)
        c = self.kl_beta / len(dz)
        grad_mean = dz.add(p.mean, alpha=c)  # d/dmean: dz + beta * mean / batch
        # d/dlogvar: dz * eps * std / 2 + beta * (exp(logvar) - 1) / (2 * batch)
        grad_logvar = (dz * p.eps).mul_(p.std).mul_(0.5).add_(p.logvar.exp().sub_(1.0), alpha=0.5 * c)
        h = p.encoder[-1]
        grad_mean, grad_logvar = grad_mean.to(h.dtype), grad_logvar.to(h.dtype)
        for head, g in ((self.mean, grad_mean), (self.logvar, grad_logvar)):
            weight = head.weight if head.master_weight is None else head.master_weight
            bias = head.bias if head.master_bias is None else head.master_bias
            _write_grad(weight, g.T, h, accumulate=False, scratch=head.grad_scratch)
            torch.sum(g, 0, dtype=bias.dtype, out=_grad_buffer(bias))
        grad_h = torch.addmm(grad_mean @ self.mean.weight, grad_logvar, self.logvar.weight)  # (batch, hidden)
        self.encoder.backward(p.encoder, grad_h)
