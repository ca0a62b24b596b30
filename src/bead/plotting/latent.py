"""2D embeddings of the latent space, coloured by background generator and signal sample.

A well-enriched model mixes the generators; signals that sit apart are easy to flag.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np

from bead.config import Config
from bead.errors import MissingExtraError
from bead.evaluation.scores import Group, ScoreTable
from bead.plotting.style import add_headroom, bead_label, color, hep_style, new_figure, save_figure

_EXTRAS = {"umap": ("umap", "umap-learn", "UMAP latent plots"),
           "trimap": ("trimap", "trimap", "TriMap latent plots")}
_AXIS = {"pca": "PC", "tsne": "t-SNE", "umap": "UMAP", "trimap": "TriMap"}


def check_style_available(style: str) -> None:
    """Fail before any plotting when the configured embedding needs a missing extra."""
    if style in _EXTRAS:
        module, package, purpose = _EXTRAS[style]
        try:
            importlib.import_module(module)
        except ImportError:
            raise MissingExtraError("viz", package, purpose) from None


def subsample(groups: list[Group], config: Config) -> list[np.ndarray]:
    """Event indices per group: an equal share of ``subsample_size`` each, so rare signals show."""
    rng = np.random.default_rng(config.seed)
    share = max(1, config.subsample_size // max(1, len(groups)))
    chosen = []
    for group in groups:
        idx = np.flatnonzero(group.mask)
        if config.subsample_plot and len(idx) > share:
            idx = np.sort(rng.choice(idx, size=share, replace=False))
        chosen.append(idx)
    return chosen


def embed(latent: np.ndarray, style: str, seed: int) -> tuple[np.ndarray, list[str]]:
    """Project latents to 2D; returns the points and the two axis labels."""
    if style == "pca" or latent.shape[1] <= 2:
        from sklearn.decomposition import PCA

        n = min(2, latent.shape[1])
        pca = PCA(n_components=n, random_state=seed).fit(latent)
        points = pca.transform(latent)
        if n == 1:
            points = np.column_stack([points[:, 0], np.zeros(len(points))])
        var = [*pca.explained_variance_ratio_, 0.0]
        return points, [f"PC {i + 1} ({100 * var[i]:.0f}% of variance) [a.u.]" for i in range(2)]
    check_style_available(style)
    if style == "tsne":
        from sklearn.manifold import TSNE

        perplexity = float(min(30, max(2, len(latent) // 4)))
        points = TSNE(n_components=2, init="pca", perplexity=perplexity,
                      random_state=seed).fit_transform(latent)
    elif style == "umap":
        import umap

        points = umap.UMAP(n_components=2, random_state=seed).fit_transform(latent)
    else:
        import trimap

        points = trimap.TRIMAP(n_dims=2).fit_transform(latent)
    return np.asarray(points), [f"{_AXIS[style]} {i} [a.u.]" for i in (1, 2)]


def plot_latent(table: ScoreTable, config: Config, out_dir: Path) -> list[Path]:
    style = config.latent_space_plot_style
    groups = table.background_groups() + table.signal_groups()
    indices = subsample(groups, config)
    latent = table.latent[np.concatenate(indices)]
    points, labels = embed(latent, style, config.seed)
    bounds = np.cumsum([0, *(len(i) for i in indices)])
    with hep_style():
        fig, ax = new_figure((8.0, 7.5))
        n_bkg = len(table.background_groups())
        for k, group in enumerate(groups):
            pts = points[bounds[k]:bounds[k + 1]]
            col = color(k if k < n_bkg else k - n_bkg, group.is_signal)
            kind = "signal" if group.is_signal else "background"
            ax.scatter(pts[:, 0], pts[:, 1], s=7, alpha=0.5, color=col, lw=0,
                       marker="^" if group.is_signal else "o", rasterized=True,
                       label=f"{group.name} ({kind}, {len(pts)} events)")
        ax.set_xlabel(labels[0])
        ax.set_ylabel(labels[1])
        add_headroom(ax, 0.3)
        legend = ax.legend(loc="upper right", markerscale=4, bbox_to_anchor=(1.0, 0.93))
        for handle in legend.legend_handles:
            handle.set_alpha(1.0)
        bead_label(ax, rlabel=f"latent space, {style.upper()}")
        return save_figure(fig, out_dir / f"latent_{style}")
