"""``aekit hash train|index|query|evaluate``: semantic hashing from the command line.

* ``train``: fit a :class:`~aekit.SemanticHasher` and write a run folder (as ``aekit train`` does);
* ``index``: hash a split of the data and store the index in the run's checkpoint;
* ``query``: look up rows of a split in the index, by Hamming radius or k nearest;
* ``evaluate``: retrieval metrics (database = train split, queries = test split; labels say what is relevant),
  next to random-projection LSH, PCA-ITQ and the supervised variant on the same number of bits.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError
from ..estimators.parts import non_negative_int_list
from ..runs import load_split, read_notes, write_notes
from ._flags import add_flags, cli_defaults, flagged, given_params
from ._shared import add_common, add_data_args, emit, load_run, norm, run_spec, spec_of
from .train import FROM_DATA, MAY_CHANGE

BASELINES = ("lsh", "itq", "supervised")
UsageError = ConfigError


def _hasher() -> type:
    from ..registry import ESTIMATORS

    return ESTIMATORS.get("SemanticHasher")


def _labelled(spec: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, Any]:
    """(X_db, y_db, X_query, y_query, image_shape): the train and test splits of the data (a user file's held-out
    part is the queries), with their labels."""
    data = load_split(spec)
    if data.y_train is None or data.y_test is None:
        raise UsageError(f"{data.name} has no labels; evaluation needs them (--label-column for tables, "
                         "a 'y' array in .npz, one subfolder per class for image folders)")
    return data.X_train, data.y_train, data.X_test, data.y_test, data.image_shape


def _split(spec: dict[str, Any], split: str, in_memory: Any = True) -> np.ndarray:
    data = load_split(spec, in_memory)
    return data.X_test if split == "test" else data.X_train


# -- commands --------------------------------------------------------------------------------------------------
def cmd_train(args: argparse.Namespace) -> None:
    from ..io import has_checkpoint
    from ..training.distributed import init_from_env, is_main_process

    SemanticHasher = _hasher()
    given = given_params(args, SemanticHasher, "aekit hash train")
    device = init_from_env(given.get("device"))  # under torchrun: join the group; rank 0 alone writes and prints
    if device is not None:
        given["device"] = device
    run = Path(args.out) if args.out else Path("runs") / f"hash-{args.dataset or (Path(args.data).stem if args.data else 'digits')}"
    notes = read_notes(run)
    spec = spec_of(args)
    X_train, _, image_shape = load_split(spec)[:3]
    params = {**cli_defaults(SemanticHasher), **given}
    defaults = {p.name: p.default for p in SemanticHasher.declared_params()}
    if has_checkpoint(run) and not args.overwrite:
        est = load_run(str(run), given.get("device"))
        saved = est.get_params()
        diff = [k for k in flagged(SemanticHasher) if k not in MAY_CHANGE and (k not in FROM_DATA or k in given)
                and norm(saved.get(k)) != norm(params.get(k, defaults[k]))]
        if type(est).__name__ != "SemanticHasher" or diff:
            raise UsageError(f"{run} already holds a run with other settings ({', '.join(diff) or 'estimator'}); "
                             "use another --out or --overwrite to replace it")
        est.set_params(epochs=params.get("epochs", defaults["epochs"]), warm_start=True, checkpoint_dir=str(run),
                       verbose=0 if args.quiet else 1)
    else:
        params.setdefault("image_shape", image_shape)
        est = SemanticHasher(**params, checkpoint_dir=str(run), verbose=0 if args.quiet else 1)
    if is_main_process():
        run.mkdir(parents=True, exist_ok=True)
    wall, cpu = time.perf_counter(), time.process_time()
    est.fit(X_train)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    if not is_main_process():
        return
    est.save(run)
    metrics = {"epochs": est.n_epochs_, "train_seconds": round(wall, 2), "train_cpu_seconds": round(cpu, 2),
               "loss": est.history_[-1]["loss"] if est.history_ else None}
    write_notes(run, {**notes, "data": spec, "image_shape": image_shape, "metrics": metrics})
    emit(args, f"trained a {est.n_bits}-bit semantic hasher ({est.n_epochs_} epochs, {wall:.1f} s, "
                f"{cpu:.1f} s CPU); run folder: {run}", {**metrics, "run": str(run)})


def cmd_index(args: argparse.Namespace) -> None:
    from ..hashing import bucket_stats

    est = load_run(args.run, args.device, needs=("hash",), command="aekit hash")
    notes = read_notes(args.run)
    spec = spec_of(args, notes)
    X = _split(spec, args.split, est.in_memory)  # streamed when it does not fit: the index holds packed codes only
    t0 = time.perf_counter()
    est.index(X, append=args.append)
    seconds = time.perf_counter() - t0
    est.save(args.run)
    stats = bucket_stats(est.index_.codes, est.n_bits)
    write_notes(Path(args.run), {**notes, "index": {"data": spec, "split": args.split, "size": len(est.index_)}})
    emit(args, f"indexed {len(est.index_)} items ({args.split} split) in {seconds:.2f} s: {stats['buckets']} "
                f"buckets, largest {stats['largest']}, {stats['singleton_share']:.1%} alone",
          {"size": len(est.index_), "seconds": seconds, **stats})


def cmd_query(args: argparse.Namespace) -> None:
    if (args.radius is None) == (args.k is None):
        raise UsageError("give exactly one of --radius R or --k K")
    est = load_run(args.run, args.device, needs=("hash",), command="aekit hash")
    if len(est.index_) == 0:
        raise UsageError(f"{args.run} has no index yet: run `aekit hash index {args.run}` first")
    spec = run_spec(args, args.run)
    X = _split(spec, args.split)
    rows = list(args.rows) if args.rows else list(range(min(5, len(X))))
    if max(rows) >= len(X):
        raise UsageError(f"--rows asks for row {max(rows)}, but the {args.split} split has {len(X)} rows")
    ids, dists = est.query(X[rows], radius=args.radius, k=args.k)
    lines, results = [], []
    for row, i, d in zip(rows, ids, dists):
        shown = ", ".join(f"{a}:{b}" for a, b in zip(i[:10].tolist(), d[:10].tolist()))
        lines.append(f"row {row}: {len(i)} items ({'within radius ' + str(args.radius) if args.k is None else 'nearest'})"
                     f"  id:distance {shown}{' ...' if len(i) > 10 else ''}")
        results.append({"row": row, "ids": i.tolist(), "distances": d.tolist()})
    emit(args, "\n".join(lines), {"queries": results})


def _baseline(name: str, n_bits: int, seed: int, supervised_epochs: int):
    from ..hashing import LSHHasher, PCAITQHasher, SupervisedHasher

    if name == "lsh":
        return "LSH (random projections)", LSHHasher(n_bits, random_state=seed)
    if name == "itq":
        return "PCA-ITQ", PCAITQHasher(n_bits, random_state=seed)
    return "supervised (classifier code layer)", SupervisedHasher(n_bits, epochs=supervised_epochs, random_state=seed)


def cmd_evaluate(args: argparse.Namespace) -> None:
    from ..hashing import evaluate_codes, format_table

    unknown = set(args.baselines) - set(BASELINES)
    if unknown:
        raise UsageError(f"unknown baseline(s) {', '.join(sorted(unknown))}; choose from {', '.join(BASELINES)}")
    est = load_run(args.run, args.device, needs=("hash",), command="aekit hash")
    notes = read_notes(args.run)
    spec = spec_of(args, notes)
    X_db, y_db, X_q, y_q, image_shape = _labelled(spec)
    radii, k, n_bits = tuple(args.radii), args.k, est.n_bits
    results: dict[str, dict[str, Any]] = {}
    codes_db = est.hash(X_db)
    results["semantic hashing (autoencoder)"] = {
        **evaluate_codes(codes_db, y_db, est.hash(X_q), y_q, n_bits, radii, k),
        "train_cpu_seconds": notes.get("metrics", {}).get("train_cpu_seconds")}
    for name in args.baselines:
        label, hasher = _baseline(name, n_bits, args.seed, args.supervised_epochs)
        cpu = time.process_time()
        hasher.fit(X_db, y_db)
        cpu = time.process_time() - cpu
        results[label] = {**evaluate_codes(hasher.hash(X_db), y_db, hasher.hash(X_q), y_q, n_bits, radii, k),
                          "train_cpu_seconds": round(cpu, 2)}
    table = format_table(results, radii, k)
    if args.figure:
        from ..hashing import plot_buckets

        fig = plot_buckets(X_db, codes_db, image_shape, labels=y_db, n_bits=n_bits, random_state=args.seed)
        from ..io import atomic_write
        from ..runs import check_output, figure_bytes

        atomic_write(check_output(args.figure, "--figure"), figure_bytes(fig, dpi=110))
        table += f"\nfigure: {args.figure}"
    write_notes(Path(args.run), {**notes, "hash_metrics": {"data": spec, "results": results}})
    emit(args, f"{n_bits} bits, database {len(X_db)} items, {len(X_q)} queries\n{table}",
          {"n_bits": n_bits, "n_db": len(X_db), "n_queries": len(X_q), "results": results})


# -- parser ----------------------------------------------------------------------------------------------------
def _names(text: str) -> tuple[str, ...]:
    return tuple(s.strip() for s in text.split(",") if s.strip() and s.strip() != "none")


def _non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def add_parser(top: argparse.ArgumentParser) -> None:
    """``aekit hash train|index|query|evaluate``."""
    sub = top.add_subparsers(dest="hash_command", required=True)

    p = sub.add_parser("train", help="train a semantic hasher and write a run folder")
    add_data_args(p)
    add_flags(p, [_hasher()])
    p.add_argument("--out", help="run folder (default runs/hash-<dataset>)")
    p.add_argument("--overwrite", action="store_true", help="replace a run already in --out")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_common(p, device=False)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("index", help="hash a split of the data and store the index in the run folder")
    p.add_argument("run")
    add_data_args(p)
    p.add_argument("--split", choices=["train", "test"], default="train", help="which rows to index (default train)")
    p.add_argument("--append", action="store_true", help="add to the index instead of replacing it")
    add_common(p)
    p.set_defaults(func=cmd_index)

    p = sub.add_parser("query", help="look up rows of a split in the run's index")
    p.add_argument("run")
    add_data_args(p)
    p.add_argument("--split", choices=["train", "test"], default="test", help="which rows to query (default test)")
    p.add_argument("--rows", type=non_negative_int_list, help="row numbers to query, e.g. 0,5,9 (default: the first 5)")
    p.add_argument("--radius", type=_non_negative, help="every item within this Hamming distance (give --radius or --k)")
    p.add_argument("--k", type=int, help="the k nearest items (give --radius or --k)")
    add_common(p)
    p.set_defaults(func=cmd_query)

    p = sub.add_parser("evaluate", help="retrieval metrics (train split indexed, test split queried) vs baselines")
    p.add_argument("run")
    add_data_args(p)
    p.add_argument("--baselines", type=_names, default=BASELINES, help="comma list of lsh,itq,supervised or none (default all three)")
    p.add_argument("--radii", type=non_negative_int_list, default=(0, 1, 2),
                   help="Hamming radii of the precision/recall table (default 0,1,2)")
    p.add_argument("--k", type=int, default=100, help="mAP@k (default 100)")
    p.add_argument("--supervised-epochs", type=int, default=5, help="epochs of the supervised baseline (default 5)")
    p.add_argument("--seed", type=int, default=0, help="seeds the baselines (default 0)")
    p.add_argument("--figure", help="also write a PNG of same-hash buckets (train split) here (default: none)")
    add_common(p)
    p.set_defaults(func=cmd_evaluate)

