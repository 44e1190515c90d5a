"""models/dae.py: masking noise, noise only in training, tied and untied weights, learning to
denoise a tiny problem, and the dae-filters sweep end to end."""

from __future__ import annotations

import pytest
import torch
from tiny_problems import SHAPE, blobs, fit, one_thread  # noqa: F401

from autoencoders.models.dae import DenoisingAE, DenoisingAEConfig, mask_noise

pytestmark = pytest.mark.usefixtures("one_thread")


def test_mask_noise_has_the_configured_rate():
    x = torch.ones(200, 1, 28, 28)
    for nu in (0.1, 0.25, 0.5):
        frac = float((mask_noise(x, nu, torch.Generator().manual_seed(0)) == 0).float().mean())
        assert abs(frac - nu) < 0.005  # 156,800 pixels: standard error < 0.0013
    assert mask_noise(x, 0.0) is x


def test_dae_noise_only_in_training_mode():
    x = blobs(64)
    model = DenoisingAE(DenoisingAEConfig(hidden=16, noise=0.5), SHAPE)
    model.eval()
    with torch.no_grad():
        a, b = float(model.loss(x).total), float(model.loss(x).total)
    assert a == b  # deterministic: no noise in eval mode
    model.train()
    with torch.no_grad():
        torch.manual_seed(0)
        c = float(model.loss(x).total)
        torch.manual_seed(1)
        d = float(model.loss(x).total)
    assert c != d and c != a  # noise is drawn in training mode


def test_dae_untied_has_its_own_decoder_and_tied_shares():
    tied = DenoisingAE(DenoisingAEConfig(hidden=16, tied=True), SHAPE)
    untied = DenoisingAE(DenoisingAEConfig(hidden=16, tied=False), SHAPE)
    n_tied = sum(p.numel() for p in tied.parameters())
    n_untied = sum(p.numel() for p in untied.parameters())
    assert n_untied - n_tied == 16 * 36


@pytest.mark.parametrize("tied", [True, False])
def test_dae_learns_to_denoise_a_tiny_problem(tied):
    x = blobs()
    model = DenoisingAE(DenoisingAEConfig(hidden=16, noise=0.25, tied=tied), SHAPE)
    before, after = fit(model, x, steps=400, lr=0.03)
    assert after < 0.5 * before
    # denoising: reconstructing corrupted inputs is far better than the corrupted input
    xc = model.corrupt(x, torch.Generator().manual_seed(3))
    err_rec = float((model.reconstruct(xc).round() != x).float().mean())
    err_in = float((xc != x).float().mean())
    assert err_rec < 0.5 * err_in


def test_dae_filters_sweep_puts_filters_side_by_side(tmp_path, shared_data):
    from PIL import Image

    from autoencoders.config import load_experiment
    from autoencoders.pipeline import reproduce

    cfg = load_experiment("dae-filters", "quick", [
        f"data.data_dir={shared_data}", "data.train_size=300", "data.valid_size=200",
        "train.epochs=1", "model.hidden=16"])
    parent = reproduce(cfg, runs_dir=str(tmp_path), progress=False)
    one = Image.open(parent.path / "noise=0%" / "figures" / "filters.png")
    both = Image.open(parent.path / "figures" / "filters.png")
    assert both.width > 3 * one.width and both.height > one.height
    assert (parent.path / "figures" / "denoising.png").is_file()
    assert "figures/filters.png" in (parent.path / "report.md").read_text()
