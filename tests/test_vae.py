"""The VAE's math: KL, importance-weighted log-likelihood, learning on real data."""

from __future__ import annotations

import math

import pytest
import torch

from autoencoders.evaluation.likelihood import iw_log_likelihood
from autoencoders.models.base import LatentVariableModel
from autoencoders.models.likelihoods import (
    Bernoulli,
    Gaussian,
    gaussian_kl,
    gaussian_log_prob,
    standard_normal_log_prob,
)
from autoencoders.models.vae import VAE, VAEConfig


def test_gaussian_kl_matches_monte_carlo_and_torch():
    g = torch.Generator().manual_seed(0)
    mu = torch.randn(6, 4, generator=g) * 2
    log_var = torch.randn(6, 4, generator=g)
    closed = gaussian_kl(mu, log_var)
    q = torch.distributions.Normal(mu, torch.exp(0.5 * log_var))
    p = torch.distributions.Normal(torch.zeros_like(mu), torch.ones_like(mu))
    ref = torch.distributions.kl_divergence(q, p).sum(-1)
    torch.testing.assert_close(closed, ref, rtol=1e-5, atol=1e-5)
    torch.manual_seed(1)
    z = q.sample((200_000,))
    mc = (q.log_prob(z) - p.log_prob(z)).sum(-1).mean(0)
    assert torch.allclose(closed, mc, rtol=0.02, atol=0.03), (closed, mc)


def test_log_densities_match_torch_distributions():
    g = torch.Generator().manual_seed(0)
    z = torch.randn(5, 3, generator=g)
    mu, log_var = torch.randn(5, 3, generator=g), torch.randn(5, 3, generator=g)
    ref = torch.distributions.Normal(mu, torch.exp(0.5 * log_var)).log_prob(z).sum(-1)
    torch.testing.assert_close(gaussian_log_prob(z, mu, log_var), ref)
    ref0 = torch.distributions.Normal(0.0, 1.0).log_prob(z).sum(-1)
    torch.testing.assert_close(standard_normal_log_prob(z), ref0)
    logits = torch.randn(4, 1, 3, 2, generator=g) * 5
    x = torch.bernoulli(torch.full((4, 1, 3, 2), 0.5), generator=g)
    ref_b = torch.distributions.Bernoulli(logits=logits).log_prob(x).flatten(1).sum(-1)
    torch.testing.assert_close(Bernoulli().log_prob(logits, x), ref_b)
    lik = Gaussian(min_log_var=-9.0)
    params = torch.randn(4, 2, 3, 2, generator=g)
    xg = torch.rand(4, 1, 3, 2, generator=g)
    mean, lv = lik.split(params)
    ref_g = torch.distributions.Normal(mean, torch.exp(0.5 * lv)).log_prob(xg).flatten(1).sum(-1)
    torch.testing.assert_close(lik.log_prob(params, xg), ref_g)
    assert (lv >= -9.0).all()


class LinearGaussian(LatentVariableModel):
    """p(z) = N(0, I), p(x|z) = N(W z + b, s^2 I): log p(x) = log N(x; b, W W^T + s^2 I).

    The proposal q(z|x) is the exact posterior with its variance inflated by 1.5, so the
    importance weights vary and the estimator has real work to do.
    """

    def __init__(self, d=6, k=2, s=0.5, seed=0):
        super().__init__(None, (1, 1, d))
        g = torch.Generator().manual_seed(seed)
        self.W = torch.randn(d, k, generator=g, dtype=torch.float64)
        self.b = torch.randn(d, generator=g, dtype=torch.float64)
        self.s2 = s**2
        self.latent_dim = k
        prec = torch.eye(k, dtype=torch.float64) + self.W.T @ self.W / self.s2
        self.post_cov = torch.linalg.inv(prec)
        self.q_var = torch.diagonal(self.post_cov) * 1.5

    def exact_log_px(self, x):
        cov = self.W @ self.W.T + self.s2 * torch.eye(self.W.shape[0], dtype=torch.float64)
        return torch.distributions.MultivariateNormal(self.b, cov).log_prob(x.flatten(1))

    def log_importance_weights(self, x, n_samples):
        xf = x.flatten(1).double()
        mu = (xf - self.b) @ self.W @ self.post_cov.T / self.s2  # (B, k)
        log_var = torch.log(self.q_var).expand_as(mu)
        z = mu + torch.exp(0.5 * log_var) * torch.randn(n_samples, *mu.shape,
                                                        dtype=torch.float64)
        mean = z @ self.W.T + self.b
        log_px_z = torch.distributions.Normal(mean, self.s2**0.5).log_prob(xf).sum(-1)
        return log_px_z + standard_normal_log_prob(z) - gaussian_log_prob(z, mu, log_var)


def test_iw_estimate_matches_closed_form_marginal():
    torch.manual_seed(0)
    model = LinearGaussian()
    x = (torch.randn(40, 2, dtype=torch.float64) @ model.W.T + model.b
         + 0.5 * torch.randn(40, 6, dtype=torch.float64)).reshape(40, 1, 1, 6)
    est = iw_log_likelihood(model, x, n_samples=5000, batch_rows=7000)
    exact = model.exact_log_px(x)
    assert (est - exact).abs().max() < 0.05, (est - exact).abs().max()
    # K = 1 is the ELBO: below log p(x) on average by the KL of the proposal
    elbo = iw_log_likelihood(model, x, n_samples=1)
    assert (exact - elbo).mean() > 0.05


@pytest.fixture(scope="module")
def trained_vae(shared_data_module):
    from autoencoders.data import get

    torch.manual_seed(0)
    x = get("mnist", "train", data_dir=shared_data_module, valid_size=0,
            binarize="static").x[:10000]
    model = VAE(VAEConfig(latent_dim=5, hidden=100, init_std=0.0), (1, 28, 28))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    first = None
    for _epoch in range(2):
        for i in range(0, len(x), 100):
            loss = model.loss(x[i:i + 100])
            opt.zero_grad()
            loss.total.backward()
            opt.step()
            first = first if first is not None else float(loss.total.detach())
    return model, x, first


@pytest.fixture(scope="module")
def shared_data_module():
    from conftest import SHARED_DATA

    if not (SHARED_DATA / "mnist" / "train-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"real MNIST not found in {SHARED_DATA}")
    return SHARED_DATA


def test_vae_learns_on_mnist(trained_vae):
    model, x, first = trained_vae
    model.eval()
    with torch.no_grad():
        final = float(model.loss(x[:1000]).total)
    assert first > 500 and final < 185, (first, final)


def test_iw_bound_is_above_elbo_and_grows_with_k(trained_vae):
    model, x, _ = trained_vae
    xs = x[:200]
    torch.manual_seed(1)
    with torch.no_grad():
        elbo = -float(model.loss(xs).total)
    ll = {k: float(iw_log_likelihood(model, xs, n_samples=k).mean()) for k in (1, 10, 100, 1000)}
    assert abs(ll[1] - elbo) < 1.0  # K = 1 is an ELBO sample
    assert ll[1000] > ll[100] > ll[10] > ll[1]
    assert ll[1000] > elbo + 1.0
    assert all(math.isfinite(v) for v in ll.values())


def test_iw_chunking_does_not_change_the_estimate(trained_vae):
    model, x, _ = trained_vae
    torch.manual_seed(3)
    a = iw_log_likelihood(model, x[:30], n_samples=64, batch_rows=10_000)
    torch.manual_seed(3)
    b = iw_log_likelihood(model, x[:30], n_samples=64, batch_rows=64 * 30)
    torch.testing.assert_close(a, b)  # same draws, other chunking: same answer
    c = iw_log_likelihood(model, x[:30], n_samples=64, batch_rows=16)  # 4 chunks/example
    assert (a - c).abs().mean() < 1.0  # different draws, same estimator


def test_posterior_samples_have_the_posterior_mean_and_variance():
    torch.manual_seed(0)
    cfg = VAEConfig(latent_dim=3, hidden=16)
    cfg.validate()
    model = VAE(cfg, (1, 4, 4)).eval()
    x = torch.rand(2, 1, 4, 4)
    with torch.no_grad():
        mu, log_var = model.encode(x)
        z = model.sample_posterior(x.repeat(100_000, 1, 1, 1),
                                   generator=torch.Generator().manual_seed(1)).view(100_000, 2, 3)
        one = model.sample_posterior(x, generator=torch.Generator().manual_seed(1))
        again = model.sample_posterior(x, generator=torch.Generator().manual_seed(1))
    assert torch.equal(one, again) and not torch.allclose(one, mu, atol=1e-3)
    torch.testing.assert_close(z.mean(0), mu, rtol=0, atol=0.02)
    torch.testing.assert_close(z.var(0), log_var.exp(), rtol=0.03, atol=0)


def test_vae_weights_initialised_as_in_the_paper():
    model = VAE(VAEConfig(latent_dim=20, hidden=500), (1, 28, 28))
    w = model.encoder[0].weight
    w = w.detach()
    assert abs(float(w.std()) - 0.01) < 0.001 and abs(float(w.mean())) < 0.001


def test_manifold_grid_is_finite_and_symmetric():
    from autoencoders.plots import manifold_grid

    z = manifold_grid(20)
    assert z.shape == (400, 2) and torch.isfinite(z).all()
    assert abs(float(z[:, 0].min()) + float(z[:, 0].max())) < 1e-5
    assert 1.9 < float(z.max()) < 2.1  # cell centres: Phi^-1(0.975) = 1.96
    assert z[0, 1] > 0 > z[-1, 1]  # top row is the largest z_2


def test_fused_bernoulli_log_prob_equals_the_plain_one():
    from autoencoders.models.likelihoods import bernoulli_log_prob_linear

    g = torch.Generator().manual_seed(0)
    layer = torch.nn.Linear(7, 12)
    h = torch.randn(5, 3, 7, generator=g)
    x = torch.bernoulli(torch.full((3, 1, 3, 4), 0.4), generator=g)
    plain = Bernoulli().log_prob(layer(h).reshape(5, 3, 1, 3, 4), x)
    torch.testing.assert_close(bernoulli_log_prob_linear(h, layer, x), plain,
                               rtol=1e-5, atol=1e-4)
    # and inside the VAE: same importance weights as decoding then scoring
    model = VAE(VAEConfig(latent_dim=3, hidden=16, init_std=0.0), (1, 4, 5))
    xb = torch.bernoulli(torch.full((6, 1, 4, 5), 0.5), generator=g)
    torch.manual_seed(2)
    fused = model.log_importance_weights(xb, 8)
    torch.manual_seed(2)
    mu, log_var = model.encode(xb)
    z = mu + torch.exp(0.5 * log_var) * torch.randn(8, *mu.shape)
    ref = (model.lik.log_prob(model.decode(z), xb) + standard_normal_log_prob(z)
           - gaussian_log_prob(z, mu, log_var))
    torch.testing.assert_close(fused, ref, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("rows", [1, 2, 7, 10_000])
def test_tiled_bernoulli_log_prob_equals_the_plain_one(rows):
    """Tiles over samples, and over examples when a tile holds fewer rows than examples."""
    from autoencoders.models.likelihoods import bernoulli_log_prob_mlp

    g = torch.Generator().manual_seed(0)
    body = torch.nn.Sequential(torch.nn.Linear(4, 9), torch.nn.Tanh())
    layer = torch.nn.Linear(9, 12)
    z = torch.randn(5, 3, 4, generator=g)
    x = torch.bernoulli(torch.full((3, 1, 3, 4), 0.4), generator=g)
    plain = Bernoulli().log_prob(layer(body(z)).reshape(5, 3, 1, 3, 4), x)
    with torch.no_grad():
        tiled = bernoulli_log_prob_mlp(z, body, layer, x, rows=rows)
    torch.testing.assert_close(tiled, plain, rtol=1e-5, atol=1e-4)


def _plain_iw_log_likelihood(model, x, n_samples):
    """The estimator written out on one pass: decode, score, logsumexp; ``(N,)`` float64."""
    mu, log_var = model.encode(x)
    z = mu + torch.exp(0.5 * log_var) * torch.randn(n_samples, *mu.shape)
    lw = (model.lik.log_prob(model.decode(z), x) + standard_normal_log_prob(z)
          - gaussian_log_prob(z, mu, log_var))
    return torch.logsumexp(lw.double(), 0) - math.log(n_samples)


def test_iw_log_likelihood_equals_the_plain_estimator_on_the_same_draws(monkeypatch):
    """Tiled decoder passes change no number by more than 1e-4 nats, and a seed fixes them."""
    import autoencoders.models.likelihoods as likelihoods

    model = VAE(VAEConfig(latent_dim=4, hidden=32), (1, 28, 28)).eval()
    g = torch.Generator().manual_seed(1)
    x = torch.bernoulli(torch.full((6, 1, 28, 28), 0.3), generator=g)
    monkeypatch.setattr(likelihoods, "tile_rows", lambda pixels: 256)  # many tiles
    with torch.no_grad():
        torch.manual_seed(4)
        ref = _plain_iw_log_likelihood(model, x, 500)
    torch.manual_seed(4)
    est = iw_log_likelihood(model, x, n_samples=500, batch_rows=500 * 6)  # the same draws
    assert (est - ref).abs().max() < 1e-4, (est - ref).abs().max()
    torch.manual_seed(4)
    assert torch.equal(iw_log_likelihood(model, x, n_samples=500, batch_rows=500 * 6), est)


def test_bf16_decoder_stays_within_tolerance(trained_vae):
    model, x, _ = trained_vae
    torch.manual_seed(5)
    a = iw_log_likelihood(model, x[:100], n_samples=200)
    torch.manual_seed(5)
    b = iw_log_likelihood(model, x[:100], n_samples=200, precision="bf16")
    assert abs(float((a - b).mean())) < 0.05  # the documented tolerance
    assert float((a - b).abs().max()) < 1.0
