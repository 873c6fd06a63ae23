"""Checkpoints without pickle: a folder with ``model.safetensors``, ``config.json``, ``training_state.safetensors``
(optimizer and RNG states) and ``history.json``.

Every file is written atomically (temp file in the same folder, fsync, ``os.replace``); ``config.json`` goes last
and records the SHA-256 of the others, so a folder caught between two writes, truncated or tampered with is
refused on load instead of giving a model that mixes two epochs. Non-finite tensors are never written.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from .errors import CheckpointError

MODEL_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
STATE_FILE = "training_state.safetensors"
HISTORY_FILE = "history.json"
FORMAT_VERSION = 1


@dataclass
class Checkpoint:
    config: dict[str, Any]
    weights: dict[str, torch.Tensor]
    state: dict[str, torch.Tensor] = field(default_factory=dict)
    state_meta: dict[str, str] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)


def _write_temp(path: Path, data: bytes) -> Path:
    """``data`` in a synced temp file beside ``path`` (same folder, so ``os.replace`` is atomic)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the file the permissions open() would
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return Path(tmp)


def atomic_write(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the whole new one, never a part."""
    atomic_write_many({Path(path): data})


def atomic_write_many(blobs: dict[Path, bytes]) -> None:
    """Write several files: every temp file is complete and synced before the first rename, and the renames
    run back to back in the given order (put the file that vouches for the others last)."""
    temps: dict[Path, Path] = {}
    try:
        for path, data in blobs.items():
            temps[path] = _write_temp(path, data)
        for path, tmp in temps.items():
            os.replace(tmp, path)
    finally:
        for tmp in temps.values():
            tmp.unlink(missing_ok=True)


def _check_finite(tensors: dict[str, torch.Tensor]) -> None:
    for name, t in tensors.items():
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise CheckpointError(f"refusing to save a checkpoint: tensor {name!r} holds NaN or inf values")


def save_checkpoint(
    path: str | os.PathLike,
    config: dict[str, Any],
    weights: dict[str, torch.Tensor],
    state: dict[str, torch.Tensor] | None = None,
    state_meta: dict[str, str] | None = None,
    history: list[dict[str, Any]] | None = None,
) -> Path:
    """Write a checkpoint folder (created if needed). Returns its path."""
    path = Path(path)
    weights = {k: v.detach().contiguous().cpu() for k, v in weights.items()}
    state = {k: v.detach().contiguous().cpu() for k, v in (state or {}).items()}
    _check_finite(weights)
    _check_finite(state)
    path.mkdir(parents=True, exist_ok=True)
    blobs = {MODEL_FILE: st_save(weights, metadata={"format": "pt"})}
    if state:
        blobs[STATE_FILE] = st_save(state, metadata=dict(state_meta or {}))
    blobs[HISTORY_FILE] = json.dumps(history or [], indent=1).encode()
    config = {**config, "format_version": FORMAT_VERSION,
              "files": {name: hashlib.sha256(data).hexdigest() for name, data in blobs.items()}}
    blobs[CONFIG_FILE] = json.dumps(config, indent=2).encode()  # last: it vouches for the others
    atomic_write_many({path / name: data for name, data in blobs.items()})
    return path


def has_checkpoint(path: str | os.PathLike) -> bool:
    return (Path(path) / CONFIG_FILE).is_file()


def _read_verified(path: Path, name: str, digest: str | None) -> bytes:
    try:
        data = (path / name).read_bytes()
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint {path} is incomplete: {name} is missing") from None
    if digest is not None and hashlib.sha256(data).hexdigest() != digest:
        raise CheckpointError(
            f"checkpoint {path} is corrupt: {name} does not match the checksum in {CONFIG_FILE} "
            "(truncated, half-written or modified); use an intact copy or retrain"
        )
    return data


def _load_tensors(data: bytes, where: str) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    try:
        tensors = st_load(data)
        n = int.from_bytes(data[:8], "little")
        meta = json.loads(data[8 : 8 + n]).get("__metadata__", {}) or {}
    except (SafetensorError, ValueError, RuntimeError, OSError) as exc:
        raise CheckpointError(f"{where} is not a valid safetensors file ({exc}); aekit never loads pickle files") from None
    return tensors, meta


def load_checkpoint(path: str | os.PathLike, with_state: bool = True) -> Checkpoint:
    """Read a checkpoint folder (or the ``config.json`` / ``model.safetensors`` inside one); verify checksums."""
    path = Path(path)
    if path.is_file() and path.name in (CONFIG_FILE, MODEL_FILE):
        path = path.parent
    if not path.is_dir():
        raise CheckpointError(
            f"no checkpoint at {path}: expected a folder with {CONFIG_FILE} and {MODEL_FILE} (written by aekit)"
        )
    try:
        config = json.loads((path / CONFIG_FILE).read_text())
        if not isinstance(config, dict):
            raise ValueError("not a JSON object")
    except FileNotFoundError:
        raise CheckpointError(f"no checkpoint at {path}: {CONFIG_FILE} is missing") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"checkpoint {path} is corrupt: {CONFIG_FILE} is not valid JSON ({exc})") from None
    files = config.get("files", {})
    if MODEL_FILE not in files:
        raise CheckpointError(f"checkpoint {path} is corrupt: {CONFIG_FILE} lists no {MODEL_FILE}")
    weights, _ = _load_tensors(_read_verified(path, MODEL_FILE, files[MODEL_FILE]), str(path / MODEL_FILE))
    ckpt = Checkpoint(config=config, weights=weights)
    if with_state and STATE_FILE in files:
        ckpt.state, ckpt.state_meta = _load_tensors(_read_verified(path, STATE_FILE, files[STATE_FILE]), str(path / STATE_FILE))
    if HISTORY_FILE in files:
        try:
            ckpt.history = json.loads(_read_verified(path, HISTORY_FILE, files[HISTORY_FILE]))
        except ValueError:
            raise CheckpointError(f"checkpoint {path} is corrupt: {HISTORY_FILE} is not valid JSON") from None
    return ckpt


def optimizer_state_tensors(optimizer: torch.optim.Optimizer, prefix: str = "optimizer") -> tuple[dict[str, torch.Tensor], str]:
    """Flatten ``optimizer.state_dict()`` into tensors plus a JSON string for the rest (param groups)."""
    sd = optimizer.state_dict()
    tensors = {}
    for idx, slots in sd["state"].items():
        for name, value in slots.items():
            if not torch.is_tensor(value):
                value = torch.tensor(value)
            elif value.dim() == 0:  # a step counter is a view into the optimizer's one counter tensor: copied
                value = value.clone()
            tensors[f"{prefix}.{idx}.{name}"] = value
    return tensors, json.dumps(sd["param_groups"])


def load_optimizer_state(optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], groups_json: str,
                         prefix: str = "optimizer") -> None:
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        head, _, rest = key.partition(".")
        if head != prefix:
            continue
        idx, _, name = rest.partition(".")
        state.setdefault(int(idx), {})[name] = value
    settings = [{k: v for k, v in group.items() if k != "params"} for group in optimizer.param_groups]
    groups = json.loads(groups_json)
    if [len(g["params"]) for g in groups] != [len(g["params"]) for g in optimizer.param_groups]:
        state, groups = _regroup(state, groups, optimizer)
    try:
        optimizer.load_state_dict({"state": state, "param_groups": groups})
    except (ValueError, KeyError) as exc:
        raise CheckpointError(f"optimizer state in the checkpoint does not fit the model: {exc}") from None
    for group, current in zip(optimizer.param_groups, settings):  # the moments resume; the settings are today's
        group.update(current)


def _regroup(state: dict[int, dict[str, torch.Tensor]], groups: list[dict], optimizer: torch.optim.Optimizer
             ) -> tuple[dict[int, dict[str, torch.Tensor]], list[dict]]:
    """Map a state saved with another grouping of the same parameters (e.g. weights and biases in two groups, as
    aekit did before one group became the default without L2) onto ``optimizer``'s grouping. Both groupings
    keep the model's parameter order within each shape, so the k-th saved state of a shape belongs to the k-th
    current parameter of that shape."""
    current = [p for g in optimizer.param_groups for p in g["params"]]
    saved = [i for g in groups for i in g["params"]]
    if len(saved) != len(current):
        raise CheckpointError(f"optimizer state in the checkpoint does not fit the model: it holds {len(saved)} "
                              f"parameters, the model trains {len(current)}")
    taken: set[int] = set()
    remapped: dict[int, dict[str, torch.Tensor]] = {}
    for idx in saved:
        if idx not in state:
            continue
        shape = state[idx]["exp_avg"].shape if "exp_avg" in state[idx] else next(
            (v.shape for v in state[idx].values() if v.dim() > 0), None)
        match = next((j for j, p in enumerate(current) if j not in taken and p.shape == shape), None)
        if match is None:
            raise CheckpointError("optimizer state in the checkpoint does not fit the model: no parameter of shape "
                                  f"{tuple(shape) if shape is not None else '?'} is left for it")
        taken.add(match)
        remapped[match] = state[idx]
    start, regrouped = 0, []
    for group in optimizer.param_groups:
        regrouped.append({**{k: v for k, v in groups[0].items() if k != "params"},
                          "params": list(range(start, start + len(group["params"])))})
        start += len(group["params"])
    return remapped, regrouped
