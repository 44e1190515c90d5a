"""Denoising autoencoder (Vincent, Larochelle, Bengio & Manzagol, "Extracting and Composing
Robust Features with Denoising Autoencoders", ICML 2008).

Model (paper, section 2.3 and Figure 1), one hidden layer of sigmoid units:

    x_tilde ~ q_D(x_tilde | x)       masking noise: each pixel set to 0 with probability nu
    y = s(W x_tilde + b)             encoder f_theta
    z = s(W' y + b')                 decoder g_theta', tied (W' = W^T) or untied
    loss = L_H(x, z) = -sum_j [x_j log z_j + (1 - x_j) log(1 - z_j)]

The reconstruction cross-entropy compares z with the *clean* x; it is computed from the
decoder's logits (``binary_cross_entropy_with_logits``) and is in nats per example. The
noise is drawn only in training mode (``model.train()``); in eval mode the input is left
intact, so features, reconstructions and validation losses are deterministic.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from ..errors import ConfigError
from .base import Autoencoder, Loss
from .likelihoods import Bernoulli
from .nets import flat_dim


@dataclass
class DenoisingAEConfig:
    model_name: ClassVar[str] = "dae"

    hidden: int = 500  # units of the hidden layer (the paper's SdA layers: 500 to 3000)
    noise: float = 0.25  # nu, masking-noise rate; the paper uses 0, 10, 25, 40, 50 %
    tied: bool = True  # W' = W^T (the paper's experiments); false: a separate decoder W'
    init_std: float = 0.0  # 0: uniform in +-4 sqrt(6 / (fan_in + fan_out)) (sigmoid units)

    def validate(self) -> None:
        if self.hidden < 1:
            raise ConfigError(f"model.hidden = {self.hidden} must be >= 1.")
        if not 0.0 <= self.noise < 1.0:
            raise ConfigError(f"model.noise = {self.noise} must be in [0, 1) (the fraction of "
                              "pixels set to 0, e.g. 0.25 for 25 %).")
        if self.init_std < 0:
            raise ConfigError(f"model.init_std = {self.init_std} must be >= 0.")


def mask_noise(x: torch.Tensor, nu: float, generator: torch.Generator | None = None
               ) -> torch.Tensor:
    """Masking corruption q_D: each entry of ``x`` set to 0 independently with prob. ``nu``.

    Args:
        x: any shape, e.g. ``(B, C, H, W)``.
        nu: corruption rate in [0, 1).
        generator: source of randomness (None: the global one).

    Returns:
        Tensor of ``x``'s shape.
    """
    if nu == 0.0:
        return x
    keep = torch.rand(x.shape, generator=generator, device=x.device) >= nu
    return x * keep


def _init_sigmoid_(weight: torch.Tensor, std: float) -> None:
    """N(0, std^2), or for std = 0 the uniform range recommended for sigmoid units,
    +-4 sqrt(6 / (fan_in + fan_out)) (Glorot & Bengio 2010), as in the DAE tutorials."""
    if std:
        nn.init.normal_(weight, 0.0, std)
    else:
        bound = 4.0 * math.sqrt(6.0 / (weight.shape[0] + weight.shape[1]))
        nn.init.uniform_(weight, -bound, bound)


class DenoisingAE(Autoencoder):
    """One-hidden-layer sigmoid denoising autoencoder (Vincent et al. 2008).

    ``model(x)`` is the reconstruction of the clean ``x``, sigmoid(W' y + b').
    """

    Config = DenoisingAEConfig
    capabilities = frozenset({"filters", "corrupt"})
    loss_terms = {"rec": "reconstruction cross-entropy with the clean input, nats"}

    def __init__(self, config: DenoisingAEConfig, image_shape: tuple[int, int, int]):
        super().__init__(config, image_shape)
        d = flat_dim(self.image_shape)
        self.encoder = nn.Linear(d, config.hidden)  # W: (hidden, d), b
        _init_sigmoid_(self.encoder.weight, config.init_std)
        nn.init.zeros_(self.encoder.bias)
        self.decoder_weight: nn.Parameter | None = None  # W': (d, hidden), untied only
        if not config.tied:
            self.decoder_weight = nn.Parameter(torch.empty(d, config.hidden))
            _init_sigmoid_(self.decoder_weight, config.init_std)
        self.decoder_bias = nn.Parameter(torch.zeros(d))  # b'
        self.lik = Bernoulli()

    def corrupt(self, x: torch.Tensor, generator: torch.Generator | None = None
                ) -> torch.Tensor:
        """x_tilde ~ q_D(x_tilde | x) with the configured rate (regardless of the mode)."""
        return mask_noise(x, self.config.noise, generator)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """y = sigmoid(W x + b): ``(B, C, H, W) -> (B, hidden)`` (no noise here)."""
        return torch.sigmoid(self.encoder(x.flatten(1)))

    def decode(self, y: torch.Tensor) -> torch.Tensor:
        """Logits W' y + b': ``(B, hidden) -> (B, C, H, W)``."""
        w = self.encoder.weight if self.decoder_weight is None else self.decoder_weight.t()
        logits = y @ w + self.decoder_bias  # (B, d)
        return logits.reshape(-1, *self.image_shape)

    def loss(self, x: torch.Tensor) -> Loss:
        x_in = self.corrupt(x) if self.training else x
        logits = self.decode(self.encode(x_in))
        rec = -self.lik.log_prob(logits, x).mean()  # cross-entropy with the clean x
        return Loss(total=rec, terms={"rec": rec})

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.decode(self.encode(x)))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.encode(x)

    def filters(self) -> torch.Tensor:
        """Encoder weights W as images, ``(hidden, C, H, W)`` (the paper's Figure 3)."""
        return self.encoder.weight.detach().reshape(-1, *self.image_shape)
