"""The stick-breaking VAE: Kumaraswamy/Beta math, stick weights, prior, IW bound, training."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from autoencoders.config import load_experiment
from autoencoders.evaluation.likelihood import iw_log_likelihood
from autoencoders.models.sbvae import (
    SBVAEConfig,
    StickBreakingVAE,
    beta_log_prob,
    kumaraswamy_beta_kl,
    kumaraswamy_expected_log1m,
    kumaraswamy_log_mean,
    kumaraswamy_log_prob,
    kumaraswamy_log_sample,
    stick_breaking_log,
)

D = torch.float64
GRID = [0.01, 0.1, 0.5, 1.0, 2.0, 5.0, 20.0, 50.0]  # spans the default bounds [0.01, 50]


def _grid():
    a, b = torch.meshgrid(torch.tensor(GRID, dtype=D), torch.tensor(GRID, dtype=D),
                          indexing="ij")
    return a.flatten(), b.flatten()


def test_kl_matches_monte_carlo_over_a_grid_with_extreme_values():
    a, b = _grid()
    alpha0 = 5.0
    closed = kumaraswamy_beta_kl(a, b, 1.0, alpha0)
    g = torch.Generator().manual_seed(0)
    n = 100_000
    u = torch.rand(n, a.numel(), generator=g, dtype=D).clamp(1e-12, 1 - 1e-12)
    log_v, log_1mv, s = kumaraswamy_log_sample(a, b, u)
    d = (kumaraswamy_log_prob(log_v, a, b, s)
         - beta_log_prob(log_v, log_1mv, torch.tensor(1.0, dtype=D),
                         torch.tensor(alpha0, dtype=D)))
    mc, se = d.mean(0), d.std(0) / math.sqrt(n)
    reliable = (se < 0.005 * mc.abs()) & (mc.abs() > 0.05)
    assert int(reliable.sum()) >= 50, "Monte Carlo too noisy to test most of the grid"
    rel = ((closed - mc) / mc).abs()
    worst = int(torch.where(reliable, rel, torch.zeros_like(rel)).argmax())
    assert (rel[reliable] < 0.02).all(), (
        f"a={a[worst]:.3g} b={b[worst]:.3g}: closed {closed[worst]:.4f} vs MC {mc[worst]:.4f}")
    assert torch.isfinite(kumaraswamy_beta_kl(a.float(), b.float(), 1.0, alpha0)).all()


@pytest.mark.parametrize("alpha0", [1.0, 5.0])
def test_kl_equals_beta_beta_kl_when_a_is_one(alpha0):
    # Kumaraswamy(1, b) is Beta(1, b), for which torch has the KL in closed form
    b = torch.tensor([0.01, 0.1, 0.5, 1.0, 3.0, 10.0, 50.0], dtype=D)
    a = torch.ones_like(b)
    ref = torch.distributions.kl_divergence(torch.distributions.Beta(a, b),
                                            torch.distributions.Beta(a, torch.full_like(b,
                                                                                        alpha0)))
    torch.testing.assert_close(kumaraswamy_beta_kl(a, b, 1.0, alpha0), ref, rtol=1e-4,
                               atol=1e-6)
    # and E[log(1 - v)] of Beta(1, b) is psi(b) - psi(1 + b) = -1/b
    torch.testing.assert_close(kumaraswamy_expected_log1m(a, b), -1.0 / b, rtol=1e-4, atol=0)


def test_kumaraswamy_density_and_sampler_match_torch_distributions():
    a = torch.tensor([0.3, 1.0, 2.0, 5.0, 20.0], dtype=D)
    b = torch.tensor([0.5, 3.0, 1.0, 8.0, 0.7], dtype=D)
    ref = torch.distributions.Kumaraswamy(a, b)
    v = torch.tensor([0.05, 0.3, 0.5, 0.8, 0.99], dtype=D)
    torch.testing.assert_close(kumaraswamy_log_prob(v.log(), a, b), ref.log_prob(v))
    g = torch.Generator().manual_seed(1)
    u = torch.rand(200_000, 5, generator=g, dtype=D)
    log_v, log_1mv, _ = kumaraswamy_log_sample(a, b, u)
    torch.testing.assert_close(log_v.exp() + log_1mv.exp(), torch.ones_like(log_v))
    samples = log_v.exp()
    se = samples.std(0) / math.sqrt(len(samples))
    assert ((samples.mean(0) - ref.mean).abs() < 5 * se).all()
    assert ((samples.var(0) / ref.variance - 1).abs() < 0.02).all()
    torch.testing.assert_close(kumaraswamy_log_mean(a, b).exp(), ref.mean)


def test_reparameterised_gradient_matches_the_analytic_gradient_of_the_mean():
    a = torch.tensor([0.7, 2.0, 5.0], dtype=D, requires_grad=True)
    b = torch.tensor([0.7, 5.0, 1.5], dtype=D, requires_grad=True)
    u = torch.rand(200_000, 3, generator=torch.Generator().manual_seed(8), dtype=D)
    log_v, _, _ = kumaraswamy_log_sample(a, b, u)
    pathwise = torch.autograd.grad(log_v.exp().mean(0).sum(), [a, b])
    exact = torch.autograd.grad(kumaraswamy_log_mean(a, b).exp().sum(), [a, b])
    for p, e in zip(pathwise, exact, strict=True):
        torch.testing.assert_close(p, e, rtol=0.02, atol=1e-3)


def test_stick_weights_are_nonnegative_finite_and_sum_to_one_at_the_bounds():
    a = torch.tensor([0.01, 0.01, 50.0, 50.0, 1.0, 0.3] * 4).reshape(4, 6)
    b = torch.tensor([0.01, 50.0, 0.01, 50.0, 1.0, 7.0] * 4).reshape(4, 6)
    a.requires_grad_(True)
    b.requires_grad_(True)
    g = torch.Generator().manual_seed(0)
    u = torch.rand(1000, 4, 6, generator=g).clamp(1e-6, 1 - 1e-6)
    u[0] = 1e-6  # the extreme noise values
    u[1] = 1 - 1e-6
    log_v, log_1mv, _ = kumaraswamy_log_sample(a, b, u)
    log_pi = stick_breaking_log(log_v, log_1mv)
    assert log_pi.shape == (1000, 4, 7)
    pi = log_pi.exp()
    assert torch.isfinite(log_v).all() and torch.isfinite(log_1mv).all()
    assert (pi >= 0).all()
    torch.testing.assert_close(pi.sum(-1), torch.ones(1000, 4), rtol=0, atol=1e-5)
    (pi * torch.arange(7.0)).sum().backward()
    assert torch.isfinite(a.grad).all() and torch.isfinite(b.grad).all()


def tiny_model(**kw) -> StickBreakingVAE:
    torch.manual_seed(0)
    cfg = SBVAEConfig(**{"truncation": 6, "hidden": 32, **kw})
    cfg.validate()
    return StickBreakingVAE(cfg, (1, 8, 8))


def test_prior_samples_match_beta_moments():
    alpha0 = 5.0
    model = tiny_model(alpha0=alpha0)
    pi = model.sample_prior(40_000, generator=torch.Generator().manual_seed(0)).double()
    assert pi.shape == (40_000, 6) and (pi >= 0).all()
    torch.testing.assert_close(pi.sum(-1), torch.ones(40_000, dtype=D), rtol=0, atol=1e-5)
    # recover the sticks: v_k = pi_k / (1 - sum_{j<k} pi_j)
    left = 1.0 - torch.cumsum(pi, -1) + pi
    v = pi[:, :5] / left[:, :5]
    mean, var = 1 / (1 + alpha0), alpha0 / ((1 + alpha0) ** 2 * (2 + alpha0))
    assert ((v.mean(0) - mean).abs() < 5 * math.sqrt(var / len(v))).all(), v.mean(0)
    assert ((v.var(0) / var - 1).abs() < 0.05).all(), v.var(0)
    # E[pi_k] = E[v] (1 - E[v])^(k-1) for k < K; the last weight takes the rest
    expected = torch.tensor([mean * (1 - mean) ** k for k in range(5)] + [(1 - mean) ** 5],
                            dtype=D)
    torch.testing.assert_close(pi.mean(0), expected, rtol=0.03, atol=2e-3)
    assert model.sample(3).shape == (3, 1, 8, 8)


def test_features_are_the_expected_stick_weights():
    model = tiny_model(init_std=0.3)
    x = torch.bernoulli(torch.full((3, 1, 8, 8), 0.4), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        feats = model.features(x).double()
        a, b = (t.double() for t in model.encode(x))
    u = torch.rand(200_000, 3, 5, generator=torch.Generator().manual_seed(3), dtype=D)
    mc = stick_breaking_log(*kumaraswamy_log_sample(a, b, u)[:2]).exp().mean(0)
    torch.testing.assert_close(feats, mc, rtol=0.02, atol=2e-3)
    torch.testing.assert_close(feats.sum(-1), torch.ones(3, dtype=D), rtol=0, atol=1e-5)


def test_iw_k1_is_the_elbo_in_expectation_and_larger_k_is_higher():
    model = tiny_model(init_std=0.3)
    model.eval()
    x = torch.bernoulli(torch.full((4, 1, 8, 8), 0.3), generator=torch.Generator().manual_seed(4))
    torch.manual_seed(5)
    with torch.no_grad():
        lw = model.log_importance_weights(x, 20_000)  # (S, B): each row an ELBO sample
        out = model.loss(x.repeat_interleave(20_000, 0))  # the ELBO with the closed-form KL
    assert lw.shape == (20_000, 4)
    elbo_closed = -float(out.total)
    se = float(lw.std(0).mean()) / math.sqrt(20_000)
    assert abs(float(lw.mean()) - elbo_closed) < 5 * se + 0.01 * float(out.terms["kl"]), (
        float(lw.mean()), elbo_closed, se)
    torch.manual_seed(6)
    k1 = iw_log_likelihood(model, x, n_samples=1)
    k100 = iw_log_likelihood(model, x, n_samples=100)
    assert float(k100.mean()) > elbo_closed + 5 * se
    assert float(k100.mean()) > float(k1.mean())


def test_extreme_raw_parameters_give_finite_loss_and_gradients():
    for bias in (-60.0, 60.0):  # a, b at min_param, then clamped at max_param
        model = tiny_model()
        with torch.no_grad():
            model.encoder[-1].bias.fill_(bias)
        x = torch.bernoulli(torch.full((16, 1, 8, 8), 0.5),
                            generator=torch.Generator().manual_seed(7))
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)
        for _ in range(20):
            out = model.loss(x)
            assert all(torch.isfinite(v) for v in [out.total, *out.terms.values()]), out
            opt.zero_grad()
            out.total.backward()
            assert all(torch.isfinite(p.grad).all() for p in model.parameters())
            opt.step()
        assert torch.isfinite(model.log_importance_weights(x, 10)).all()


SBVAE_TINY = [
    "model.truncation=10", "model.hidden=64", "data.train_size=600", "data.valid_size=200",
    "train.epochs=4", "train.threads=1", "train.early_stopping=4", "eval.iw_samples=5",
]


def _tiny_run_config(shared_data, *extra):
    cfg = load_experiment("sbvae-mnist", "quick",
                          [*SBVAE_TINY, f'data.data_dir="{shared_data}"', *extra])
    return dataclasses.replace(cfg, sweep=None)


def test_sbvae_learns_and_extreme_init_trains_without_nan(shared_data, tmp_path):
    from autoencoders.evaluation.features import knn_evaluator
    from autoencoders.train import train

    run = train(_tiny_run_config(shared_data, "train.lr=0.003"), runs_dir=tmp_path / "a",
                progress=False, log_epochs=False)
    rows = run.metrics()
    assert len(rows) == 4
    assert rows[-1]["valid/loss"] < rows[0]["valid/loss"] - 20, rows
    model = run.load_model("best")
    out = knn_evaluator(run, model)
    assert out["knn_train_examples"] == 600
    assert {f"test/knn_error_k{k}" for k in (3, 5, 10)} <= out.keys()
    assert all(0 <= out[f"test/knn_error_k{k}"] < 90 for k in (3, 5, 10)), out
    # huge initial weights (a, b start at their bounds) and a large step size: the trainer
    # stops with TrainingDiverged on any NaN, so finishing is the test
    wild = train(_tiny_run_config(shared_data, "model.init_std=1.0", "train.lr=0.01"),
                 runs_dir=tmp_path / "b", progress=False, log_epochs=False)
    assert all(math.isfinite(r["train/loss"]) for r in wild.metrics())
