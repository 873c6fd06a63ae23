"""Training curves: one line per loss term of an estimator's ``history_``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from numbers import Real
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, NullFormatter

_NOT_TERMS = frozenset({"epoch", "time", "phase", "lr"})  # record keys that are not loss terms


def loss_terms(history: Sequence[Mapping[str, Any]]) -> list[str]:
    """The numeric keys of a history that are loss terms: the total ``loss`` first, then the other training
    terms in the order they first appear, then the ``val_*`` ones; terms that are zero throughout (e.g. ``l2``
    when it is off) are left out."""
    seen: dict[str, None] = {}
    for record in history:
        for key, value in record.items():
            if key not in _NOT_TERMS and isinstance(value, Real) and not isinstance(value, bool):
                seen.setdefault(key)
    terms = [k for k in seen if any(float(r.get(k, 0.0) or 0.0) != 0.0 for r in history)]
    return sorted(terms, key=lambda k: (k.startswith("val_"), k.removeprefix("val_") != "loss"))


def _twin(term: str, base: str) -> str:
    """``base`` with ``term``'s ``val_`` prefix, if it has one."""
    return ("val_" if term.startswith("val_") else "") + base


def _equal(history: Sequence[Mapping[str, Any]], a: str, b: str) -> bool:
    values = [(r.get(a), r.get(b)) for r in history]
    return all(isinstance(x, Real) and isinstance(y, Real) and abs(float(x) - float(y)) <= 1e-12 * max(1.0, abs(float(y)))
               for x, y in values)


def plot_history(
    history: Sequence[Mapping[str, Any]],
    *,
    log_scale: bool = True,
    title: str | None = "training curves",
) -> Figure:
    """Loss terms per epoch, one line each: a term and its ``val_`` twin share a colour (validation dashed);
    the total ``loss`` is black. When records carry a ``phase`` (e.g. greedy layer-wise training), epochs are
    numbered across phases and each phase change is marked.

    Parameters
    ----------
    history : sequence of dict
        One record per epoch, e.g. ``ae.history_``.
    log_scale : bool, default=True
        Logarithmic y axis (used only when every value drawn is positive).
    title : str or None, default="training curves"

    Returns
    -------
    matplotlib.figure.Figure
        One axes with one line per term.
    """
    if not history:
        raise ValueError("the history is empty: train for at least one epoch")
    terms = loss_terms(history)
    phases = [r.get("phase") for r in history]
    has_phases = any(p is not None for p in phases)
    x = np.arange(1, len(history) + 1) if has_phases else np.array([r.get("epoch", i + 1)
                                                                   for i, r in enumerate(history)])
    fig = Figure(figsize=(6.4, 3.8), layout="constrained")
    ax = fig.subplots()
    colours: dict[str, Any] = {"loss": "black"}
    palette = iter(f"C{i}" for i in range(100))
    values_drawn: list[float] = []
    # a term equal to the total in every epoch (the reconstruction of a model without other terms) would hide the
    # total under its line: it is drawn once, as the total, and named in the total's label
    same = {t for t in terms if not t.removeprefix("val_") == "loss" and _equal(history, t, _twin(t, "loss"))}
    labels = {t: f"{t} (= {', '.join(s for s in same if _twin(s, 'loss') == t)})" for t in terms
              if any(_twin(s, "loss") == t for s in same)}
    terms = [t for t in terms if t not in same]
    for term in terms:
        base = term.removeprefix("val_")
        colour = colours.setdefault(base, next(palette))
        y = np.array([float(r[term]) if isinstance(r.get(term), Real) else np.nan for r in history])
        values_drawn.extend(y[np.isfinite(y)].tolist())
        ax.plot(x, y, color=colour, linestyle="--" if term.startswith("val_") else "-",
                linewidth=2.2 if base == "loss" else 1.4, marker="o" if len(x) <= 30 else None, markersize=3,
                label=labels.get(term, term), zorder=1 if base == "loss" else 2)
    if has_phases:
        for i in range(1, len(phases)):
            if phases[i] != phases[i - 1]:
                ax.axvline(x[i] - 0.5, color="grey", linestyle=":", linewidth=1)
        for phase in dict.fromkeys(phases):
            first = x[phases.index(phase)]
            ax.annotate(f"phase {phase}", (first - 0.4, 1.0), xycoords=("data", "axes fraction"),
                        xytext=(2, -2), textcoords="offset points", va="top", fontsize=8, color="grey",
                        annotation_clip=False)
    if log_scale and values_drawn and min(values_drawn) > 0:
        ax.set_yscale("log")
        plain = FuncFormatter(lambda v, _: f"{v:g}")  # 0.04, not 4x10^-2
        ax.yaxis.set_major_formatter(plain)
        # label the 2..9 ticks too when the curves span less than a decade (else they crowd)
        ax.yaxis.set_minor_formatter(plain if max(values_drawn) < 10 * min(values_drawn) else NullFormatter())
    ax.set_xlabel("epoch (across phases)" if has_phases else "epoch")
    ax.set_ylabel("loss")
    if len(x) <= 20:
        ax.set_xticks(x)
    ax.grid(True, which="major", alpha=0.3)
    handles, names = ax.get_legend_handles_labels()
    lrs = [r.get("lr") for r in history]
    if any(isinstance(v, Real) for v in lrs) and len({v for v in lrs if v is not None}) > 1:  # a schedule ran
        lr_ax = ax.twinx()
        line, = lr_ax.plot(x, [np.nan if v is None else float(v) for v in lrs], color="grey", linestyle=":",
                           linewidth=1.4, label="learning rate (right axis)")
        lr_ax.set_ylabel("learning rate", color="grey")
        lr_ax.tick_params(axis="y", colors="grey", labelsize=8)
        handles, names = handles + [line], names + [line.get_label()]
        fig.set_size_inches(8.4, 3.8)  # room for the second axis and the legend beside it
    if handles:
        ax.legend(handles, names, fontsize=8, loc="center left", bbox_to_anchor=(1.15 if len(handles) > len(terms)
                                                                                   else 1.0, 0.5), frameon=False)
    if title:
        ax.set_title(title, fontsize=10)
    return fig
