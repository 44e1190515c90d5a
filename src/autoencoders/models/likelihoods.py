"""Observation models p(x | z): the decoder's output parameters -> log-density in nats.

Decoders return unconstrained parameters (logits, raw means and log-variances); every
log-density is computed from those with numerically stable formulas (``softplus``
instead of ``log(sigmoid)``), as STYLE.md asks.

Shapes: ``params`` is ``(..., n_params * C, H, W)``, ``x`` is ``(..., C, H, W)``
broadcastable against it; ``log_prob`` sums over the pixels and returns ``(...)``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..errors import ConfigError


class Bernoulli:
    """Independent Bernoulli pixels with logits ``l``: log p(x|z) = sum x*l - softplus(l)."""

    name = "bernoulli"
    n_params = 1

    def log_prob(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        params = params.float()  # sums over pixels in fp32, also under bf16 autocast
        return (x * params - F.softplus(params)).flatten(-3).sum(-1)

    def mean(self, params: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(params)

    def sample(self, params: torch.Tensor, generator=None) -> torch.Tensor:
        return torch.bernoulli(torch.sigmoid(params), generator=generator)


class Gaussian:
    """Independent Gaussian pixels with a learned mean and variance per pixel.

    The first C channels are the mean before a sigmoid (pixels live in [0, 1], as in
    Kingma & Welling's Frey Face decoder), the next C the log-variance, bounded below
    smoothly by ``min_log_var`` (log_var = min + softplus(raw - min)). Without a floor the
    variance of 8-bit pixels can shrink without limit and the density diverge; -9 means a
    standard deviation of at least 0.011, about three grey levels.
    """

    name = "gaussian"
    n_params = 2

    def __init__(self, min_log_var: float = -9.0):
        self.min_log_var = min_log_var

    def split(self, params: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raw_mean, raw_log_var = params.chunk(2, dim=-3)
        log_var = self.min_log_var + F.softplus(raw_log_var - self.min_log_var)
        return torch.sigmoid(raw_mean), log_var

    def log_prob(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        mean, log_var = self.split(params.float())
        lp = -0.5 * (math.log(2 * math.pi) + log_var + (x - mean) ** 2 * torch.exp(-log_var))
        return lp.flatten(-3).sum(-1)

    def mean(self, params: torch.Tensor) -> torch.Tensor:
        return self.split(params)[0]

    def sample(self, params: torch.Tensor, generator=None) -> torch.Tensor:
        mean, log_var = self.split(params)
        eps = torch.randn(mean.shape, generator=generator, dtype=mean.dtype)
        return mean + torch.exp(0.5 * log_var) * eps


def bernoulli_log_prob_linear(h: torch.Tensor, layer: torch.nn.Linear,
                              x: torch.Tensor) -> torch.Tensor:
    """Bernoulli log p(x|z) when the logits are ``l = layer(h)``, without forming ``x * l``.

    sum_d x_d l_d = h . (W^T x) + b . x is a contraction over the hidden units, so only
    ``softplus(l)`` needs a pass over all pixels. Same value as
    ``Bernoulli().log_prob(layer(h), x)`` (to float rounding), about 20 % faster for the
    importance-weighted log-likelihood, where ``h`` has many samples per example. Under
    ``torch.autocast`` only ``layer(h)`` runs in low precision; every sum is in float32.

    Args:
        h: ``(S, B, H)`` last hidden layer of the decoder.
        layer: the decoder's final ``nn.Linear(H, D)``.
        x: ``(B, C, H', W')`` data with ``C*H'*W' = D``.

    Returns:
        ``(S, B)`` in nats.
    """
    logits = layer(h)  # the one big matmul: bf16 when the caller enabled autocast
    with torch.autocast(device_type=h.device.type, enabled=False):  # sums stay in fp32
        h, xf = h.float(), x.flatten(1).float()  # (S, B, H), (B, D)
        w, b = layer.weight.float(), layer.bias.float()
        xl = torch.einsum("sbh,bh->sb", h, xf @ w) + xf @ b  # sum_d x_d l_d
        return xl - F.softplus(logits.float()).sum(-1)


def make_likelihood(name: str, min_log_var: float = -9.0):
    """``"bernoulli"`` or ``"gaussian"`` -> likelihood object."""
    if name == "bernoulli":
        return Bernoulli()
    if name == "gaussian":
        return Gaussian(min_log_var)
    raise ConfigError(f"Unknown likelihood {name!r}; valid: bernoulli, gaussian.")


def gaussian_kl(mu: torch.Tensor, log_var: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, diag exp(log_var)) || N(0, I)) in nats, summed over the last dim.

    Kingma & Welling, appendix B: -KL = 1/2 sum(1 + log sigma^2 - mu^2 - sigma^2).

    Args:
        mu, log_var: ``(..., latent_dim)``.

    Returns:
        ``(...)``.
    """
    return 0.5 * (mu.pow(2) + log_var.exp() - 1.0 - log_var).sum(-1)


def gaussian_log_prob(z: torch.Tensor, mu: torch.Tensor, log_var: torch.Tensor) -> torch.Tensor:
    """log N(z; mu, diag exp(log_var)) summed over the last dim; broadcasts. ``(...)``."""
    return -0.5 * (math.log(2 * math.pi) + log_var + (z - mu).pow(2) * torch.exp(-log_var)).sum(-1)


def standard_normal_log_prob(z: torch.Tensor) -> torch.Tensor:
    """log N(z; 0, I) summed over the last dim. ``(...)``."""
    return -0.5 * (math.log(2 * math.pi) + z.pow(2)).sum(-1)
