"""Observation models p(x | z): the decoder's output parameters -> log-density in nats.

Decoders return unconstrained parameters (logits, raw means and log-variances); every
log-density is computed from those with numerically stable formulas (``softplus``
instead of ``log(sigmoid)``), as STYLE.md asks.

Shapes: ``params`` is ``(..., n_params * C, H, W)``, ``x`` is ``(..., C, H, W)``
broadcastable against it; ``log_prob`` sums over the pixels and returns ``(...)``.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path

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
    ``Bernoulli().log_prob(layer(h), x)`` (to float rounding). Under ``torch.autocast``
    only ``layer(h)`` runs in low precision; every sum is in float32.

    Args:
        h: ``(S, B, H)`` last hidden layer of the decoder.
        layer: the decoder's final ``nn.Linear(H, D)``.
        x: ``(B, C, H', W')`` data with ``C*H'*W' = D``.

    Returns:
        ``(S, B)`` in nats.
    """
    xf = x.flatten(1).float()  # (B, D)
    w, b = layer.weight.float(), layer.bias.float()
    return _bernoulli_tile(h, layer, xf @ w, xf @ b)


def bernoulli_log_prob_mlp(z: torch.Tensor, body: torch.nn.Module, layer: torch.nn.Linear,
                           x: torch.Tensor, rows: int | None = None) -> torch.Tensor:
    """Bernoulli log p(x|z) of an MLP decoder ``layer(body(z))``, in cache-sized tiles.

    The importance-weighted log p(x) decodes K samples per example: 50,000 rows of 784
    logits are 157 MB, so computing them whole and then ``softplus`` over them streams
    them through memory twice. Here the samples go through the decoder ``rows`` at a
    time, sized to the L2 cache (:func:`tile_rows`; the softplus is computed in place),
    and each tile is reduced to ``(rows,)`` numbers before the next: the arithmetic of
    :func:`bernoulli_log_prob_linear` on ``body(z)``, tile by tile, so the result is the
    same to float rounding.

    Args:
        z: ``(S, B, Z)`` latent samples for ``B`` examples.
        body: the decoder up to its last hidden layer (``(..., Z) -> (..., H)``).
        layer: the decoder's final ``nn.Linear(H, D)``.
        x: ``(B, C, H', W')`` data with ``C*H'*W' = D``.
        rows: decoder rows (samples x examples) per tile; ``None``: :func:`tile_rows`.

    Returns:
        ``(S, B)`` in nats.
    """
    n_samples, batch = z.shape[:2]
    with torch.autocast(device_type=z.device.type, enabled=False):
        xf = x.flatten(1).float()  # (B, D)
        xw, xb = xf @ layer.weight.float(), xf @ layer.bias.float()  # (B, H), (B,)
    rows = rows or tile_rows(layer.out_features)
    b_step = min(batch, rows)  # examples per tile; samples per tile below
    s_step = max(1, rows // b_step)
    out = torch.empty(n_samples, batch, device=z.device)  # float32, as the sums
    for b0 in range(0, batch, b_step):
        for s0 in range(0, n_samples, s_step):
            tile = z[s0:s0 + s_step, b0:b0 + b_step]  # (s, b, Z)
            out[s0:s0 + s_step, b0:b0 + b_step] = _bernoulli_tile(
                body(tile), layer, xw[b0:b0 + b_step], xb[b0:b0 + b_step])
    return out


def _bernoulli_tile(h: torch.Tensor, layer: torch.nn.Linear, xw: torch.Tensor,
                    xb: torch.Tensor) -> torch.Tensor:
    """sum_d x_d l_d - softplus(l_d) for ``l = layer(h)``, given ``xw = x W`` and
    ``xb = x . b``: ``h`` is ``(S, B, H)``, ``xw`` ``(B, H)``, ``xb`` ``(B,)``; ``(S, B)``."""
    logits = layer(h)  # the one big matmul: bf16 when the caller enabled autocast
    with torch.autocast(device_type=h.device.type, enabled=False):  # sums stay in fp32
        if logits.dtype == torch.float32 and not logits.requires_grad:  # in place: one buffer
            softplus = torch.ops.aten.softplus.out(logits, 1.0, 20.0, out=logits)
        else:
            softplus = F.softplus(logits.float())
        xl = torch.einsum("sbh,bh->sb", h.float(), xw) + xb  # sum_d x_d l_d
        return xl - softplus.sum(-1)


@functools.cache
def l2_cache_bytes() -> int:
    """The L2 cache of one core, in bytes (Linux sysfs); 1 MiB when it cannot be read."""
    base = Path("/sys/devices/system/cpu/cpu0/cache")
    try:
        for index in sorted(base.glob("index*")):
            if (index / "level").read_text().strip() == "2":
                size = (index / "size").read_text().strip().upper()
                scale = {"K": 2**10, "M": 2**20}.get(size[-1:], 1)
                return int(size.rstrip("KM")) * scale
    except (OSError, ValueError):
        pass
    return 2**20


def tile_rows(pixels: int) -> int:
    """Decoder rows per tile of :func:`bernoulli_log_prob_mlp`: float32 logits of about
    two L2 caches per thread that PyTorch uses, between 256 and 8192 rows.

    Much smaller tiles pay Python's overhead per tile; much larger ones (whole passes of
    50,000 rows) stream the logits through main memory. Each op of a tile synchronises the
    threads once, so tiles grow with the thread count (on a machine busy with other jobs,
    where a thread can wait for a core, fewer threads are faster)."""
    rows = 2 * l2_cache_bytes() * torch.get_num_threads() // (4 * pixels)
    return max(256, min(8192, rows))


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
