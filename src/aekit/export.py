"""A trained model out of aekit: one part of it as a plain ``torch.nn.Module``, a TorchScript file or an ONNX file.

Parts: ``"encoder"`` (flat rows -> codings, what ``transform`` gives), ``"decoder"`` (codings -> reconstructions,
``inverse_transform``) and ``"model"`` (rows -> reconstructions, ``predict``). The module is a copy of the fitted
model in eval mode (dropout off, a VAE's codings its posterior means, winner-take-all through its thresholds);
TorchScript files are traced from it (``torch.jit.load`` needs no aekit; PyTorch 2.13 marks TorchScript deprecated in
favour of ``torch.export``, and still loads it), ONNX files are exported by torch's
exporter (``pip install "aekit[export]"`` for onnx and onnxscript), with a dynamic batch dimension.
"""

from __future__ import annotations

import copy
import logging
import os
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .errors import ConfigError, MissingDependency

PARTS = ("encoder", "decoder", "model")
FORMATS = ("onnx", "torchscript")


class ExportedPart(nn.Module):
    """One part of an autoencoder module, as a module of its own (a copy: training it leaves the estimator as it
    was)."""

    def __init__(self, model: nn.Module, part: str) -> None:
        super().__init__()
        if part not in PARTS:
            raise ConfigError(f"part={part!r}: choose one of {', '.join(PARTS)}")
        self.model = copy.deepcopy(model).eval()
        self.part = part

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.part == "encoder":
            return self.model.encode(x)  # (batch, codings)
        if self.part == "decoder":
            return self.model.output(self.model.decode(self.model.constrain(x)))  # (batch, features)
        return self.model.reconstruct(x)

    def extra_repr(self) -> str:
        return f"part={self.part!r}"


def export_module(est: Any, part: str = "encoder") -> nn.Module:
    """``part`` of the fitted estimator ``est`` as a plain ``nn.Module`` on the CPU (see the module's docstring)."""
    from sklearn.utils.validation import check_is_fitted

    check_is_fitted(est, "model_")
    if not hasattr(est.model_, "encode"):
        raise ConfigError(f"{type(est).__name__} holds no autoencoder to export (its model has no encode)")
    return ExportedPart(est.model_, part).cpu()


def example_input(est: Any, part: str) -> torch.Tensor:
    width = int(est.model_.n_codings) if part == "decoder" else int(est.n_features_in_)
    return torch.zeros(2, width)


def export(est: Any, path: str | os.PathLike, fmt: str = "onnx", part: str = "encoder") -> Path:
    """Write ``part`` of ``est`` to ``path`` as ONNX or TorchScript; returns the path."""
    if fmt not in FORMATS:
        raise ConfigError(f"format {fmt!r}: choose one of {', '.join(FORMATS)}")
    module = export_module(est, part)
    x = example_input(est, part)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "torchscript":
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", torch.jit.TracerWarning)  # branches on trained buffers: constants
            warnings.simplefilter("ignore", DeprecationWarning)  # torch deprecates TorchScript for torch.export
            traced = torch.jit.trace(module, x, check_trace=False)
            tmp = path.with_name(f".{path.name}.tmp")
            torch.jit.save(traced, str(tmp))
        os.replace(tmp, path)
        return path
    try:
        import onnx  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError:
        raise MissingDependency("ONNX export needs the onnx and onnxscript packages: pip install \"aekit[export]\" "
                                "(or export --format torchscript)") from None
    batch = torch.export.Dim("batch", min=1)
    quiet = logging.getLogger("torch.onnx")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # its notes on optional torchvision ops do not concern these models
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = torch.onnx.export(module, (x,), dynamo=True, dynamic_shapes={"x": {0: batch}},
                                        input_names=["x"], output_names=[part if part != "model" else "reconstruction"],
                                        verbose=False)
    finally:
        quiet.setLevel(level)
    tmp = path.with_name(f".{path.name}.tmp")
    program.save(str(tmp))
    os.replace(tmp, path)
    return path
