"""k-sparse autoencoder (Makhzani & Frey, "k-Sparse Autoencoders", ICLR 2014).

Model (paper, section 2, Algorithm 1), with tied weights W (hidden x d) and biases b, b':

    h = W x + b                      linear encoder
    z = supp_k(h)                    keep the k largest entries of h, set the rest to 0
    x_hat = W^T z + b'               linear decoder (tied weights)
    loss  = ||x - x_hat||^2          squared error, summed over pixels

Back-propagation goes only through the k kept units (the mask is a constant of the step).
Sparsity schedule (section 3.3, "Importance of incoherence"): k starts large (``k_start``)
and is lowered linearly to the target ``k`` over the first half of the epochs, so that no
hidden unit dies early. For classification (section 4.2) the code keeps the ``alpha * k``
largest activations of W x + b, alpha >= 1 chosen on the validation split.

``center`` (off by default; on in ``ksparse-classify``) encodes
x - m, m the train split's mean image, and adds m back when decoding: a reparameterisation
of the biases (W m folds into b), not another model, that keeps every unit in use.

The loss term ``rec`` is the squared error (the paper's objective), not a log-likelihood:
it equals the unit-variance Gaussian negative log-likelihood up to a factor 1/2 and a
constant.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from ..errors import ConfigError
from .base import Autoencoder, Loss
from .nets import flat_dim


@dataclass
class KSparseAEConfig:
    model_name: ClassVar[str] = "ksparse"

    hidden: int = 1000  # the paper's MNIST models: 1000 hidden units (Table 1)
    k: int = 25  # target sparsity; the paper's figures use 10, 25, 40, 70
    k_start: int = 100  # section 3.3: "start off with a large sparsity level (e.g. k = 100)"
    schedule_fraction: float = 0.5  # k reaches its target after this fraction of the epochs
    alpha: float = 3.0  # features(): keep alpha * k units (section 4.2; chosen on valid)
    init_std: float = 0.01  # weights ~ N(0, init_std^2), biases 0; 0 keeps PyTorch's default
    # Encode x - m instead of x, m the train split's mean image (and decode back to x):
    # the same model (W m folds into the bias b) but not the same optimisation. On raw
    # MNIST every image shares a large mean component, the same units win for every image
    # and about 40 % never win (dead); centred, none (see docs/REPRODUCTIONS.md).
    center: bool = False

    def validate(self) -> None:
        if self.hidden < 1:
            raise ConfigError(f"model.hidden = {self.hidden} must be >= 1.")
        if not 1 <= self.k <= self.hidden:
            raise ConfigError(f"model.k = {self.k} must be between 1 and model.hidden "
                              f"= {self.hidden}.")
        if self.k_start < self.k:
            raise ConfigError(f"model.k_start = {self.k_start} must be >= model.k = {self.k} "
                              "(the schedule lowers k); set k_start = k to switch it off.")
        if not 0.0 <= self.schedule_fraction <= 1.0:
            raise ConfigError(f"model.schedule_fraction = {self.schedule_fraction} must be "
                              "in [0, 1].")
        if self.alpha < 1.0:
            raise ConfigError(f"model.alpha = {self.alpha} must be >= 1 (the paper keeps "
                              "alpha * k >= k units at encoding time).")
        if self.init_std < 0:
            raise ConfigError(f"model.init_std = {self.init_std} must be >= 0.")


def topk_mask(h: torch.Tensor, k: int) -> torch.Tensor:
    """Boolean mask of the ``k`` largest entries of each row (ties broken by position).

    Args:
        h: ``(batch, hidden)`` activations.
        k: entries kept per row, ``1 <= k <= hidden``.

    Returns:
        ``(batch, hidden)`` bool with exactly ``k`` True per row.
    """
    idx = h.topk(k, dim=-1, sorted=False).indices  # (batch, k)
    return torch.zeros_like(h, dtype=torch.bool).scatter_(-1, idx, True)


def topk(h: torch.Tensor, k: int) -> torch.Tensor:
    """supp_k(h): the ``k`` largest entries of each row kept, the rest set to 0.

    The gradient with respect to ``h`` is the incoming gradient on the kept entries and
    exactly 0 elsewhere. Shapes: ``(batch, hidden) -> (batch, hidden)``.
    """
    return h * topk_mask(h.detach(), k)


def k_schedule(epoch: int, total_epochs: int, k_start: int, k: int,
               fraction: float = 0.5) -> int:
    """The sparsity level used in ``epoch`` (0-based).

    k decreases linearly from ``k_start`` at epoch 0 and equals the target ``k`` from epoch
    ``floor(fraction * total_epochs)`` on (at once when that is 0).
    """
    ramp = int(math.floor(fraction * total_epochs))
    if ramp == 0 or epoch >= ramp:
        return k
    return int(round(k_start + (k - k_start) * epoch / ramp))


class KSparseAE(Autoencoder):
    """Tied-weight linear autoencoder with a top-k hidden layer (Makhzani & Frey 2014).

    ``model(x)`` is W^T supp_k(W x + b) + b' clipped to [0, 1].
    """

    Config = KSparseAEConfig
    capabilities = frozenset({"filters", "feature_alpha", "diagnostics", "data_init"})
    loss_terms = {"rec": "squared reconstruction error, summed over pixels"}

    def __init__(self, config: KSparseAEConfig, image_shape: tuple[int, int, int]):
        super().__init__(config, image_shape)
        d = flat_dim(self.image_shape)
        self.weight = nn.Parameter(torch.empty(config.hidden, d))  # W: (hidden, d)
        self.bias = nn.Parameter(torch.zeros(config.hidden))  # b
        self.out_bias = nn.Parameter(torch.zeros(d))  # b'
        if config.init_std:
            nn.init.normal_(self.weight, 0.0, config.init_std)
        else:
            nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        #: m, the train split's mean image (``center``; zeros otherwise), saved with the
        #: weights when used
        self.register_buffer("input_mean", torch.zeros(d), persistent=config.center)
        #: sparsity level of the current epoch; set by on_epoch_start, the target otherwise
        self.k = config.k

    @torch.no_grad()
    def init_from_data(self, x, batch: int = 10_000) -> None:
        """``center``: m = the mean image of the train split ``x`` (float64 sums)."""
        if not self.config.center:
            return
        total = torch.zeros(self.input_mean.shape, dtype=torch.float64)
        for i in range(0, x.shape[0], batch):
            total += x[i:i + batch].flatten(1).double().sum(0).cpu()
        self.input_mean.copy_((total / x.shape[0]).to(self.input_mean))

    def on_epoch_start(self, epoch: int, total_epochs: int) -> None:
        c = self.config
        self.k = k_schedule(epoch, total_epochs, c.k_start, c.k, c.schedule_fraction)

    def pre_activation(self, x: torch.Tensor) -> torch.Tensor:
        """W (x - m) + b: ``(B, C, H, W) -> (B, hidden)`` (m = 0 unless ``center``)."""
        return nn.functional.linear(x.flatten(1) - self.input_mean, self.weight, self.bias)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The k-sparse code with the current k: ``(B, C, H, W) -> (B, hidden)``."""
        return topk(self.pre_activation(x), min(self.k, self.config.hidden))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """W^T z + b' + m: ``(B, hidden) -> (B, C, H, W)`` (pixel means, linear)."""
        x_hat = z @ self.weight + self.out_bias + self.input_mean  # (B, d)
        return x_hat.reshape(-1, *self.image_shape)

    def loss(self, x: torch.Tensor) -> Loss:
        x_hat = self.decode(self.encode(x))
        rec = (x - x_hat).pow(2).flatten(1).sum(-1).mean()
        return Loss(total=rec, terms={"rec": rec})

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x)).clamp(0.0, 1.0)

    def features(self, x: torch.Tensor, alpha: float | None = None) -> torch.Tensor:
        """The classification code: the ``alpha * k`` largest units of W x + b kept.

        Args:
            x: ``(B, C, H, W)``.
            alpha: overrides ``config.alpha`` (the probe chooses it on the validation split).

        Returns:
            ``(B, hidden)`` with ``min(hidden, round(alpha * k))`` non-zero entries per row.
        """
        a = self.config.alpha if alpha is None else alpha
        keep = min(self.config.hidden, max(1, int(round(a * self.config.k))))
        return topk(self.pre_activation(x), keep)

    @torch.no_grad()
    def unit_usage(self, x: torch.Tensor, batch: int = 1000) -> torch.Tensor:
        """How often each hidden unit is among the target ``k`` largest of W x + b.

        Args:
            x: ``(N, C, H, W)`` images (e.g. the validation split).
            batch: rows per forward pass.

        Returns:
            ``(hidden,)`` int64 counts summing to ``N * k``.
        """
        counts = torch.zeros(self.config.hidden, dtype=torch.int64)
        for i in range(0, x.shape[0], batch):
            mask = topk_mask(self.pre_activation(x[i:i + batch]), self.config.k)
            counts += mask.sum(0).cpu()
        return counts

    def diagnostics(self, x: torch.Tensor) -> dict[str, float]:
        """``dead_units``: the fraction of hidden units never among the target k largest
        on ``x`` (section 3.3: without the k schedule many units never win and stop
        learning). The trainer logs it on the validation split after every epoch."""
        return {"dead_units": float((self.unit_usage(x) == 0).float().mean())}

    def filters(self) -> torch.Tensor:
        """The dictionary W as images, ``(hidden, C, H, W)``."""
        return self.weight.detach().reshape(-1, *self.image_shape)
