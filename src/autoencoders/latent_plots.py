"""Figures of the latent codes: how many stick weights are used, and a 2-D PCA of the codes.

Both read ``model.features`` on the test split (in eval mode) and are registered in
:data:`autoencoders.registry.FIGURES` as ``sticks`` and ``codes_pca``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .data.load import load_split
from .evaluation.features import encode_dataset
from .plots import pyplot, save_figure

MAX_POINTS = 5000  # test examples shown in the PCA scatter (the first ones of the split)


def pca_2d(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Project ``(n, d)`` codes on their first two principal components.

    Returns:
        ``(n, 2)`` projections and the ``(2,)`` fractions of variance they explain.
    """
    centred = codes - codes.mean(0)
    _, s, vt = np.linalg.svd(centred, full_matrices=False)
    var = s**2
    frac = var[:2] / max(var.sum(), 1e-30)
    return centred @ vt[:2].T, np.pad(frac, (0, 2 - len(frac)))


def plot_stick_usage(weights: np.ndarray, path: str | Path, title: str = "") -> Path:
    """Bar chart of the average stick weight per component (Nalisnick & Smyth 2017).

    Args:
        weights: ``(n, K)`` expected stick weights E_q[pi] of n examples (rows sum to 1).
    """
    plt = pyplot()
    mean = weights.mean(0)
    k = np.arange(1, len(mean) + 1)
    fig, ax = plt.subplots(figsize=(6.4, 3.4), dpi=110)
    ax.bar(k, mean, color="tab:blue")
    used = int(np.sum(np.cumsum(mean) < 0.99)) + 1
    ax.axvline(used + 0.5, color="tab:red", ls="--", lw=1,
               label=f"{used} components hold 99 % of the weight")
    ax.set_xlabel("stick component k")
    ax.set_ylabel("average weight E[pi_k]")
    ax.set_title(title or "average stick weight per component (test set)")
    ax.legend(fontsize=8)
    return save_figure(fig, path)


def plot_codes_pca(codes: np.ndarray, labels: np.ndarray, path: str | Path,
                   title: str = "") -> Path:
    """Scatter of the codes' first two principal components, coloured by class label."""
    plt = pyplot()
    xy, frac = pca_2d(codes)
    fig, ax = plt.subplots(figsize=(5.2, 4.6), dpi=110)
    cmap = plt.get_cmap("tab10")
    for c in np.unique(labels):
        sel = labels == c
        ax.scatter(xy[sel, 0], xy[sel, 1], s=3, alpha=0.6, color=cmap(int(c) % 10),
                   label=str(c), rasterized=True)
    ax.set_xlabel(f"PC 1 ({100 * frac[0]:.0f} % of variance)")
    ax.set_ylabel(f"PC 2 ({100 * frac[1]:.0f} % of variance)")
    ax.set_title(title or "PCA of the test codes", fontsize=10)
    ax.legend(markerscale=4, fontsize=8, ncol=2, loc="best")
    return save_figure(fig, path)


def _test_codes(run, model) -> tuple[np.ndarray, np.ndarray | None]:
    test = load_split(run.config, "test")
    x = test.x[:MAX_POINTS]
    y = test.y[:MAX_POINTS].numpy() if test.y is not None else None
    return encode_dataset(model, x), y


def fig_sticks(run, model, path):
    """``sticks`` figure (models with the capability ``stick_weights``)."""
    codes, _ = _test_codes(run, model)
    return plot_stick_usage(codes, path, title=f"{run.config.name}: average stick weight "
                                               "per component (test set)")


def fig_codes_pca(run, model, path):
    """``codes_pca`` figure; None for datasets without labels."""
    codes, y = _test_codes(run, model)
    if y is None:
        return None
    return plot_codes_pca(codes, y, path, title=f"{run.config.name}: PCA of the test "
                                                f"codes, {_codes_name(model)}")


def _codes_name(model) -> str:
    """What a model's codes are, for titles: a sweep's runs share an experiment name, so
    the title must say which model's codes it shows."""
    if "stick_weights" in model.capabilities:
        return "SB-VAE expected stick weights"
    if model.generative:
        return f"{model.config.model_name} posterior means"
    return f"{model.config.model_name} features"
