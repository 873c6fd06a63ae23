"""Rows as users have them: columns on different scales, missing values. What the detector fits on its training
rows before the scorer sees them (:class:`Preprocessing`), applied unchanged to every row it scores later."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..errors import DataError


def _bad_rows_text(mask: np.ndarray) -> str:
    rows = np.flatnonzero(mask)
    shown = ", ".join(map(str, rows[:5])) + (", ..." if len(rows) > 5 else "")
    return f"{len(rows)} row{'s' if len(rows) != 1 else ''} (row {shown})"


def check_finite(X: np.ndarray, missing: str) -> None:
    """Refuse infinite values always, and NaN unless ``missing="impute"``, naming the rows and the fix."""
    if missing == "impute":
        inf = np.isinf(X).any(axis=1)
        if inf.any():
            raise DataError(f"X holds infinite values (inf) in {_bad_rows_text(inf)}; missing='impute' fills NaN "
                            "only: replace or drop those rows")
        return
    bad = ~np.isfinite(X).all(axis=1)
    if bad.any():
        raise DataError(f"X holds NaN or infinite values in {_bad_rows_text(bad)}; drop those rows, or pass "
                        "missing='impute' (command line: --missing impute) to fill NaN with each column's "
                        "training median")


def standardizes(X: np.ndarray, standardize: str | bool) -> bool:
    """``standardize="auto"``: yes unless every value lies in [0, 1] (pixel intensities, already scaled: per-pixel
    scaling would blow up the near-constant border pixels of images)."""
    if standardize != "auto":
        return bool(standardize)
    finite = X[np.isfinite(X)]
    return bool(finite.size) and bool(finite.min() < 0 or finite.max() > 1)


@dataclass
class Preprocessing:
    """Column medians (for imputation), means and scales fitted on the training rows; float64 tensors so they
    travel in a checkpoint as they are."""

    fill: torch.Tensor | None  # (d,) training medians, when missing values are imputed
    mean: torch.Tensor | None  # (d,) when standardizing
    scale: torch.Tensor | None

    @classmethod
    def fit(cls, X: np.ndarray, missing: str, standardize: bool) -> Preprocessing:
        fill = None
        if missing == "impute":
            empty = np.isnan(X).all(axis=0)
            if empty.any():
                raise DataError(f"column(s) {np.flatnonzero(empty)[:5].tolist()} hold no values at all in the "
                                "training rows; nothing to impute them from: drop those columns")
            fill = torch.from_numpy(np.nanmedian(X.astype(np.float64), axis=0))
            X = np.where(np.isnan(X), fill.numpy(), X)
        mean = scale = None
        if standardize:
            X64 = X.astype(np.float64)
            mean_np, std = X64.mean(axis=0), X64.std(axis=0)
            std[std < 1e-12 * np.maximum(np.abs(mean_np), 1.0)] = 1.0  # constant columns: centred, not scaled
            mean, scale = torch.from_numpy(mean_np), torch.from_numpy(std)
        return cls(fill, mean, scale)

    def apply(self, X: np.ndarray) -> np.ndarray:
        """The rows the scorer sees: NaN filled, standardized; float32, C order."""
        out = X.astype(np.float64, copy=True) if (self.fill is not None or self.mean is not None) else X
        if self.fill is not None:
            out = np.where(np.isnan(out), self.fill.numpy(), out)
        if self.mean is not None:
            out = (out - self.mean.numpy()) / self.scale.numpy()
        return np.ascontiguousarray(out, dtype=np.float32)

    def tensors(self) -> dict[str, torch.Tensor]:
        return {name: t for name, t in (("fill", self.fill), ("mean", self.mean), ("scale", self.scale))
                if t is not None}

    @classmethod
    def from_tensors(cls, tensors: dict[str, torch.Tensor]) -> Preprocessing:
        return cls(tensors.get("fill"), tensors.get("mean"), tensors.get("scale"))
