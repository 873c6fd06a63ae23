"""2-D map of the codings coloured by label: the codings themselves when there are two, else their projection
by PCA (default) or t-SNE (van der Maaten & Hinton 2008), both from scikit-learn."""

from __future__ import annotations

from typing import Literal

import numpy as np
from matplotlib.figure import Figure

Projection = Literal["pca", "tsne"]


def embed_2d(codings: np.ndarray, method: Projection = "pca", random_state: int = 0
             ) -> tuple[np.ndarray, tuple[str, str]]:
    """Codings (n, d) as 2-D points (n, 2) and the names of the two axes.

    Two coding units are used as they are (one is paired with zeros); more are projected by ``method``.
    """
    codings = np.asarray(codings, dtype=np.float32)
    if codings.ndim != 2 or len(codings) == 0:
        raise ValueError(f"codings must be a non-empty (n_samples, coding size) array, got shape {codings.shape}")
    d = codings.shape[1]
    if d == 1:
        return np.column_stack([codings[:, 0], np.zeros(len(codings))]), ("z0", "(coding size 1)")
    if d == 2:
        return codings, ("z0", "z1")
    if method == "pca":
        from sklearn.decomposition import PCA

        pca = PCA(n_components=2, random_state=random_state).fit(codings)
        share = pca.explained_variance_ratio_
        return pca.transform(codings), (f"PC1 ({share[0]:.0%} of variance)", f"PC2 ({share[1]:.0%})")
    if method == "tsne":
        from sklearn.manifold import TSNE

        perplexity = min(30.0, (len(codings) - 1) / 3)
        tsne = TSNE(n_components=2, init="pca", perplexity=perplexity, random_state=random_state)
        return tsne.fit_transform(codings), ("t-SNE 1", "t-SNE 2")
    raise ValueError(f"unknown projection {method!r}; use 'pca' or 'tsne'")


def plot_latent_map(
    codings: np.ndarray,
    labels: np.ndarray | None = None,
    *,
    method: Projection = "pca",
    max_points: int = 5000,
    random_state: int = 0,
    title: str | None = None,
) -> Figure:
    """Scatter of the codings in 2-D, coloured by label.

    Parameters
    ----------
    codings : numpy.ndarray
        (n_samples, coding size), e.g. ``ae.transform(X_test)``.
    labels : numpy.ndarray, optional
        (n_samples,) class labels (a legend when there are at most 20 classes, else a colour bar).
    method : {"pca", "tsne"}, default="pca"
        Projection used when the coding size is not 2.
    max_points : int, default=5000
        A random subset of this many points is drawn (t-SNE is slow on many).
    random_state : int, default=0
    title : str, optional

    Returns
    -------
    matplotlib.figure.Figure
        One axes with one scatter per class (a single one without labels).
    """
    codings = np.asarray(codings)
    labels = None if labels is None else np.asarray(labels)
    if labels is not None and len(labels) != len(codings):
        raise ValueError(f"{len(labels)} labels for {len(codings)} codings; give one label per row")
    rng = np.random.default_rng(random_state)
    keep = np.sort(rng.choice(len(codings), max_points, replace=False)) if len(codings) > max_points else None
    if keep is not None:
        codings = codings[keep]
        labels = None if labels is None else labels[keep]
    points, (xlabel, ylabel) = embed_2d(codings, method, random_state)
    fig = Figure(figsize=(6.4, 5.2), layout="constrained")
    ax = fig.subplots()
    size = 4 if len(points) > 2000 else 10
    classes = None if labels is None else np.unique(labels)
    if classes is None:
        ax.scatter(points[:, 0], points[:, 1], s=size, alpha=0.6, linewidths=0)
    elif len(classes) <= 20:
        colours = _class_colours(len(classes))
        for colour, cls in zip(colours, classes):
            sel = labels == cls
            ax.scatter(points[sel, 0], points[sel, 1], s=size, alpha=0.6, linewidths=0, color=colour, label=str(cls))
        ax.legend(title="label", markerscale=6 / np.sqrt(size), fontsize=8, title_fontsize=8,
                  loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
    else:
        values = labels if np.issubdtype(labels.dtype, np.number) else np.unique(labels, return_inverse=True)[1]
        sc = ax.scatter(points[:, 0], points[:, 1], s=size, alpha=0.6, linewidths=0, c=values, cmap="viridis")
        fig.colorbar(sc, ax=ax, label="label")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    d = codings.shape[1]
    how = "the codings themselves" if d <= 2 else f"{'PCA' if method == 'pca' else 't-SNE'} of {d}-D codings"
    ax.set_title(title or f"latent map: {how}, {len(points)} points", fontsize=10)
    return fig


def _class_colours(n: int) -> list:
    from matplotlib import colormaps

    cmap = colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i) for i in range(n)]
