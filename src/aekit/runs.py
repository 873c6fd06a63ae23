"""Run folders: what a training run leaves on disk beside its checkpoint, and how commands find their data again.

A run folder holds the checkpoint (:mod:`aekit.io`), ``run.json`` (the run's notes: where its data came from,
the image shape, metrics), and figures. This layer sits below the command line and the report, which both use it;
it never imports either.

- :func:`data_spec`: which data a command means (``--dataset``, ``--data`` or the run's own), as JSON;
- :func:`load_split`: the train and test rows (and labels) a spec names;
- :func:`read_notes` / :func:`write_notes`: ``run.json``, written atomically;
- :func:`position_text`: where a checkpoint stands, in words, for resume messages;
- :func:`save_npy`: an output array, written atomically;
- :func:`write_metrics` / :func:`read_metrics`: ``metrics.csv``, one row per epoch.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from .errors import ConfigError, RunFolderError

RUN_FILE = "run.json"  # the run's own notes beside a checkpoint: data source, image shape, metrics
DEFAULT_DATASET = "digits"
TEST_FRACTION = 0.2  # of a user file held out as its test part (seeded), unless told otherwise
SPLIT_SEED = 0


def data_spec(dataset: str | None = None, data: str | os.PathLike | None = None, label_column: Any = None,
              notes: dict[str, Any] | None = None, test_fraction: float | None = None,
              rows: int | None = None) -> dict[str, Any]:
    spec = _data_spec(dataset, data, label_column, notes, test_fraction)
    if rows is None:
        return spec
    if int(rows) < 1:
        raise ConfigError(f"--rows must be >= 1 training rows, got {rows}")
    return {**spec, "rows": int(rows), "rows_seed": SPLIT_SEED}


def _data_spec(dataset: str | None, data: str | os.PathLike | None, label_column: Any,
               notes: dict[str, Any] | None, test_fraction: float | None) -> dict[str, Any]:
    """The data a command means, as JSON: a named ``dataset`` (its own train/test split), a user file (``data``,
    with its ``label_column``; a seeded ``test_fraction`` of its rows, default 0.2, held out as its test part),
    else the data recorded in a run's ``notes``, else the embedded digits. A file that is the run's own keeps the
    run's split, so that "test" rows are never rows the run trained on."""
    if dataset and data:
        raise ConfigError("give either --dataset or --data, not both")
    recorded = notes.get("data") if notes and isinstance(notes.get("data"), dict) else None
    if data:
        spec = {"file": str(Path(data).resolve()), "label_column": label_column}
        if recorded is not None and {k: recorded.get(k) for k in spec} == spec and test_fraction is None:
            return recorded
        fraction = TEST_FRACTION if test_fraction is None else float(test_fraction)
        if not 0 <= fraction < 1:
            raise ConfigError(f"--test-fraction must be in [0, 1), got {fraction}")
        return {**spec, "test_fraction": fraction, "split_seed": SPLIT_SEED}
    if dataset:
        return {"dataset": dataset}
    if recorded is not None:
        return recorded
    return {"dataset": DEFAULT_DATASET}


class DataSplit(NamedTuple):
    X_train: np.ndarray
    X_test: np.ndarray
    image_shape: Any
    y_train: np.ndarray | None
    y_test: np.ndarray | None
    name: str  # dataset name or file name
    split: str  # what X_test is: "test split" or "whole file"


def load_split(spec: dict[str, Any], in_memory: Any = True) -> DataSplit:
    """The data a spec names: a dataset's train and test splits, or a user file's training rows and held-out test
    rows; with ``rows``, a seeded subsample of that many training rows (the test rows stay whole).

    ``in_memory``: True loads a file whole (float32 arrays); "auto" or False (commands that stream: ``train``,
    ``encode``, ``reconstruct``, ``hash index``) leave a ``.npy`` file or a folder of shards or images on disk, as
    :class:`~aekit.data.sources.RowSource` splits of the same rows, when it does not fit in memory
    (:func:`aekit.data.stream.fits_in_memory`) or always (False)."""
    split = _load_split(spec, in_memory)
    n = spec.get("rows")
    if n is None or n >= len(split.X_train):
        return split
    keep = np.sort(np.random.default_rng(spec.get("rows_seed", SPLIT_SEED)).permutation(len(split.X_train))[:n])
    X_train = split.X_train.subset(keep) if hasattr(split.X_train, "subset") else split.X_train[keep]
    return split._replace(X_train=X_train, y_train=None if split.y_train is None else split.y_train[keep])


def _source_of(spec: dict[str, Any], in_memory: Any):
    """The spec's file as a :class:`~aekit.data.sources.RowSource` when it may be streamed (a ``.npy`` file, a folder
    of shards or of images; no label column; ``in_memory`` not True) or is a folder of shards, else None. Opening
    reads headers only."""
    from .data.sources import is_shard_folder, open_rows

    path = Path(spec["file"])
    if spec.get("label_column") is not None or not path.exists():
        return None
    if is_shard_folder(path) or (in_memory is not True and (path.is_dir() or path.suffix.lower() == ".npy")):
        return open_rows(path)
    return None


def _load_split(spec: dict[str, Any], in_memory: Any = True) -> DataSplit:
    from .data import load_dataset, load_file

    if "dataset" in spec:
        ds = load_dataset(spec["dataset"])
        return DataSplit(ds.X_train, ds.X_test, ds.image_shape, ds.y_train, ds.y_test, spec["dataset"], "test split")
    if "file" not in spec:
        raise ConfigError(f"the run's data entry {spec!r} names no dataset or file; give --dataset or --data")
    from .data.sources import ShardedSource
    from .data.stream import fits_in_memory

    source = _source_of(spec, in_memory)
    streamed = source is not None and (in_memory is False or (in_memory == "auto" and not fits_in_memory(source)))
    if streamed:
        X, y, image_shape = source, source.labels, source.image_shape
    elif isinstance(source, ShardedSource):  # load_file reads folders of images, not of shards
        X, y, image_shape = source.to_array(), source.labels, source.image_shape
    else:
        X, y, image_shape = load_file(spec["file"], label_column=spec.get("label_column"))
    name, fraction = Path(spec["file"]).name, spec.get("test_fraction")
    if not fraction:  # no held-out part (asked for, or a run recorded before files were split)
        return DataSplit(X, X, image_shape, y, y, name, "whole file (the training rows)")
    n_test = max(1, int(round(fraction * len(X))))
    if n_test >= len(X):
        raise ConfigError(f"{name} has {len(X)} rows: a test fraction of {fraction} leaves none to train on; use "
                          "more rows, a smaller --test-fraction, or --test-fraction 0 to test on the training rows")
    perm = np.random.default_rng(spec.get("split_seed", SPLIT_SEED)).permutation(len(X))
    test, train = np.sort(perm[:n_test]), np.sort(perm[n_test:])
    del perm
    rows = X.subset if streamed else X.__getitem__
    return DataSplit(rows(train), rows(test), image_shape, None if y is None else y[train],
                     None if y is None else y[test], name, f"held-out {fraction:g} of the file, {n_test} rows")


def read_notes(run: str | os.PathLike) -> dict[str, Any]:
    """The run's ``run.json`` ({} when there is none)."""
    path = Path(run) / RUN_FILE
    try:
        notes = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (ValueError, UnicodeDecodeError):
        raise RunFolderError(f"{path} is not valid JSON; delete it or use another run folder") from None
    if not isinstance(notes, dict):
        raise RunFolderError(f"{path} does not hold a JSON object; delete it or use another run folder")
    return notes


def write_notes(run: str | os.PathLike, notes: dict[str, Any]) -> None:
    """``run.json``, atomically; unchanged notes are not rewritten."""
    path = Path(run) / RUN_FILE
    data = json.dumps(notes, indent=2).encode()
    if not path.is_symlink() and path.is_file() and path.read_bytes() == data:
        return
    write_file(run, RUN_FILE, data)


def write_file(run: str | os.PathLike, name: str, data: bytes) -> Path:
    """``data`` as the file ``name`` of the run folder ``run``, atomically; a symbolic link there is refused, never
    written through."""
    from .io import atomic_write

    path = Path(run) / name
    if path.is_symlink():
        raise RunFolderError(f"{path} is a symbolic link; aekit writes nothing through links in a run folder: "
                             "remove the link (or use another run folder)")
    atomic_write(path, data)
    return path


def run_folder_of(path: str | os.PathLike) -> Path | None:
    """The run folder that ``path`` lies in (the nearest folder above it holding a checkpoint or ``run.json``)."""
    from .io import has_checkpoint

    resolved = Path(os.path.abspath(path))
    for parent in [resolved.parent, *resolved.parent.parents]:
        if has_checkpoint(parent) or (parent / RUN_FILE).is_file():
            if parent.name.startswith("checkpoint-") and has_checkpoint(parent.parent):
                return parent.parent  # a checkpoint folder inside a run folder
            return parent
    return None


def check_output(path: str | os.PathLike, what: str = "--out") -> Path:
    """Refuse an output path that would replace a run folder's own files (its checkpoints, pointer, notes, lock),
    also through a link; returns the path."""
    from .io import MANAGED

    path = Path(path)
    for candidate in {Path(os.path.abspath(path)), path.resolve()}:
        run = run_folder_of(candidate)
        if run is None:
            continue
        first = candidate.relative_to(run).parts[0]
        if first in MANAGED or first.startswith(("checkpoint-", ".checkpoint-")):
            raise RunFolderError(f"{what} {path} would overwrite {first} of the run folder {run}; write the output "
                                 "elsewhere (e.g. beside the run folder)")
        if candidate == Path(os.path.abspath(path)) and path.is_symlink():
            raise RunFolderError(f"{what} {path} is a symbolic link inside the run folder {run}; aekit writes "
                                 "nothing through links there: remove it or choose another name")
    return path


def save_npy(path: str | os.PathLike, array: np.ndarray) -> None:
    """``array`` to a ``.npy`` file (no pickle), atomically; never over a run folder's own files."""
    from .io import atomic_write

    check_output(path)
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, buf.getvalue())


def write_npy_rows(path: str | os.PathLike, shape: tuple[int, ...], dtype: Any, fill: Any) -> None:
    """A ``.npy`` file written through a memory map, so that rows larger than memory go to disk as they are
    computed: ``fill(array)`` writes into the mapped array; the file appears atomically (a temporary name, fsync,
    rename), never over a run folder's own files, and is removed if ``fill`` fails."""
    from .io import fsync_dir

    path = check_output(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.dtype(dtype), shape=tuple(shape))
        fill(out)
        out.flush()
        del out
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
        fsync_dir(path.parent)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def head(X: Any, n: int | None = None, start: int = 0) -> np.ndarray:
    """Rows ``start .. start + n`` (all from ``start`` when ``n`` is None) of ``X`` in memory: float32 features
    for a streamed source (checked against the memory limit), a slice of an array."""
    stop = len(X) if n is None else min(len(X), start + n)
    if hasattr(X, "features"):
        if start == 0 and stop == len(X):
            return X.to_array()
        return X.features(X.read(start, stop))
    return X[start:stop]


def metrics_csv(history: list[dict[str, Any]]) -> bytes:
    """The history as CSV: one row per epoch, one column per key any record has (in first-seen order)."""
    columns = list(dict.fromkeys(k for record in history for k in record))
    lines = [",".join(columns)]
    for record in history:
        lines.append(",".join("" if record.get(c) is None else (repr(record[c]) if isinstance(record[c], float)
                                                                  else str(record[c])) for c in columns))
    return ("\n".join(lines) + "\n").encode()


def write_metrics(run: str | os.PathLike, history: list[dict[str, Any]]) -> None:
    """``metrics.csv`` in the run folder (atomically), from the history that the checkpoint holds: the two never
    disagree about the epochs done. Written at every save, so every run folder has it."""
    from .io import METRICS_FILE

    write_file(run, METRICS_FILE, metrics_csv(history))


def read_metrics(run: str | os.PathLike) -> list[dict[str, Any]]:
    """``metrics.csv`` back as records (numbers as floats), [] when there is none."""
    from .io import METRICS_FILE

    path = Path(run) / METRICS_FILE
    if not path.is_file():
        return []
    lines = path.read_text().splitlines()
    if not lines:
        return []
    columns = lines[0].split(",")
    records = []
    for line in lines[1:]:
        record: dict[str, Any] = {}
        for key, cell in zip(columns, line.split(",")):
            if cell == "":
                continue
            try:
                record[key] = float(cell)
            except ValueError:
                record[key] = cell
        records.append(record)
    return records


def figure_bytes(fig: Any, dpi: int = 100) -> bytes:
    """A matplotlib figure as PNG bytes (written with :func:`write_file` or ``atomic_write``, never through a
    link)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def epochs_text(est: Any) -> str:
    """The epochs a fitted estimator trained, in words: ``5 epochs``, or ``greedy phases 4+4, 2 fine-tuning
    epochs`` (the history's records name their phase)."""
    phases: dict[Any, int] = {}
    for record in est.history_:
        phase = record.get("phase")
        if phase is not None:
            phases[phase] = phases.get(phase, 0) + 1
    if not phases:
        return f"{est.n_epochs_} epoch{'' if est.n_epochs_ == 1 else 's'}"
    greedy = "+".join(str(n) for phase, n in phases.items() if phase != "fine-tune")
    return f"greedy phases {greedy} epochs, {phases.get('fine-tune', 0)} fine-tuning epochs"


def position_text(est: Any) -> str:
    """Where a loaded estimator's checkpoint stands, in words: ``epoch 4/10, batch 8`` or ``greedy phase 2/2,
    epoch 1/2, batch 8`` (the epoch being the one that continues)."""
    position = est._saved_position() if est._train_state else None
    step, phase = (position.step, position.phase) if position is not None else (0, 0)
    if phase:  # stopped inside greedy pretraining: that phase's own epochs
        from .estimators.parts import Greedy

        phases = est.part(Greedy).phases(est)
        where, done, total = f"greedy phase {phase}/{len(phases)}, ", position.epoch, phases[phase - 1].epochs
    else:
        where, done, total = "", est.n_epochs_, est.epochs
    return f"{where}epoch {done + 1 if step else done}/{total}" + (f", batch {step}" if step else "")
