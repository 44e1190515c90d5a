"""Figures of what each latent does: latent traversals and the KL of every latent dimension.

Higgins et al. (2017), Figures 1, 2 and 7: start from a seed image's posterior mean, move
one latent over [-3, 3] with the others fixed, and decode; one row per latent, rows sorted
by the latent's average KL(q(z_d|x) || p(z_d)) (``VAE.kl_per_dim``) so that the
informative ("alive") latents come first. ``kl_over_training`` draws the per-latent KL
that the trainer logs after every epoch (``valid/kl_dim/<d>``, from ``VAE.diagnostics``).
The figures are registered in :data:`autoencoders.registry.FIGURES` (``traversals``,
``kl_per_dim``, ``kl_over_training``) and work for any model with the capabilities
``kl_per_dim`` (``features`` is the posterior mean) and ``decode_mean`` (VAE, BetaVAE).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .data import DATASETS
from .data.load import load_split
from .evaluation.disentanglement import (
    encode_factors,
    factor_datasets,
    representation,
    score_mig,
)
from .plots import image_grid, pyplot, save_figure


@torch.no_grad()
def traversal_images(model, seeds: torch.Tensor, order: np.ndarray, n_steps: int = 10,
                     limit: float = 3.0) -> torch.Tensor:
    """Decoded traversals: ``(len(order), n_seeds, n_steps, C, H, W)``.

    Row ``r`` moves latent ``order[r]`` over ``linspace(-limit, limit, n_steps)`` from
    each seed's posterior mean, the other latents fixed.
    """
    was = model.training
    model.eval()
    mu = model.features(seeds)  # (S, Z): the posterior means
    values = torch.linspace(-limit, limit, n_steps)
    rows = []
    for d in order:
        z = mu[:, None, :].repeat(1, n_steps, 1)  # (S, n_steps, Z)
        z[:, :, int(d)] = values
        rows.append(model.decode_mean(z))  # (S, n_steps, C, H, W)
    model.train(was)
    return torch.stack(rows).cpu()


def plot_traversals(model, seeds: torch.Tensor, x_for_kl: torch.Tensor, path: str | Path,
                    n_steps: int = 10, limit: float = 3.0, max_rows: int = 10,
                    factors: list[tuple[str, float]] | None = None) -> Path:
    """One row per latent (sorted by KL, highest first, at most ``max_rows``), one panel
    per seed image side by side.

    Each row is labelled with its latent index and KL in nats (and, given ``factors``, one
    ``(name, share)`` per latent from :func:`factor_per_latent`, with the ground-truth
    factor it carries most information about), each panel with its seed
    ("test image 1", ...), and the x axis with the latent's value at the panel's first and
    last columns (-3 ... +3), in type that grows with the figure's width. Tiles are
    separated by 2 grid pixels and the figure never shows fewer than one screen pixel per
    grid pixel, so rows stay apart.
    """
    kl = model.kl_per_dim(x_for_kl).numpy()
    order = np.argsort(-kl)[:max_rows]
    imgs = traversal_images(model, seeds, order, n_steps, limit)  # (R, S, T, C, H, W)
    n_rows, n_seeds = imgs.shape[:2]
    tile_h, tile_w = imgs.shape[-2:]
    pad = 2
    blank = torch.ones(n_rows, n_seeds, 1, *imgs.shape[3:])
    tiles = torch.cat([imgs, blank], dim=2)  # a blank tile after each seed's steps
    tiles = tiles.reshape(n_rows, -1, *imgs.shape[3:])[:, :-1]  # (R, S*(T+1)-1, C, H, W)
    grid = image_grid(tiles.reshape(-1, *imgs.shape[3:]), nrow=tiles.shape[1], pad=pad)
    plt = pyplot()
    h, w = grid.shape[:2]
    dpi = 110
    inch = max(1 / dpi, min(1 / 55, 14 / w))  # >= 1 screen pixel per grid pixel
    fig_w = 2.0 + w * inch
    fs = max(9.0, 0.8 * fig_w)  # points: text keeps its size when the figure is fitted
    fig, ax = plt.subplots(figsize=(fig_w + fs / 7, 1.0 + h * inch + fs / 12), dpi=dpi)
    ax.imshow(grid, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
    step_h, step_w = tile_h + pad, tile_w + pad
    ax.set_yticks([pad + step_h * r + tile_h / 2 for r in range(n_rows)])
    def row_label(d: int) -> str:
        text = f"z{d}  KL {kl[d]:.2f}"
        if factors is not None and kl[d] >= ALIVE_KL:
            name, share = factors[d]
            text += f"\n{name} {share:.0%}"
        return text

    ax.set_yticklabels([row_label(int(d)) for d in order], fontsize=fs)
    values = np.linspace(-limit, limit, n_steps)
    ticks, labels = [], []
    for s in range(n_seeds):
        first = s * (n_steps + 1)  # column of the panel's first step
        for t in (0, n_steps - 1):
            ticks.append(pad + step_w * (first + t) + tile_w / 2)
            labels.append(f"{values[t]:+g}")
    ax.set_xticks(ticks)
    ax.set_xticklabels(labels, fontsize=fs)
    ax.set_xlabel(f"value of the row's latent, from -{limit:g} to +{limit:g} "
                  "(the other latents stay at the test image's code)", fontsize=fs)
    top = ax.secondary_xaxis("top")
    top.set_xticks([pad + step_w * (s * (n_steps + 1) + n_steps / 2) - pad / 2
                    for s in range(n_seeds)])
    top.set_xticklabels([f"test image {s + 1}" for s in range(n_seeds)], fontsize=fs)
    top.tick_params(length=0)
    title = "latent traversals, rows sorted by KL (nats), highest first"
    if factors is not None:
        title += ("\nunder the KL: the factor the latent tells most about, as a share of "
                  "that factor's entropy")
    ax.set_title(title, fontsize=1.15 * fs)
    return save_figure(fig, path)


def plot_kl_per_dim(model, x: torch.Tensor, path: str | Path) -> Path:
    """Bar chart of each latent's average KL on ``x`` (nats): which latents are alive."""
    kl = model.kl_per_dim(x).numpy()
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 3.2), dpi=110)
    ax.bar(np.arange(len(kl)), kl, color="tab:blue")
    ax.set_xticks(np.arange(len(kl)))
    ax.set_xlabel("latent dimension")
    ax.set_ylabel("KL(q(z_d|x) || p(z_d)), nats")
    ax.set_title(f"KL per latent on the test split (total {kl.sum():.2f} nats)", fontsize=9)
    ax.grid(True, axis="y", alpha=0.3)
    return save_figure(fig, path)


# ---------------------------------------------------------------- figure registry entries


# a latent below this KL (nats, on the test images) is unused: its row gets no factor label
ALIVE_KL = 0.1


def factor_per_latent(ground_truth, model, num_points: int = 10000, seed: int = 2017,
                      ) -> list[tuple[str, float]]:
    """For each latent d: the ground-truth factor k with the largest I(z_d; v_k) / H(v_k)
    and that share, on ``num_points`` images drawn uniformly (``seed``), z the posterior
    mean, I by MIG's 20-bin histogram estimator (:func:`score_mig`). A share of 1 means the
    latent alone pins the factor down; orientation (40 values) tops out near 0.8 with 20
    bins."""
    generator = torch.Generator().manual_seed(seed)
    factors = ground_truth.sample_factors(num_points, generator)
    codes = encode_factors(ground_truth, representation(model), factors, generator)
    scored = score_mig(codes, factors.numpy())
    mi, entropy = np.asarray(scored["mutual_info"]), np.asarray(scored["entropy"])
    share = mi / np.where(entropy > 0, entropy, np.inf)  # a one-valued factor: share 0
    names = ground_truth.factor_names
    return [(names[int(k)], float(share[d, k])) for d, k in enumerate(share.argmax(1))]


def fig_traversals(run, model, path):
    """Traversals from the first three test images; on a data set with ground-truth
    factors (dSprites) each alive row also names the factor its latent carries most
    information about (:func:`factor_per_latent`)."""
    x = load_split(run.config, "test").x
    factors = None
    d = run.config.data
    if d.name in factor_datasets():
        factors = factor_per_latent(DATASETS[d.name].ground_truth(d.data_dir, d.download),
                                    model)
    return plot_traversals(model, x[:3], x[:2000], path, factors=factors)


def fig_kl_per_dim(run, model, path):
    return plot_kl_per_dim(model, load_split(run.config, "test").x[:5000], path)


def plot_kl_over_training(rows: list[dict], path: str | Path) -> Path | None:
    """Lines of each latent's validation KL (nats) against training samples, from the
    metrics rows' ``valid/kl_dim/<d>``; the legend names the latents alive at the end."""
    keyed = [r for r in rows if any(k.startswith("valid/kl_dim/") for k in r)]
    if not keyed:
        return None
    dims = sorted({int(k.rsplit("/", 1)[1]) for r in keyed for k in r
                   if k.startswith("valid/kl_dim/")})
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 3.6), dpi=110)
    s = [r["samples"] for r in keyed]
    final = {d: keyed[-1].get(f"valid/kl_dim/{d}", 0.0) for d in dims}
    cmap = plt.get_cmap("tab10" if len(dims) <= 10 else "tab20")
    for i, d in enumerate(sorted(dims, key=lambda d: -final[d])):
        y = [r.get(f"valid/kl_dim/{d}", np.nan) for r in keyed]
        label = f"z{d} ({final[d]:.2f})" if final[d] > 0.1 else None
        ax.plot(s, y, lw=1.3, color=cmap(i % cmap.N), label=label,
                marker="." if len(s) < 30 else None)
    ax.set_xlabel("training samples")
    ax.set_ylabel("KL(q(z_d|x) || p(z_d)), nats")
    ax.set_title("KL of each latent on the validation split during training", fontsize=9)
    ax.grid(True, alpha=0.3)
    if any(v > 0.1 for v in final.values()):
        ax.legend(fontsize=7, ncol=2, title="alive at the end (final KL)", title_fontsize=7)
    return save_figure(fig, path)


def fig_kl_over_training(run, model, path):
    """None when the run logged no per-latent KL (``valid/kl_dim/<d>``)."""
    return plot_kl_over_training(run.metrics(), path)
