"""The one-class protocol of Ruff et al. 2018 (Deep SVDD) on MNIST and Fashion-MNIST: train on the training images
of one class, score all 10,000 test images, the other classes are the anomalies; ROC-AUC per class.

Detectors, each at its library's defaults, measured side by side in one run (classes and seeds interleaved, one
thread each, fit time in CPU seconds):

- ``aekit``: ``aekit.AnomalyDetector()`` (dense autoencoder, hybrid score);
- ``pyod-ae``: PyOD's ``AutoEncoder`` (the optional extra ``pip install pyod``; skipped when missing), same
  epochs (10) as aekit's scorer;
- ``iforest``: scikit-learn's ``IsolationForest``;
- ``ocsvm``: scikit-learn's ``OneClassSVM`` (RBF, ``gamma="scale"``, ``nu=0.1`` = the contamination the others
  use). It has no randomness: it runs once per class and its seeds are copies (std 0).

``aekit[score_type=reconstruction,trim=0.1]`` runs the detector with those parameters. ``--contaminate 0.1``
trains on the class plus 10% of rows from the others and tests on a test split mixed the same way (anomalies
among the training rows); aekit's records then also hold the share of test rows its ``predict`` flags.

Usage::

    AEKIT_DATA_DIR=../shared/data python benchmarks/one_class.py                 # both data sets, 3 seeds
    AEKIT_DATA_DIR=../shared/data python benchmarks/one_class.py --datasets mnist --seeds 0 --classes 8
    AEKIT_DATA_DIR=../shared/data python benchmarks/one_class.py --contaminate 0.1 --seeds 0 \
        --methods "aekit,aekit[score_type=reconstruction],aekit[trim=0.1,score_type=hybrid],aekit[trim=0.1]" \
        --out benchmarks/results/contaminated.jsonl

Results are appended to ``--out`` (JSON lines, one per fit) as they come, so a stopped run keeps what it
measured; the summary table is printed at the end (and by ``--summarize FILE`` alone).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

METHODS = ("aekit", "pyod-ae", "iforest", "ocsvm")
DETERMINISTIC = ("ocsvm",)


def _options(method: str) -> tuple[str, dict]:
    """``aekit[trim=0.1,score_type=reconstruction]`` -> ("aekit", {"trim": 0.1, "score_type": "reconstruction"})."""
    name, _, rest = method.partition("[")
    options = {}
    for item in filter(None, rest.rstrip("]").split(",")):
        key, _, value = item.partition("=")
        try:
            options[key] = float(value) if "." in value else int(value)
        except ValueError:
            options[key] = value
    return name, options


def make(method: str, seed: int):
    method, options = _options(method)
    if method == "aekit":
        import aekit

        return aekit.AnomalyDetector(random_state=seed, **options)
    if method == "pyod-ae":
        from pyod.models.auto_encoder import AutoEncoder

        return AutoEncoder(random_state=seed, verbose=0)
    if method == "iforest":
        from sklearn.ensemble import IsolationForest

        return IsolationForest(random_state=seed)
    if method == "ocsvm":
        from sklearn.svm import OneClassSVM

        return OneClassSVM(gamma="scale", nu=0.1)
    raise SystemExit(f"unknown method {method!r}; choose from {', '.join(METHODS)}")


def anomaly_scores(method: str, det, X: np.ndarray) -> np.ndarray:
    if _options(method)[0] == "pyod-ae":
        return det.decision_function(X)  # PyOD: higher = more abnormal
    return -det.score_samples(X)  # scikit-learn and aekit: higher = more normal


def available(method: str) -> bool:
    if _options(method)[0] != "pyod-ae":
        return True
    try:
        import pyod  # noqa: F401
    except ImportError:
        print("pyod is not installed (pip install pyod): pyod-ae skipped", file=sys.stderr)
        return False
    return True


def run(args: argparse.Namespace) -> None:
    import torch
    from sklearn.metrics import roc_auc_score

    import aekit

    torch.set_num_threads(1)
    methods = [m for m in args.methods if available(m)]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    done = set()
    if out.exists():  # continue a stopped run
        for line in out.read_text().splitlines():
            r = json.loads(line)
            done.add((r["dataset"], r["class"], r["seed"], r["method"]))
    for dataset in args.datasets:
        ds = aekit.load_dataset(dataset)
        for c in args.classes:
            for s_i, seed in enumerate(args.seeds):
                X_train, X_test, y = split(ds, c, args.contaminate, seed)
                order = methods[s_i % len(methods):] + methods[:s_i % len(methods)]  # interleaved
                for method in order:
                    if (dataset, c, seed, method) in done:
                        continue
                    if method in DETERMINISTIC and seed != args.seeds[0]:
                        continue
                    det = make(method, seed)
                    cpu, wall = time.process_time(), time.perf_counter()
                    det.fit(X_train)
                    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
                    auc = float(roc_auc_score(y, anomaly_scores(method, det, X_test)))
                    record = {"dataset": dataset, "class": int(c), "seed": int(seed), "method": method, "auc": auc,
                              "fit_cpu_s": round(cpu, 2), "fit_wall_s": round(wall, 2),
                              "contaminate": args.contaminate}
                    if _options(method)[0] == "aekit":
                        record["test_flagged_share"] = float(np.mean(det.predict(X_test) == -1))
                    with out.open("a") as f:
                        f.write(json.dumps(record) + "\n")
                    print(f"{dataset} class {c} seed {seed} {method:8s} AUC {auc:.4f}  fit {cpu:.1f} s CPU",
                          flush=True)
    summarize(out, args.seeds)


def split(ds, c: int, contaminate: float, seed: int):
    """(training rows, test rows, test labels: 1 = anomaly): class ``c``, plus ``contaminate`` of the rows drawn
    from the other classes (seeded) in both splits."""
    if not contaminate:
        return ds.X_train[ds.y_train == c], ds.X_test, (ds.y_test != c).astype(int)
    rng = np.random.default_rng(1000 + seed)

    def mixed(X, y):
        normal, other = np.flatnonzero(y == c), rng.permutation(np.flatnonzero(y != c))
        rows = np.sort(np.r_[normal, other[:int(round(len(normal) * contaminate / (1 - contaminate)))]])
        return X[rows], (y[rows] != c).astype(int)

    X_train, _ = mixed(ds.X_train, ds.y_train)
    X_test, y_test = mixed(ds.X_test, ds.y_test)
    return X_train, X_test, y_test


def summarize(path: Path, seeds=None) -> None:
    records = [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
    seeds = sorted({r["seed"] for r in records}) if seeds is None else list(seeds)
    for dataset in dict.fromkeys(r["dataset"] for r in records):
        rows = [r for r in records if r["dataset"] == dataset]
        methods = list(dict.fromkeys(r["method"] for r in rows))
        classes = sorted({r["class"] for r in rows})

        def auc(method, c, seed):
            if method in DETERMINISTIC:
                seed = min(r["seed"] for r in rows if r["method"] == method and r["class"] == c)
            hit = [r["auc"] for r in rows if r["method"] == method and r["class"] == c and r["seed"] == seed]
            return hit[0] if hit else None

        print(f"\n### {dataset}: one-class ROC-AUC (%), mean +- std over seeds {', '.join(map(str, seeds))}\n")
        print("| class | " + " | ".join(methods) + " |")
        print("|---|" + "---|" * len(methods))
        for c in classes:
            cells = []
            for m in methods:
                vals = [v for v in (auc(m, c, s) for s in seeds) if v is not None]
                cells.append(f"{100 * np.mean(vals):.1f} +- {100 * np.std(vals):.1f}" if vals else "-")
            print(f"| {c} | " + " | ".join(cells) + " |")
        cells, cpus, flagged = [], [], []
        for m in methods:
            per_seed = []
            for s in seeds:
                vals = [auc(m, c, s) for c in classes]
                if all(v is not None for v in vals):
                    per_seed.append(np.mean(vals))
            cells.append(f"**{100 * np.mean(per_seed):.1f} +- {100 * np.std(per_seed):.1f}**" if per_seed else "-")
            fits = [r["fit_cpu_s"] for r in rows if r["method"] == m]
            cpus.append(f"{np.median(fits):.1f} (max {max(fits):.1f})" if fits else "-")
            shares = [r["test_flagged_share"] for r in rows if r["method"] == m and "test_flagged_share" in r]
            flagged.append(f"{100 * np.median(shares):.1f} ({100 * min(shares):.1f}-{100 * max(shares):.1f})"
                           if shares else "-")
        print("| **mean** | " + " | ".join(cells) + " |")
        print("| fit CPU s, median (max) | " + " | ".join(cpus) + " |")
        if any(f != "-" for f in flagged):
            print("| test rows flagged %, median (range) | " + " | ".join(flagged) + " |")


def _methods(text: str) -> list[str]:
    """Split at the commas outside brackets: ``aekit,aekit[trim=0.1,score_type=hybrid]``."""
    out, depth, item = [], 0, ""
    for ch in text:
        depth += (ch == "[") - (ch == "]")
        if ch == "," and depth == 0:
            out.append(item)
            item = ""
        else:
            item += ch
    return [m for m in out + [item] if m]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--datasets", type=lambda s: s.split(","), default=["mnist", "fashion-mnist"])
    p.add_argument("--classes", type=lambda s: [int(c) for c in s.split(",")], default=list(range(10)))
    p.add_argument("--seeds", type=lambda s: [int(c) for c in s.split(",")], default=[0, 1, 2])
    p.add_argument("--methods", type=_methods, default=list(METHODS),
                   help="comma list of aekit, pyod-ae, iforest, ocsvm; aekit[param=value,...] sets parameters")
    p.add_argument("--contaminate", type=float, default=0.0,
                   help="share of other classes' rows mixed into the training and test rows (default 0)")
    p.add_argument("--out", default="benchmarks/results/one_class.jsonl",
                   help="JSON lines, appended as fits finish; an existing file is continued")
    p.add_argument("--summarize", metavar="FILE", help="only print the summary of a results file")
    args = p.parse_args()
    if args.summarize:
        summarize(Path(args.summarize))
        return
    run(args)


if __name__ == "__main__":
    main()
