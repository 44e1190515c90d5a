"""beta-VAE: the objective, the capacity schedule, the conv networks, and one tiny
end-to-end reproduction on procedural dSprites (train, metrics, figures, report)."""

from __future__ import annotations

import json

import pytest
import torch

from autoencoders.config import load_experiment
from autoencoders.errors import ConfigError
from autoencoders.models.betavae import BetaVAE, BetaVAEConfig
from autoencoders.models.vae import VAE, VAEConfig

SHAPE = (1, 64, 64)


def small(**kw):
    base = dict(latent_dim=4, hidden=32, activation="relu", init_std=0.0)
    base.update(kw)
    return base


def x_batch(n=16, seed=0):
    return torch.bernoulli(torch.full((n, *SHAPE), 0.3),
                           generator=torch.Generator().manual_seed(seed))


def test_beta_one_is_the_vae_and_beta_weights_the_kl():
    torch.manual_seed(0)
    vae = VAE(VAEConfig(**small()), SHAPE)
    bvae = BetaVAE(BetaVAEConfig(**small(), beta=1.0), SHAPE)
    bvae.load_state_dict({**vae.state_dict(), "step": torch.tensor(0)})
    x = x_batch()
    torch.manual_seed(1)
    a = vae.loss(x)
    torch.manual_seed(1)
    b = bvae.loss(x)
    assert torch.allclose(a.total, b.total)
    bvae.config.beta = 4.0
    torch.manual_seed(1)
    c = bvae.loss(x)
    assert torch.allclose(c.total, c.terms["rec"] + 4.0 * c.terms["kl"])
    assert c.terms["kl"] > 0


def test_capacity_schedule_moves_only_on_training_steps():
    m = BetaVAE(BetaVAEConfig(**small(), capacity_max=10.0, capacity_steps=4, gamma=100.0),
                SHAPE)
    x = x_batch()
    opt = torch.optim.SGD(m.parameters(), lr=1e-3)
    for _ in range(2):
        out = m.loss(x)
        opt.zero_grad()
        out.total.backward()
        opt.step()
    assert int(m.step) == 2 and m.capacity() == pytest.approx(5.0)
    with torch.no_grad():  # plots and evaluation leave the schedule alone
        m.loss(x)
    m.eval()
    m.loss(x)
    m.train()
    assert int(m.step) == 2
    out = m.loss(x)
    assert out.terms["capacity"].item() == pytest.approx(5.0)
    expected = out.terms["rec"] + 100.0 * (out.terms["kl"] - 5.0).abs()
    assert torch.allclose(out.total, expected)
    for _ in range(10):
        m.loss(x)
    assert m.capacity() == pytest.approx(10.0)  # capped at C_max
    assert "step" in m.state_dict()  # resumed runs continue the schedule


@pytest.mark.parametrize("shape", [(1, 64, 64), (3, 64, 64), (1, 28, 28)])
def test_conv_networks_follow_the_image_size(shape):
    cfg = BetaVAEConfig(**small(), arch="conv", likelihood="gaussian")
    m = BetaVAE(cfg, shape)
    x = torch.rand(5, *shape)
    assert m.reconstruct(x).shape == x.shape
    assert torch.isfinite(m.loss(x).total)
    assert m.log_importance_weights(x, 3).shape == (3, 5)
    assert m.sample(2).shape == (2, *shape)


def test_kaiming_conv_init_scales_weights_by_fan_in_and_zeroes_biases():
    torch.manual_seed(0)
    m = BetaVAE(BetaVAEConfig(latent_dim=10, arch="conv", conv_init="kaiming"), (1, 64, 64))
    layers = [mod for mod in m.modules()
              if isinstance(mod, (torch.nn.Linear, torch.nn.Conv2d, torch.nn.ConvTranspose2d))]
    assert len(layers) == 12  # encoder 4 convs + 2 linear, decoder 2 linear + 4 transposed
    for mod in layers:
        fan_in = torch.nn.init._calculate_fan_in_and_fan_out(mod.weight)[0]
        assert mod.weight.std().item() == pytest.approx((2 / fan_in) ** 0.5, rel=0.2)
        assert torch.count_nonzero(mod.bias) == 0
    # what it is for: the posterior means start far more input-dependent than under
    # PyTorch's default init (which the gamma = 1000 capacity term then pins to a constant)
    torch.manual_seed(0)
    default = BetaVAE(BetaVAEConfig(latent_dim=10, arch="conv"), (1, 64, 64))
    x = (torch.rand(256, 1, 64, 64) < 0.1).float()
    with torch.no_grad():
        spread = [model.encode(x)[0].std(0).mean().item() for model in (m, default)]
    assert spread[0] > 10 * spread[1], spread


def test_paper_fc_net_layout_and_vae_defaults_unchanged():
    m = BetaVAE(BetaVAEConfig(latent_dim=10, hidden=1200, hidden_layers=2, decoder_layers=3,
                              activation="relu", decoder_activation="tanh", init_std=0.0),
                SHAPE)
    enc = [layer for layer in m.encoder if isinstance(layer, torch.nn.Linear)]
    dec = [layer for layer in m.decoder[0] if isinstance(layer, torch.nn.Linear)]
    assert [layer.out_features for layer in enc] == [1200, 1200, 20]
    assert [layer.out_features for layer in dec] == [1200, 1200, 1200, 4096]
    assert isinstance(m.decoder[0][1], torch.nn.Tanh) and isinstance(m.encoder[1], torch.nn.ReLU)
    # the VAE's default networks (and so its checkpoints) are what they were
    keys = set(VAE(VAEConfig(), (1, 28, 28)).state_dict())
    assert keys == {"encoder.0.weight", "encoder.0.bias", "encoder.2.weight", "encoder.2.bias",
                    "decoder.0.0.weight", "decoder.0.0.bias", "decoder.0.2.weight",
                    "decoder.0.2.bias"}


def test_config_errors_name_the_value():
    with pytest.raises(ConfigError, match="beta = -1"):
        BetaVAEConfig(beta=-1.0).validate()
    with pytest.raises(ConfigError, match="capacity_steps"):
        BetaVAEConfig(capacity_max=5.0, capacity_steps=0).validate()
    with pytest.raises(ConfigError, match="decoder_activation"):
        VAEConfig(decoder_activation="swish").validate()


def test_tiny_reproduction_with_metrics_and_figures(tmp_path):
    from autoencoders.pipeline import reproduce

    cfg = load_experiment("betavae-dsprites-capacity", profile="quick", overrides=[
        "data.size=400", "data.valid_size=50", "data.test_size=50", "train.epochs=1",
        "model.conv_channels=[4, 4, 8, 8]", "model.conv_fc=16", "model.latent_dim=3",
        "model.capacity_steps=5", "eval.votes_batch=8", "eval.votes_train=40",
        "eval.votes_eval=20", "eval.mig_points=300", "eval.variance_points=300",
        "eval.baselines=[\"pca\", \"ica\", \"untrained\"]",
        "eval.metrics=[\"beta_vae_metric\", \"factor_vae_metric\", \"mig\", "
        "\"disentanglement_baselines\"]"])
    run = reproduce(cfg, runs_dir=str(tmp_path), progress=False)
    ev = json.loads((run.path / "eval.json").read_text())
    for key in ("test/beta_vae_metric", "test/factor_vae_metric", "test/mig",
                "baseline/pca/beta_vae_metric", "baseline/ica/mig", "baseline/untrained/mig"):
        assert key in ev
    assert 0.0 <= ev["test/beta_vae_metric"] <= 100.0 and 0.0 <= ev["test/mig"] <= 1.0
    assert (run.path / "figures" / "traversals.png").is_file()
    assert (run.path / "figures" / "kl_per_dim.png").is_file()
    report = (run.path / "report.md").read_text()
    assert "beta-VAE metric (Higgins et al.)" in report
    # the baselines do not depend on the trained weights: a second evaluation (or a
    # sibling run in the same folder) reads them from the cache, unchanged
    cache = sorted((run.path.parent / ".baselines").glob("*.json"))
    assert [p.name.split("-")[0] for p in cache] == ["ica", "pca", "untrained"]
    import types

    import autoencoders.evaluation.disentanglement as dis

    calls = []
    real = dis._all_metrics
    dis._all_metrics = lambda *a, **k: calls.append(1) or real(*a, **k)
    try:
        again = dis.baselines_evaluator(run, types.SimpleNamespace(latent_dim=3))
    finally:
        dis._all_metrics = real
    assert calls == [] and again == {k: v for k, v in ev.items() if k.startswith("baseline/")}


def test_kl_per_latent_is_logged_each_epoch_and_drawn(tmp_path):
    """Every epoch logs valid/kl_dim/<d>; they sum to the validation KL; the figure draws."""
    from autoencoders.train import train
    from autoencoders.traversal_plots import plot_kl_over_training

    cfg = load_experiment("betavae-dsprites", profile="quick", overrides=[
        "data.size=300", "data.valid_size=64", "data.test_size=32", "train.epochs=2",
        "model.hidden=16", "model.latent_dim=3", "train.batch_size=32"])
    cfg.sweep = None
    run = train(cfg, runs_dir=str(tmp_path), progress=False)
    rows = run.metrics()
    assert len(rows) == 2
    for r in rows:
        dims = [r[f"valid/kl_dim/{d}"] for d in range(3)]
        assert min(dims) >= 0.0
        assert sum(dims) == pytest.approx(r["valid/kl"], rel=1e-4, abs=1e-4)
    assert plot_kl_over_training(rows, tmp_path / "kl.png").is_file()
    assert plot_kl_over_training([{"samples": 1, "train/loss": 1.0}], tmp_path / "x.png") is None


def test_traversal_rows_name_the_factor_each_latent_carries():
    """factor_per_latent on rendered dSprites: a 'model' whose code is the sprite's centroid
    (x, y) and a constant names pos_x and pos_y with a large share, and gives the constant
    latent a share of 0."""
    from autoencoders.data.dsprites import DSprites
    from autoencoders.traversal_plots import factor_per_latent

    class Centroid(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.unused = torch.nn.Parameter(torch.zeros(1))

        def features(self, x):
            m = x.reshape(-1, 64, 64)
            grid = torch.arange(64, dtype=torch.float32)
            mass = m.sum((1, 2))
            cx, cy = (m.sum(1) * grid).sum(1) / mass, (m.sum(2) * grid).sum(1) / mass
            return torch.stack([cx, cy, torch.zeros_like(cx)], 1)

    out = factor_per_latent(DSprites(), Centroid(), num_points=3000)
    assert out[0][0] == "pos_x" and out[1][0] == "pos_y"
    assert out[0][1] > 0.6 and out[1][1] > 0.6
    assert out[2][1] == pytest.approx(0.0, abs=1e-9)
