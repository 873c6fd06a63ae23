"""Checkpoints without pickle, saved so that no crash can lose the last good one.

A checkpoint is a folder of four files: ``model.safetensors``, ``training_state.safetensors`` (optimizer and RNG
states), ``history.json`` and ``config.json``, which records the SHA-256 of the others, so that a truncated or
tampered file is refused on load. Non-finite tensors are never written, nor loaded.

A run folder holds its checkpoints as ``checkpoint-NNNNNNNN/`` folders and a pointer, ``checkpoint.json``, naming
the current one. A save is atomic as a whole:

1. the new checkpoint is written into a fresh temporary folder, each file synced, then the folder;
2. the folder is renamed to ``checkpoint-<n+1>`` (one rename), and the run folder synced;
3. the pointer is replaced by one naming it (write, sync, one rename, sync): this is the switch;
4. only then are checkpoints older than the previous one removed (the previous one stays for readers in flight).

So a reader, or a resume after ``kill -9`` at any instant, finds the pointer naming either the complete previous
checkpoint or the complete new one. One writer per run folder (:mod:`aekit.locking`); the writer removes the
temporary files of writers that were killed. Folders written by older aekit (the four files directly in the run
folder) still load; the first save into one moves it to this layout.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from .errors import CheckpointError, RunFolderError
from .locking import LOCK_FILE, folder_lock

MODEL_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
STATE_FILE = "training_state.safetensors"
HISTORY_FILE = "history.json"
CHECKPOINT_FILES = (MODEL_FILE, STATE_FILE, HISTORY_FILE, CONFIG_FILE)
POINTER_FILE = "checkpoint.json"
FORMAT_VERSION = 1
_CHECKPOINT = re.compile(r"checkpoint-(\d{8})")
_PREFIX = "checkpoint-"
#: the names in a run folder that aekit manages: outputs may not replace them
METRICS_FILE = "metrics.csv"  # one row per epoch, rewritten from the history at every save (aekit.runs)
MANAGED = frozenset({POINTER_FILE, LOCK_FILE, *CHECKPOINT_FILES, "run.json", METRICS_FILE})
# what killed writers leave in a run folder: a half-written checkpoint folder, or the temp file of a managed file
_TEMP = re.compile(r"^\.(checkpoint-\d{8}\.tmp-\d+|(" + "|".join(map(re.escape, sorted(MANAGED)))
                   + r")\.[a-z0-9_]{8}\.tmp)$")


@dataclass
class Checkpoint:
    config: dict[str, Any]
    weights: dict[str, torch.Tensor]
    state: dict[str, torch.Tensor] = field(default_factory=dict)
    state_meta: dict[str, str] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)


# -- writing files so that readers see the old one or the whole new one -----------------------------------------------
def fsync_dir(path: Path) -> None:
    """Make a folder's entries (new names, renames) durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_synced(path: Path, data: bytes, mode: int | None = None) -> None:
    """``data`` into a new file ``path`` (which must not exist), synced."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o666 if mode is None else mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


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
    except Exception:
        Path(tmp).unlink(missing_ok=True)
        raise
    return Path(tmp)


def atomic_write(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the whole new one, never a part: a synced
    temp file renamed over it (a link at ``path`` is replaced, never written through), then the folder synced."""
    path = Path(path)
    tmp = _write_temp(path, data)
    try:
        os.replace(tmp, path)
    except Exception:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def _check_finite(tensors: dict[str, torch.Tensor], verb: str) -> None:
    for name, t in tensors.items():
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise CheckpointError(f"refusing to {verb} a checkpoint: tensor {name!r} holds NaN or inf values")


# -- the run folder's checkpoints ------------------------------------------------------------------------------------
def _no_link(path: Path) -> None:
    if path.is_symlink():
        raise RunFolderError(f"{path} is a symbolic link; aekit writes and deletes nothing through links in a run "
                             "folder: remove the link (or use another folder)")


def _read_pointer(folder: Path) -> dict[str, Any] | None:
    path = folder / POINTER_FILE
    if path.is_symlink():
        raise CheckpointError(f"{path} is a symbolic link; aekit reads checkpoints only from the run folder itself")
    try:
        pointer = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (ValueError, UnicodeDecodeError, OSError) as exc:
        raise CheckpointError(f"{path} is damaged ({exc}); restore it, or point to a checkpoint folder "
                              f"(checkpoint-NNNNNNNN) inside {folder}") from None
    if not isinstance(pointer, dict) or not isinstance(pointer.get("current"), str) or \
            not _CHECKPOINT.fullmatch(pointer["current"]):
        raise CheckpointError(f"{path} does not name a checkpoint folder (checkpoint-NNNNNNNN); restore it")
    return pointer


def _checkpoints(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if _CHECKPOINT.fullmatch(p.name)) if folder.is_dir() else []


def checkpoint_dir(path: str | os.PathLike, pointer: dict[str, Any] | None = None) -> Path:
    """The folder holding the current checkpoint's files: the one a run folder's pointer names (``pointer``: as
    already read), or ``path`` itself (a checkpoint folder, or a run folder written by older aekit)."""
    path = Path(path)
    if pointer is None:
        pointer = _read_pointer(path) if path.is_dir() else None
    if pointer is None:
        return path
    current = path / pointer["current"]
    if current.is_symlink() or not current.is_dir():
        raise CheckpointError(f"{path}/{POINTER_FILE} names {pointer['current']}, which is "
                              f"{'a symbolic link' if current.is_symlink() else 'missing'}; restore the run folder")
    return current


def has_checkpoint(path: str | os.PathLike) -> bool:
    path = Path(path)
    return (path / POINTER_FILE).is_file() or (path / CONFIG_FILE).is_file()


def _next_number(folder: Path, pointer: dict[str, Any] | None) -> int:
    numbers = [int(_CHECKPOINT.fullmatch(p.name).group(1)) for p in _checkpoints(folder)]
    if pointer is not None:
        numbers.append(int(_CHECKPOINT.fullmatch(pointer["current"]).group(1)))
    return max(numbers, default=0) + 1


def remove_stale_temps(folder: Path) -> None:
    """Remove what killed writers left: half-written checkpoint folders and temp files (the caller holds the
    folder's lock, so none of them is being written)."""
    for entry in folder.iterdir():
        if _TEMP.match(entry.name) and not entry.is_symlink():
            if entry.is_dir():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)


def save_checkpoint(
    path: str | os.PathLike,
    config: dict[str, Any],
    weights: dict[str, torch.Tensor],
    state: dict[str, torch.Tensor] | None = None,
    state_meta: dict[str, str] | None = None,
    history: list[dict[str, Any]] | None = None,
) -> Path:
    """Write a checkpoint into the run folder ``path`` (created if needed), atomically as a whole (see the
    module's docstring). Returns ``path``."""
    path = Path(path)
    weights = {k: v.detach().contiguous().cpu() for k, v in weights.items()}
    state = {k: v.detach().contiguous().cpu() for k, v in (state or {}).items()}
    _check_finite(weights, "save")
    _check_finite(state, "save")
    blobs = {MODEL_FILE: st_save(weights, metadata={"format": "pt"})}
    if state:
        blobs[STATE_FILE] = st_save(state, metadata=dict(state_meta or {}))
    blobs[HISTORY_FILE] = json.dumps(history or [], indent=1).encode()
    config = {**config, "format_version": FORMAT_VERSION,
              "files": {name: hashlib.sha256(data).hexdigest() for name, data in blobs.items()}}
    blobs[CONFIG_FILE] = json.dumps(config, indent=2).encode()  # last: it vouches for the others
    with folder_lock(path):
        for entry in (path / POINTER_FILE, *(path / n for n in CHECKPOINT_FILES), *_checkpoints(path)):
            _no_link(entry)
        remove_stale_temps(path)
        pointer = _read_pointer(path)
        previous = None if pointer is None else pointer["current"]
        number = _next_number(path, pointer)
        name = f"{_PREFIX}{number:08d}"
        tmp = path / f".{name}.tmp-{os.getpid()}"
        os.mkdir(tmp)
        for file_name, data in blobs.items():
            _write_synced(tmp / file_name, data)
        fsync_dir(tmp)
        os.rename(tmp, path / name)
        fsync_dir(path)
        atomic_write(path / POINTER_FILE, json.dumps({
            "format": "aekit run folder", "version": FORMAT_VERSION, "current": name,
            "config_sha256": hashlib.sha256(blobs[CONFIG_FILE]).hexdigest()}, indent=1).encode())
        # the switch is done: what is older than the previous checkpoint may go, and an old layout's files
        for old in _checkpoints(path):
            if old.name not in (name, previous):
                shutil.rmtree(old)
        for legacy in CHECKPOINT_FILES:
            (path / legacy).unlink(missing_ok=True)
    return path


def _read(path: Path, missing: str) -> bytes:
    """The bytes of ``path``; :class:`_Missing` (with the message ``missing``) if it is gone."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise _Missing(missing) from None
    except OSError as exc:
        raise CheckpointError(f"cannot read {path}: {exc.strerror or exc}") from None


def _read_verified(path: Path, name: str, digest: str | None) -> bytes:
    data = _read(path / name, f"checkpoint {path} is incomplete: {name} is missing")
    if digest is not None and hashlib.sha256(data).hexdigest() != digest:
        raise CheckpointError(
            f"checkpoint {path} is corrupt: {name} does not match the checksum in {CONFIG_FILE} "
            "(truncated, half-written or modified); use an intact copy or retrain"
        )
    return data


class _Missing(CheckpointError):
    """A file of the checkpoint is gone (a writer may have switched to a newer one meanwhile)."""


def _load_tensors(data: bytes, where: str) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    try:
        tensors = st_load(data)
        n = int.from_bytes(data[:8], "little")
        meta = json.loads(data[8 : 8 + n]).get("__metadata__", {}) or {}
    except (SafetensorError, ValueError, RuntimeError, OSError, AttributeError) as exc:
        raise CheckpointError(f"{where} is not a valid safetensors file ({exc}); aekit never loads pickle files") from None
    if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
        raise CheckpointError(f"{where} has damaged metadata; use an intact copy or retrain")
    return tensors, meta


def _load_folder(path: Path, with_state: bool, config_sha: str | None) -> Checkpoint:
    raw = _read(path / CONFIG_FILE, f"no checkpoint at {path}: {CONFIG_FILE} is missing")
    if config_sha is not None and hashlib.sha256(raw).hexdigest() != config_sha:
        raise CheckpointError(f"checkpoint {path} is corrupt: its {CONFIG_FILE} is not the one the run folder's "
                              f"{POINTER_FILE} names; use an intact copy or retrain")
    try:
        config = json.loads(raw)
        if not isinstance(config, dict):
            raise ValueError("not a JSON object")
    except (ValueError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"checkpoint {path} is corrupt: {CONFIG_FILE} is not valid JSON ({exc})") from None
    files = config.get("files", {})
    if not isinstance(files, dict) or MODEL_FILE not in files:
        raise CheckpointError(f"checkpoint {path} is corrupt: {CONFIG_FILE} lists no {MODEL_FILE}")
    weights, _ = _load_tensors(_read_verified(path, MODEL_FILE, files[MODEL_FILE]), str(path / MODEL_FILE))
    _check_finite(weights, "load")
    ckpt = Checkpoint(config=config, weights=weights)
    if with_state and STATE_FILE in files:
        ckpt.state, ckpt.state_meta = _load_tensors(_read_verified(path, STATE_FILE, files[STATE_FILE]),
                                                    str(path / STATE_FILE))
        _check_finite(ckpt.state, "load")
    if HISTORY_FILE in files:
        try:
            ckpt.history = json.loads(_read_verified(path, HISTORY_FILE, files[HISTORY_FILE]))
        except ValueError:
            raise CheckpointError(f"checkpoint {path} is corrupt: {HISTORY_FILE} is not valid JSON") from None
        if not isinstance(ckpt.history, list) or not all(isinstance(r, dict) for r in ckpt.history):
            raise CheckpointError(f"checkpoint {path} is corrupt: {HISTORY_FILE} is not a list of epoch records")
    return ckpt


def load_checkpoint(path: str | os.PathLike, with_state: bool = True) -> Checkpoint:
    """Read the current checkpoint of a run folder (or a checkpoint folder itself, or the ``config.json`` /
    ``model.safetensors`` inside one); verify checksums; refuse non-finite tensors. A save that switches to a
    newer checkpoint meanwhile is followed (the read starts again from the new pointer)."""
    path = Path(path)
    if path.is_file() and path.name in (CONFIG_FILE, MODEL_FILE, POINTER_FILE):
        path = path.parent
    if not path.is_dir():
        raise CheckpointError(
            f"no checkpoint at {path}: expected a run folder with {POINTER_FILE}, or a folder with {CONFIG_FILE} "
            f"and {MODEL_FILE} (written by aekit)"
        )
    for attempt in range(5):
        pointer = _read_pointer(path)
        try:
            folder = checkpoint_dir(path, pointer)  # the folder of the very pointer whose checksum is checked
            return _load_folder(folder, with_state, None if pointer is None else pointer.get("config_sha256"))
        except (_Missing, CheckpointError):
            # a writer switched meanwhile and removed what this read began with: read the new pointer
            if pointer is None or attempt == 4 or _read_pointer(path) == pointer:
                raise
    raise AssertionError("unreachable")


# -- optimizer state as tensors ------------------------------------------------------------------------------------
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
    try:
        for key, value in tensors.items():
            head, _, rest = key.partition(".")
            if head != prefix:
                continue
            idx, _, name = rest.partition(".")
            state.setdefault(int(idx), {})[name] = value
        groups = json.loads(groups_json)
        counts = [len(g["params"]) for g in groups]
    except (ValueError, TypeError, KeyError) as exc:
        raise CheckpointError(f"the checkpoint's optimizer state is damaged ({exc!r}); resume from an intact copy "
                              "or train again") from None
    settings = [{k: v for k, v in group.items() if k != "params"} for group in optimizer.param_groups]
    if counts != [len(g["params"]) for g in optimizer.param_groups]:
        state, groups = _regroup(state, groups, optimizer)
    try:
        optimizer.load_state_dict({"state": state, "param_groups": groups})
    except (ValueError, KeyError, TypeError, RuntimeError) as exc:
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


__all__ = ["CHECKPOINT_FILES", "CONFIG_FILE", "Checkpoint", "HISTORY_FILE", "MANAGED", "MODEL_FILE", "POINTER_FILE",
           "STATE_FILE", "atomic_write", "checkpoint_dir", "has_checkpoint", "load_checkpoint",
           "load_optimizer_state", "optimizer_state_tensors", "save_checkpoint"]
