"""2D embeddings of the latent views (z0, zK, mu) and the latent uncertainty, coloured by
background generator and signal sample.

A well-enriched model mixes the generators; signals that sit apart are easy to flag.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bead.config import Config
from bead.errors import MissingExtraError
from bead.evaluation.scores import Group, ScoreTable
from bead.plotting.style import (
    add_caption,
    add_headroom,
    bead_label,
    color,
    hep_style,
    new_figure,
    sample_label,
    save_figure,
)

_EXTRAS = {"umap": ("umap", "umap-learn", "UMAP latent plots"),
           "trimap": ("trimap", "trimap", "TriMap latent plots")}
_AXIS = {"pca": "PC", "tsne": "t-SNE", "umap": "UMAP", "trimap": "TriMap"}
_TITLES = {"z0": "$z_0$", "zk": "$z_K$", "mu": r"$\mu$"}


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


def latent_views(table: ScoreTable) -> dict[str, tuple[str, np.ndarray]]:
    """File stem -> (title, values) of each distinct latent view to draw.

    ``z0``, ``zk`` and ``mu`` where detect stored them; identical views (in eval mode a VAE's
    z0 is its posterior mean) are drawn once under a joint title. Older scores files, or models
    without these parts, have only ``latent``.
    """
    views: dict[str, tuple[str, np.ndarray]] = {}
    for name in ("z0", "zk", "mu"):
        values = table.latents.get(name)
        if values is None:
            continue
        same = next((stem for stem, (_, v) in views.items() if np.array_equal(v, values)), None)
        if same is None:
            views[name] = (_TITLES[name], values)
        else:
            views[same] = (f"{views[same][0]} = {_TITLES[name]}", values)
    return views or {"latent": ("latent", table.latent)}


def _groups(table: ScoreTable) -> list[Group]:
    return table.background_groups() + table.signal_groups()


def _group_style(k: int, group: Group, n_bkg: int) -> str:
    return color(k if k < n_bkg else k - n_bkg, group.is_signal)


@dataclass(frozen=True)
class Embedding:
    """One latent view projected to 2D: the points of each group between ``bounds``."""

    title: str
    points: np.ndarray
    axis_labels: list[str]
    bounds: np.ndarray


def embed_views(table: ScoreTable, config: Config) -> dict[str, Embedding]:
    """Every latent view embedded on the same seeded subsample.

    Computed in the parent process, before any worker is forked: t-SNE, UMAP and the BLAS
    behind PCA run OpenMP thread pools, which do not survive a fork.
    """
    indices = subsample(_groups(table), config)
    rows = np.concatenate(indices)
    bounds = np.cumsum([0, *(len(i) for i in indices)])
    style = config.latent_space_plot_style
    return {stem: Embedding(title, *embed(values[rows], style, config.seed), bounds=bounds)
            for stem, (title, values) in latent_views(table).items()}


def plot_latent(table: ScoreTable, embedding: Embedding, stem: str, style: str,
                out_dir: Path) -> list[Path]:
    """A 2D embedding of one latent view, coloured by background generator and signal."""
    groups = _groups(table)
    n_bkg = len(table.background_groups())
    points, bounds = embedding.points, embedding.bounds
    with hep_style():
        fig, ax = new_figure((8.0, 7.5))
        full_names: list[str] = []
        for k, group in enumerate(groups):
            pts = points[bounds[k]:bounds[k + 1]]
            kind = "signal" if group.is_signal else "background"
            name, shortened = sample_label(group.name)
            if shortened:
                full_names.append(group.name)
            ax.scatter(pts[:, 0], pts[:, 1], s=7, alpha=0.5, color=_group_style(k, group, n_bkg),
                       lw=0, marker="^" if group.is_signal else "o", rasterized=True,
                       label=f"{name} ({kind}, {len(pts)} events)")
        ax.set_xlabel(embedding.axis_labels[0])
        ax.set_ylabel(embedding.axis_labels[1])
        add_headroom(ax, 0.3)
        legend = ax.legend(loc="upper right", markerscale=4, bbox_to_anchor=(1.0, 0.93))
        for handle in legend.legend_handles:
            handle.set_alpha(1.0)
        bead_label(ax, rlabel=f"latent {embedding.title}, {style.upper()}")
        add_caption(fig, full_names)
        return save_figure(fig, out_dir / f"{stem}_{style}")


def plot_uncertainty(table: ScoreTable, out_dir: Path) -> list[Path]:
    """Mean posterior width per event, sigma = exp(logvar / 2) averaged over latent dimensions,
    per background generator and signal sample: where the encoder is unsure."""
    sigma = np.exp(0.5 * table.latents["logvar"].astype(np.float64)).mean(axis=1)
    finite = sigma[np.isfinite(sigma)]
    lo, hi = np.quantile(finite, (0.001, 0.999)) if finite.size else (0.0, 1.0)
    edges = np.linspace(lo, hi if hi > lo else lo + 1.0, 51)
    groups = _groups(table)
    n_bkg = len(table.background_groups())
    with hep_style():
        fig, ax = new_figure()
        full_names: list[str] = []
        for k, group in enumerate(groups):
            values = np.clip(sigma[group.mask], edges[0], edges[-1])
            counts, _ = np.histogram(values, bins=edges, weights=table.weight[group.mask])
            total = counts.sum()
            name, shortened = sample_label(group.name)
            if shortened:
                full_names.append(group.name)
            ax.stairs(counts / total if total > 0 else counts, edges, lw=2,
                      color=_group_style(k, group, n_bkg), ls="--" if group.is_signal else "-",
                      label=f"{name} ({'signal' if group.is_signal else 'background'})")
        add_headroom(ax, min(0.2 + 0.06 * len(groups), 0.55))
        ax.set_xlim(edges[0], edges[-1])
        ax.set_xlabel(r"Mean posterior width $\langle\sigma\rangle$ of the latent [a.u.]")
        ax.set_ylabel("Fraction of events / bin")
        ax.legend(loc="upper right", bbox_to_anchor=(1.0, 0.92))
        bead_label(ax, rlabel="latent uncertainty, weighted")
        add_caption(fig, full_names)
        return save_figure(fig, out_dir / "uncertainty")
