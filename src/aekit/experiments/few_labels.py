"""The few-labels experiment (Géron ch. 15, "Unsupervised pretraining" and its exercise; Erhan et al. 2010):
one autoencoder pretrained on every training image, then, for each fraction of labels and each seed, the same
classifier trained three ways on the same stratified labelled subset with the same budget:

- ``scratch``: the network from a random init (``pretrain=False``);
- ``frozen``: the pretrained encoder kept fixed, only the head trained;
- ``fine-tuned``: the pretrained encoder as the starting point, everything trained.

Budget: a fixed number of gradient steps (``steps`` batches of ``batch_size``) whatever the fraction, rounded up to
whole epochs over the labelled rows, so that 1% of the labels gets as many updates as 100%.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure

VARIANTS: dict[str, dict[str, Any]] = {
    "scratch": {"pretrain": False, "freeze": "none"},
    "frozen": {"pretrain": True, "freeze": "all"},
    "fine-tuned": {"pretrain": True, "freeze": "none"},
}
LABELS = {"scratch": "from scratch", "frozen": "pretrained, frozen", "fine-tuned": "pretrained, fine-tuned"}
COLORS = {"scratch": "tab:gray", "frozen": "tab:blue", "fine-tuned": "tab:red"}


def labelled_subset(y: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Sorted row indices of a stratified random ``fraction`` of ``y``: ``round(fraction * n_c)`` rows of each
    class ``c`` (at least one), drawn with ``seed``."""
    if not 0 < fraction <= 1:
        raise ValueError(f"label fraction must be in (0, 1], got {fraction}")
    y = np.asarray(y)
    if fraction == 1:
        return np.arange(len(y))
    rng = np.random.RandomState(seed)
    picked = []
    for c in np.unique(y):
        rows = np.flatnonzero(y == c)
        picked.append(rng.permutation(rows)[: max(1, int(round(fraction * len(rows))))])
    return np.sort(np.concatenate(picked))


def epochs_for_steps(n_labelled: int, batch_size: int, steps: int) -> int:
    """Whole epochs over ``n_labelled`` rows that give at least ``steps`` batches of ``batch_size``."""
    return max(1, math.ceil(steps / math.ceil(n_labelled / batch_size)))


def run_few_labels(
    autoencoder: Any,
    X_train: np.ndarray,
    y_train: np.ndarray,
    X_test: np.ndarray,
    y_test: np.ndarray,
    *,
    fractions: Sequence[float] = (0.01, 0.1, 1.0),
    seeds: Iterable[int] = range(5),
    steps: int = 2000,
    epochs: int | None = None,
    batch_size: int = 64,
    learning_rate: float = 1e-3,
    hidden_layers: Sequence[int] = (),
    variants: Sequence[str] = tuple(VARIANTS),
    device: str = "cpu",
    done: Sequence[dict[str, Any]] = (),
    on_result: Callable[[dict[str, Any]], None] | None = None,
) -> list[dict[str, Any]]:
    """Train every (fraction, seed, variant) classifier on top of ``autoencoder`` (fitted, or a checkpoint
    folder) and return one record each: ``fraction``, ``seed``, ``variant``, ``n_labels``, ``epochs``, ``steps``,
    ``test_accuracy``, ``train_seconds`` (wall) and ``cpu_seconds`` (this process's CPU time).

    ``epochs`` fixes the epochs instead of ``steps``. Records in ``done`` (same fraction, seed and variant) are
    kept instead of rerun; ``on_result`` is called after each new one (e.g. to save progress).
    """
    from ..estimators import PretrainedClassifier

    records = list(done)
    finished = {(r["fraction"], r["seed"], r["variant"]) for r in records}
    for fraction in fractions:
        for seed in seeds:
            rows = labelled_subset(y_train, fraction, seed)
            n_epochs = epochs if epochs is not None else epochs_for_steps(len(rows), batch_size, steps)
            for variant in variants:
                if (fraction, seed, variant) in finished:
                    continue
                wall, cpu = time.perf_counter(), time.process_time()
                clf = PretrainedClassifier(autoencoder, hidden_layers=tuple(hidden_layers), epochs=n_epochs,
                                           batch_size=batch_size, learning_rate=learning_rate, random_state=seed,
                                           device=device, **VARIANTS[variant])
                clf.fit(X_train[rows], y_train[rows])
                wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
                record = {"fraction": fraction, "seed": seed, "variant": variant, "n_labels": len(rows),
                          "epochs": n_epochs, "steps": n_epochs * math.ceil(len(rows) / batch_size),
                          "test_accuracy": float(clf.score(X_test, y_test)), "train_seconds": round(wall, 2),
                          "cpu_seconds": round(cpu, 2)}
                records.append(record)
                if on_result is not None:
                    on_result(record)
    return records


def summarize(records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per fraction: for each variant the mean and standard deviation (ddof=1) of the test accuracy over
    seeds, and the paired gain of each pretrained variant over ``scratch`` (same seeds, same labelled rows)."""
    rows = []
    for fraction in sorted({r["fraction"] for r in records}):
        mine = [r for r in records if r["fraction"] == fraction]
        by_variant = {v: {r["seed"]: r for r in mine if r["variant"] == v} for v in VARIANTS}
        row: dict[str, Any] = {"fraction": fraction, "n_labels": mine[0]["n_labels"], "epochs": mine[0]["epochs"],
                               "steps": mine[0]["steps"]}
        for variant, runs in by_variant.items():
            if not runs:
                continue
            acc = np.array([r["test_accuracy"] for r in runs.values()])
            seconds = float(np.mean([r["train_seconds"] for r in runs.values()]))
            row[variant] = {"mean": float(acc.mean()), "std": float(acc.std(ddof=1)) if len(acc) > 1 else 0.0,
                            "n_seeds": len(acc), "train_seconds": seconds}
            if variant != "scratch" and by_variant["scratch"]:
                seeds = sorted(set(runs) & set(by_variant["scratch"]))
                gain = np.array([runs[s]["test_accuracy"] - by_variant["scratch"][s]["test_accuracy"] for s in seeds])
                row[variant]["gain_over_scratch"] = {
                    "mean": float(gain.mean()), "std": float(gain.std(ddof=1)) if len(gain) > 1 else 0.0,
                    "wins": int((gain > 0).sum()), "n_seeds": len(gain)}
        rows.append(row)
    return rows


def markdown_table(summary: Sequence[dict[str, Any]]) -> str:
    """The summary as a markdown table: test accuracy (%) mean ± std over seeds, and the fine-tuned gain."""
    present = [v for v in VARIANTS if any(v in row for row in summary)]
    head = ["labels (fraction)", "steps (epochs)", *(LABELS[v] for v in present)]
    gains = [v for v in present if v != "scratch" and "scratch" in present]
    head += [f"{LABELS[v].split(', ')[1]} − scratch (wins)" for v in gains]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for row in summary:
        cells = [f"{row['n_labels']:,} ({row['fraction']:g})", f"{row['steps']:,} ({row['epochs']})"]
        best = max(row[v]["mean"] for v in present if v in row)
        for v in present:
            if v not in row:
                cells.append("—")
                continue
            text = f"{100 * row[v]['mean']:.2f} ± {100 * row[v]['std']:.2f}"
            cells.append(f"**{text}**" if row[v]["mean"] == best else text)
        for v in gains:
            g = row.get(v, {}).get("gain_over_scratch")
            cells.append("—" if g is None else f"{100 * g['mean']:+.2f} ± {100 * g['std']:.2f} "
                                                f"({g['wins']}/{g['n_seeds']})")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot_few_labels(summary: Sequence[dict[str, Any]], title: str | None = None) -> Figure:
    """Left: test accuracy against the number of labels (log scale), mean ± std over seeds, one line per variant.
    Right: each pretrained variant's paired gain over ``scratch`` in percentage points."""
    fig = Figure(figsize=(10, 4), layout="constrained")
    left, right = fig.subplots(1, 2)
    n_labels = np.array([row["n_labels"] for row in summary])
    for v in VARIANTS:
        rows = [row for row in summary if v in row]
        if not rows:
            continue
        x = np.array([row["n_labels"] for row in rows])
        mean = np.array([100 * row[v]["mean"] for row in rows])
        std = np.array([100 * row[v]["std"] for row in rows])
        left.errorbar(x, mean, yerr=std, marker="o", capsize=4, color=COLORS[v], label=LABELS[v])
        gains = [(row["n_labels"], row[v]["gain_over_scratch"]) for row in rows if "gain_over_scratch" in row[v]]
        if gains:
            right.errorbar([g[0] for g in gains], [100 * g[1]["mean"] for g in gains],
                           yerr=[100 * g[1]["std"] for g in gains], marker="o", capsize=4, color=COLORS[v],
                           label=LABELS[v])
    for ax in (left, right):
        ax.set_xscale("log")
        ax.set_xticks(n_labels, [f"{n:,}\n({row['fraction']:g})" for n, row in zip(n_labels, summary)])
        ax.minorticks_off()
        ax.set_xlabel("labelled training images (fraction)")
        ax.grid(True, alpha=0.3)
        ax.legend(loc="best")
    left.set_ylabel("test accuracy (%), mean ± std over seeds")
    right.axhline(0.0, color="tab:gray", lw=1)
    right.set_ylabel("gain over from scratch (percentage points)")
    left.set_title("accuracy")
    right.set_title("paired gain over the same network from scratch")
    if title:
        fig.suptitle(title)
    return fig
