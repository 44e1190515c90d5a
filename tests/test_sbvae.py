"""The stick-breaking VAE: Kumaraswamy/Beta math, stick weights, prior, IW bound, training."""

from __future__ import annotations

import dataclasses
import math
import shutil

import pytest
import torch

from autoencoders.config import load_experiment
from autoencoders.errors import ConfigError
from autoencoders.evaluation.likelihood import iw_log_likelihood
from autoencoders.models.sbvae import (
    ExpectedLog1mTable,
    SBVAEConfig,
    StickBreakingVAE,
    beta_log_prob,
    expected_log1m_table,
    kumaraswamy_beta_kl,
    kumaraswamy_expected_log1m,
    kumaraswamy_log_mean,
    kumaraswamy_log_prob,
    kumaraswamy_log_sample,
    lgamma_ratio,
    log1mexp,
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


def test_posterior_samples_are_stick_weights_averaging_to_the_features():
    model = tiny_model(init_std=0.3)
    x = torch.bernoulli(torch.full((4, 1, 8, 8), 0.4), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        feats = model.features(x).double()
        one = model.sample_posterior(x, generator=torch.Generator().manual_seed(5))
        again = model.sample_posterior(x, generator=torch.Generator().manual_seed(5))
        many = model.sample_posterior(x.repeat(50_000, 1, 1, 1),
                                      generator=torch.Generator().manual_seed(6)).double()
    assert one.shape == (4, 6) and torch.equal(one, again)
    assert (many >= 0).all()
    torch.testing.assert_close(many.sum(-1), torch.ones(200_000, dtype=D), rtol=0, atol=1e-5)
    torch.testing.assert_close(many.view(50_000, 4, 6).mean(0), feats, rtol=0.03, atol=2e-3)
    assert not torch.allclose(one.double(), feats, atol=1e-3)  # a draw, not the mean


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


@pytest.mark.parametrize("param_map", ["softplus", "exp"])
def test_extreme_raw_parameters_give_finite_loss_and_gradients(param_map):
    for bias in (-60.0, 60.0):  # a, b at min_param, then clamped at max_a, max_b
        model = tiny_model(param_map=param_map, decoder_input_scale=6.0)
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


def test_lgamma_ratio_is_exact_where_lgamma_cancels():
    b = torch.tensor([0.3, 2.0, 9.99, 10.0, 30.0, 1e3], dtype=D)
    x = torch.tensor([0.01, 0.5, 1.0, 7.0, 300.0], dtype=D)[:, None]
    torch.testing.assert_close(lgamma_ratio(b, x), torch.lgamma(b) - torch.lgamma(b + x),
                               rtol=1e-9, atol=1e-9)
    # b = 1e12: lgamma(b) ~ 2.6e13, so even float64 lgamma differences are off by ~1e-2;
    # log Gamma(b) / Gamma(b + x) = -x log b + x (1 - x) / (2 b) + O(b^-2)
    big = torch.tensor(1e12, dtype=D)
    x = torch.tensor([0.01, 0.5, 3.0, 80.0], dtype=D)
    torch.testing.assert_close(lgamma_ratio(big, x), -x * big.log() + x * (1 - x) / (2 * big),
                               rtol=1e-12, atol=1e-12)


def test_kl_is_accurate_for_concentrated_posteriors_in_float32():
    # An informative stick is a concentrated Kumaraswamy: v ~ 0.1 to within ~10 % needs
    # a ~ 13 and b ~ 1e12, v ~ 0.5 needs b ~ 1e4. In float32 the old series lost log B(m/a, b)
    # to the cancellation of lgamma(b) - lgamma(b + m/a) (KL off by up to 10 nats per stick
    # at b = 1e7 and garbage beyond).
    a = torch.tensor([2.0, 5.0, 13.0, 13.0, 30.0, 30.0, 0.5], dtype=D)
    b = torch.tensor([1e5, 1e7, 1e4, 3e12, 1e8, 5.0, 1e12], dtype=D)
    u = torch.rand(200_000, a.numel(), generator=torch.Generator().manual_seed(3),
                   dtype=D).clamp(1e-12, 1 - 1e-12)
    log_v, log_1mv, s = kumaraswamy_log_sample(a, b, u)
    d = (kumaraswamy_log_prob(log_v, a, b, s)
         - beta_log_prob(log_v, log_1mv, torch.tensor(1.0, dtype=D), torch.tensor(5.0, dtype=D)))
    mc, se = d.mean(0), d.std(0) / math.sqrt(len(d))
    closed = kumaraswamy_beta_kl(a.float(), b.float(), 1.0, 5.0).double()
    assert ((closed - mc).abs() < 5 * se + 0.02).all(), (closed, mc, se)
    mean = log_v.exp().mean(0)
    torch.testing.assert_close(kumaraswamy_log_mean(a.float(), b.float()).exp().double(), mean,
                               rtol=5e-3, atol=1e-6)


@pytest.mark.parametrize("param_map", ["softplus", "exp"])
def test_b_can_grow_past_50_with_a_gradient(param_map):
    # the old default clamp b <= 50 stopped the gradient there: 11 % of the (example, stick)
    # pairs of the trained 20-epoch model sat at b = 50, frozen
    model = tiny_model(param_map=param_map)
    k1 = model.config.truncation - 1
    with torch.no_grad():
        model.encoder[-1].weight.zero_()
        model.encoder[-1].bias[:k1] = 2.0  # raw a
        model.encoder[-1].bias[k1:] = 7.0 if param_map == "exp" else 1000.0  # raw b
    a, b = model.encode(torch.zeros(2, 1, 8, 8))
    assert float(b.detach().min()) > 999.0
    b.sum().backward()
    assert float(model.encoder[-1].bias.grad[k1:].abs().min()) > 0.5
    # a is bounded by max_a (the KL series' accurate range), b by max_b
    with torch.no_grad():
        model.encoder[-1].bias.fill_(1e13)
        a, b = model.encode(torch.zeros(2, 1, 8, 8))
    assert float(a.max()) == pytest.approx(model.config.max_a)
    assert float(b.max()) == pytest.approx(model.config.max_b, rel=1e-6)


def test_decoder_input_scale_is_a_reparameterisation_of_the_first_layer():
    x = torch.bernoulli(torch.full((3, 1, 8, 8), 0.4), generator=torch.Generator().manual_seed(2))
    plain, scaled = tiny_model(), tiny_model(decoder_input_scale=6.0)
    scaled.load_state_dict(plain.state_dict())
    with torch.no_grad():
        scaled.decoder[0][0].weight /= 6.0
        pi = plain.features(x)
        torch.testing.assert_close(scaled.decode(pi), plain.decode(pi))
    with pytest.raises(ConfigError, match="decoder_input_scale"):
        SBVAEConfig(decoder_input_scale=0.0).validate()
    with pytest.raises(ConfigError, match="param_map"):
        SBVAEConfig(param_map="sigmoid").validate()


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
    keys = [f"test/knn_error_{kind}k{k}" for kind in ("", "sample_") for k in (3, 5, 10)]
    assert set(keys) <= out.keys()  # the experiment scores means and posterior samples
    assert all(0 <= out[key] < 90 for key in keys), out
    assert knn_evaluator(run, model) == out  # the posterior draws are seeded
    # huge initial weights (a, b start at their bounds) and a large step size: the trainer
    # stops with TrainingDiverged on any NaN, so finishing is the test
    wild = train(_tiny_run_config(shared_data, "model.init_std=1.0", "train.lr=0.01"),
                 runs_dir=tmp_path / "b", progress=False, log_epochs=False)
    assert all(math.isfinite(r["train/loss"]) for r in wild.metrics())


def test_the_kl_table_matches_the_series_and_its_gradients_over_the_whole_box():
    """The interpolated E[log(1 - v)] against the series it tabulates, at 20,000 log-uniform
    points of the SB-VAE's default box and at its corners; gradients in log a, log b."""
    table = expected_log1m_table(0.01, 30.0, 0.01, 1e12, 50)
    g = torch.Generator().manual_seed(0)
    u = (torch.rand(20_000, generator=g, dtype=D) * math.log(3000) + math.log(0.01))
    w = (torch.rand(20_000, generator=g, dtype=D) * math.log(1e14) + math.log(0.01))
    corners = torch.tensor([[0.01, 0.01], [0.01, 1e12], [30.0, 0.01], [30.0, 1e12]], dtype=D)
    u = torch.cat([u, corners[:, 0].log()]).requires_grad_()
    w = torch.cat([w, corners[:, 1].log()]).requires_grad_()
    series = kumaraswamy_expected_log1m(u.exp(), w.exp())
    tab = table(u.exp(), w.exp())
    assert (tab - series).abs().max() < 1e-7  # nats
    assert ((tab - series).abs() / series.abs().clamp(min=1e-30)).max() < 1e-5
    for d_series, d_tab in zip(torch.autograd.grad(series.sum(), (u, w), retain_graph=True),
                               torch.autograd.grad(tab.sum(), (u, w)), strict=True):
        assert ((d_tab - d_series).abs() / d_series.abs().clamp(min=1e-12)).max() < 1e-5


def test_the_kl_table_is_exact_at_a_equal_one_in_float32():
    """Kumaraswamy(1, b) = Beta(1, b): E[log(1 - v)] = -1/b; in float32 as in training."""
    b = torch.tensor([0.01, 0.3, 1.0, 7.0, 1e3, 1e9], dtype=torch.float32)
    table = expected_log1m_table(0.01, 30.0, 0.01, 1e12, 50)
    out = table(torch.ones_like(b), b)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, -1.0 / b, rtol=2e-6, atol=0)


def test_the_kl_table_follows_the_box_and_terms_it_was_built_for():
    small = ExpectedLog1mTable((0.5, 4.0), (0.5, 50.0), terms=10, step=0.1)
    a = torch.tensor([0.5, 1.3, 4.0], dtype=D)
    b = torch.tensor([0.5, 9.0, 50.0], dtype=D)
    torch.testing.assert_close(small(a, b), kumaraswamy_expected_log1m(a, b, terms=10),
                               rtol=1e-6, atol=1e-9)


def test_training_loss_with_the_table_equals_the_summed_series():
    """model.kl_method = "table" (default) and "series" give the same loss and gradients
    to float32 rounding on the same weights and noise."""
    torch.manual_seed(0)
    losses, grads = [], []
    for method in ("table", "series"):
        torch.manual_seed(0)
        model = StickBreakingVAE(SBVAEConfig(hidden=32, truncation=10, kl_method=method),
                                 (1, 8, 8))
        x = torch.rand(16, 1, 8, 8, generator=torch.Generator().manual_seed(1))
        torch.manual_seed(2)
        loss = model.loss(x)
        loss.total.backward()
        losses.append(loss.terms["kl"].item())
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters()]))
    assert losses[0] == pytest.approx(losses[1], rel=1e-5)
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-3, atol=1e-5)


def test_kl_method_is_validated():
    with pytest.raises(ConfigError, match="kl_method"):
        SBVAEConfig(kl_method="fast").validate()


def test_the_kl_table_keeps_its_gradient_at_the_edges_of_the_box():
    """float32 0.01 lies just below 0.01: the edge cell still gives the series' gradient."""
    table = expected_log1m_table(0.01, 30.0, 0.01, 1e12, 50)
    a = torch.tensor([0.01, 30.0, 1.0, 2.0], requires_grad=True)
    b = torch.tensor([0.5, 3.0, 0.01, 1e12], requires_grad=True)
    table(a, b).sum().backward()
    a64, b64 = a.detach().double().requires_grad_(), b.detach().double().requires_grad_()
    kumaraswamy_expected_log1m(a64, b64).sum().backward()
    torch.testing.assert_close(a.grad.double(), a64.grad, rtol=1e-4, atol=1e-9)
    torch.testing.assert_close(b.grad.double(), b64.grad, rtol=1e-4, atol=1e-9)


def test_compiled_sampling_has_finite_gradients_where_expm1_underflows():
    """Under torch.compile, Inductor's CPU ``expm1`` is exp(x) - 1 (0 for |x| < 6e-8 in
    float32). A draw with u near 1 and a large b (s = log(u) / b ~ -3e-9, seen in training
    at step ~300) then gave log v = -inf and NaN gradients; log1mexp's series near 0 keeps
    the compiled sample equal to the float64 one and its gradients finite."""
    if shutil.which("g++") is None and shutil.which("c++") is None:
        pytest.skip("Inductor on the CPU needs a C++ compiler")
    a = torch.tensor([1.3523, 0.7, 3.0, 1.0] * 4, requires_grad=True)
    b = torch.tensor([5485.8, 1e6, 2.0, 1e11] * 4, requires_grad=True)
    u = torch.tensor([0.999985, 1 - 1e-6, 0.5, 0.9] * 4)

    def log_v(a, b, u):
        return kumaraswamy_log_sample(a, b, u)[0]

    compiled = torch.compile(log_v)(a, b, u)
    exact = log_v(a.double(), b.double(), u.double())
    assert torch.allclose(compiled.double(), exact, rtol=1e-4, atol=1e-6)
    ga, gb = torch.autograd.grad(compiled.sum(), (a, b))
    assert torch.isfinite(ga).all() and torch.isfinite(gb).all()
    x = -torch.logspace(-12, 1.3, 500)
    ref = log1mexp(x.double())
    got = torch.compile(log1mexp)(x).double()
    assert ((got - ref).abs() / ref.abs()).max() < 1e-6


def test_the_kl_table_gives_nan_not_an_index_error_for_nan_parameters():
    """A diverging run's NaN a or b must reach the trainer as a NaN loss (which it reports
    as divergence), not as an index outside the table (a hard abort in compiled code)."""
    table = ExpectedLog1mTable((0.01, 50.0), (0.01, 1e4), terms=20, step=0.5)
    out = table(torch.tensor([float("nan"), 1.0, float("inf")]),
                torch.tensor([1.0, float("nan"), 2.0]))
    assert torch.isnan(out[:2]).all()
