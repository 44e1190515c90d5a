"""Figures: image grids, reconstructions, samples, 2-D manifolds, training curves.

Image grids are built with numpy and saved with Pillow (no torchvision). Curves use
matplotlib's Agg backend. Every figure function takes a trained model and/or a run and a
path, and returns the path it wrote; :data:`autoencoders.registry.FIGURES` maps the
names used in ``eval.figures`` to the functions ``autoencoders plot`` calls.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .data.load import load_split

PNG_SCALE = 2  # upscale small images (nearest) so pixels stay crisp in a report


def pyplot():
    """matplotlib.pyplot on the non-interactive Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: str | Path) -> Path:
    """Lay out, save as PNG (creating folders) and close a matplotlib figure."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path)
    pyplot().close(fig)
    return path


def image_grid(images: torch.Tensor | np.ndarray, nrow: int, pad: int = 1,
               pad_value: float = 1.0) -> np.ndarray:
    """Tile images into one array.

    Args:
        images: ``(N, C, H, W)`` with values in [0, 1]; C is 1 or 3.
        nrow: images per row.
        pad: pixels between tiles.
        pad_value: grey level of the padding.

    Returns:
        ``(rows*(H+pad)+pad, nrow*(W+pad)+pad)`` (grey) or ``(..., 3)`` uint8 array.
    """
    x = images.detach().cpu().float().numpy() if isinstance(images, torch.Tensor) else images
    n, c, h, w = x.shape
    rows = math.ceil(n / nrow)
    grid = np.full((c, rows * (h + pad) + pad, nrow * (w + pad) + pad), pad_value, np.float32)
    for i in range(n):
        r, q = divmod(i, nrow)
        top, left = pad + r * (h + pad), pad + q * (w + pad)
        grid[:, top:top + h, left:left + w] = x[i]
    grid = (np.clip(grid, 0, 1) * 255 + 0.5).astype(np.uint8)
    return grid[0] if c == 1 else grid.transpose(1, 2, 0)


def save_image(array: np.ndarray, path: str | Path, scale: int = PNG_SCALE) -> Path:
    """Save a uint8 grid as PNG, upscaled by ``scale`` with nearest neighbours."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.fromarray(array)
    if scale != 1:
        img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
    img.save(path)
    return path


def save_grid(images: torch.Tensor, path: str | Path, nrow: int, scale: int = PNG_SCALE) -> Path:
    """Tile ``(N, C, H, W)`` images in [0, 1] with ``nrow`` per row and save a PNG.

    Example:
        >>> save_grid(torch.rand(16, 1, 28, 28), "grid.png", nrow=4)  # doctest: +SKIP
    """
    return save_image(image_grid(images, nrow), path, scale)


def manifold_grid(n: int) -> torch.Tensor:
    """Latent coordinates of an ``n x n`` manifold plot: ``(n*n, 2)``.

    Kingma & Welling, Figure 4: "linearly spaced coordinates on the unit square were
    transformed through the inverse CDF of the Gaussian". We use the cell centres
    ``(i + 0.5) / n``, so the ends map to finite values (about +-2.0 for n = 20) and never
    to the +-inf of the inverse CDF at 0 and 1. The first row is the top of the figure
    (largest z_2).
    """
    u = (torch.arange(n, dtype=torch.float64) + 0.5) / n
    z = torch.distributions.Normal(0.0, 1.0).icdf(u).float()
    zy, zx = torch.meshgrid(z.flip(0), z, indexing="ij")
    return torch.stack([zx.reshape(-1), zy.reshape(-1)], dim=1)


@torch.no_grad()
def plot_manifold(model, path: str | Path, n: int = 20) -> Path | None:
    """Decoder means on an ``n x n`` grid of a 2-D latent space (Figure 4). None if not 2-D."""
    if model.latent_dim != 2:
        return None
    z = manifold_grid(n).to(next(model.parameters()).device)
    x = model.decode_mean(z)
    return save_grid(x, path, nrow=n)


@torch.no_grad()
def plot_samples(model, path: str | Path, n: int = 100, seed: int = 0) -> Path | None:
    """Decoder means at ``n`` draws from the prior, in a square grid."""
    x = model.sample(n, generator=torch.Generator().manual_seed(seed))
    return save_grid(x, path, nrow=int(math.ceil(math.sqrt(n))))


@torch.no_grad()
def plot_reconstructions(model, x: torch.Tensor, path: str | Path, n: int = 12,
                         rows: int = 3, corrupt: Callable | None = None) -> Path:
    """Pairs of rows: inputs above, reconstructions below (``rows`` pairs of ``n``)."""
    x = x[: n * rows]
    shown = corrupt(x) if corrupt is not None else x
    rec = model.reconstruct(shown)
    tiles = []
    for r in range(rows):
        tiles += [shown[r * n:(r + 1) * n], rec[r * n:(r + 1) * n]]
    return save_grid(torch.cat(tiles), path, nrow=n)


def plot_curves(runs: list[tuple[str, list[dict]]], path: str | Path,
                title: str = "Lower bound during training") -> Path | None:
    """Train (dashed) and validation (solid) ELBO vs training samples, log-scale x.

    Kingma & Welling, Figure 2 plots the lower bound against the number of training
    samples evaluated, log-scale; one colour per run (e.g. per N_z).

    Args:
        runs: ``[(label, metrics rows), ...]``; rows need ``samples`` and ``train/rec``,
            ``train/kl`` (the ELBO is -(rec + kl)) or else ``train/loss``.
    """
    plt = pyplot()
    if not any(rows for _, rows in runs):
        return None
    fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=110)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (label, rows) in enumerate(runs):
        if not rows:
            continue
        c = colors[i % len(colors)]
        s = [r["samples"] for r in rows]
        for split, style in (("train", "--"), ("valid", "-")):
            y = [_elbo(r, split) for r in rows]
            if all(v is None for v in y):
                continue
            lbl = f"{label} ({split})" if label else split
            ax.plot(s, y, style, color=c, label=lbl, lw=1.4)
    ax.set_xscale("log")
    ax.set_xlabel("training samples evaluated")
    ax.set_ylabel("lower bound (nats per example)" if _has_elbo(runs) else "loss")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    lows = [v for _, rows in runs for r in rows for v in [_elbo(r, "valid")] if v is not None]
    if lows:  # like the paper's Figure 2: the top 50 nats, where the curves separate
        hi, lo = max(lows), max(min(lows), max(lows) - 50)
        ax.set_ylim(lo - 0.05 * (hi - lo) - 1, hi + 0.05 * (hi - lo) + 1)
    return save_figure(fig, path)


@torch.no_grad()
def plot_filters(model, path: str | Path, n: int = 100) -> Path | None:
    """The first ``n`` filters of ``model.filters()`` tiled as images, each min-max
    normalised on its own (Vincent et al. 2008, Figure 3; Makhzani & Frey 2014, Figure 1).
    The model needs the capability ``filters``."""
    w = model.filters()[:n].float()  # (n, C, H, W)
    flat = w.flatten(1)
    lo, hi = flat.min(1, keepdim=True).values, flat.max(1, keepdim=True).values
    w = ((flat - lo) / (hi - lo).clamp_min(1e-12)).reshape(w.shape)
    return save_grid(w, path, nrow=int(math.ceil(math.sqrt(w.shape[0]))))


def caption_font(size: int):
    """DejaVu Sans (shipped with matplotlib) at ``size`` pixels, for captions drawn with
    Pillow; Pillow's built-in bitmap font only if that file cannot be read."""
    from matplotlib import font_manager
    from PIL import ImageFont

    try:
        return ImageFont.truetype(font_manager.findfont("DejaVu Sans"), size)
    except OSError:
        return ImageFont.load_default()


def side_by_side(paths: list[Path], labels: list[str], out: str | Path,
                 gap: int | None = None) -> Path | None:
    """Paste existing PNGs left to right with a caption above each (a sweep's figures).
    Runs without the figure (it did not apply to their model) are left out; None if none
    has it.

    Captions are DejaVu Sans at 5 % of the widest image's width (at least 16 px), so they
    stay readable when the whole figure is scaled down to a page's width; the images are
    separated by a white gap of half the caption size (at least 8 px) and each framed by a
    2-px grey line, so neighbouring panels never merge.
    """
    from PIL import ImageDraw

    kept = [(p, lbl) for p, lbl in zip(paths, labels, strict=True) if Path(p).is_file()]
    if not kept:
        return None
    paths, labels = [p for p, _ in kept], [lbl for _, lbl in kept]
    images = [Image.open(p).convert("RGB") for p in paths]
    size = max(16, round(0.05 * max(im.width for im in images)))
    font = caption_font(size)
    gap = max(8, size // 2) if gap is None else gap
    border = 2
    caption = round(size * 1.5)
    width = sum(im.width + 2 * border for im in images) + gap * (len(images) + 1)
    height = max(im.height for im in images) + 2 * border + caption + gap
    canvas = Image.new("RGB", (width, height), "white")
    draw_ = ImageDraw.Draw(canvas)
    left = gap
    for im, label in zip(images, labels, strict=True):
        draw_.rectangle([left, caption, left + im.width + 2 * border - 1,
                         caption + im.height + 2 * border - 1], fill=(150, 150, 150))
        canvas.paste(im, (left + border, caption + border))
        draw_.text((left, (caption - size) // 2), label, fill="black", font=font)
        left += im.width + 2 * border + gap
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(out)
    return out


def _has_elbo(runs) -> bool:
    return any("train/kl" in r for _, rows in runs for r in rows)


def _elbo(row: dict, split: str) -> float | None:
    if f"{split}/rec" in row and f"{split}/kl" in row:
        return -(row[f"{split}/rec"] + row[f"{split}/kl"])
    if f"{split}/loss" in row:
        return -row[f"{split}/loss"]
    return None


# --------------------------------------------------------------------------- registry
# Figures a run can draw, named in ``eval.figures`` and registered in
# :data:`autoencoders.registry.FIGURES` with the model capabilities they need; each has the
# signature ``fn(run, model, path) -> Path | None`` (None: the figure does not apply to this
# run's data or configuration, e.g. a manifold of a 20-D latent space).


def _fig_curves(run, model, path):
    return plot_curves([("", run.metrics())], path,
                       title=f"{run.config.name}: lower bound during training")


def _fig_reconstructions(run, model, path):
    return plot_reconstructions(model, load_split(run.config, "test").x, path)


def _fig_samples(run, model, path):
    return plot_samples(model, path)


def _fig_manifold(run, model, path):
    return plot_manifold(model, path)


def _fig_filters(run, model, path):
    return plot_filters(model, path)


def _fig_denoising(run, model, path):
    """Corrupted test inputs (model.corrupt, fixed seed) above their reconstructions."""
    gen = torch.Generator().manual_seed(0)
    return plot_reconstructions(model, load_split(run.config, "test").x, path,
                                corrupt=lambda x: model.corrupt(x, generator=gen))
