"""beta-VAE (Higgins et al., "beta-VAE: Learning Basic Visual Concepts with a Constrained
Variational Framework", ICLR 2017), and its capacity-controlled variant (Burgess et al.,
"Understanding disentangling in beta-VAE", 2018, arXiv:1804.03599).

Everything but the objective is the VAE's (:mod:`autoencoders.models.vae`): Gaussian
posterior, N(0, I) prior, Bernoulli or Gaussian decoder, MLP or conv networks.

Objective, both in nats per example (Higgins et al., equation 4; Burgess et al., eq. 8):

    beta-VAE:          loss = rec + beta * kl
    capacity control:  loss = rec + gamma * |kl - C|,  C = C_max * min(1, step / N)

with ``rec = -log p(x|z)`` and ``kl = KL(q(z|x) || p(z))``, the VAE's terms. beta = 1 is the
VAE. Higgins et al. use beta = 4 on dSprites (Figure 7) and beta = 250 on CelebA with a
Gaussian decoder of unit variance (appendix A.1); Burgess et al. use gamma = 1000 and C
rising from 0 to 25 nats over 100,000 steps (dSprites, batch 64).

The step that drives C is the buffer ``step``, counted only by a training step (the model
in train mode with gradients on); evaluation, plotting and ``torch.no_grad()`` calls leave
it unchanged. It is saved with the weights, so a resumed run continues the schedule.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from ..errors import ConfigError
from .vae import VAE, VAEConfig


@dataclass
class BetaVAEConfig(VAEConfig):
    model_name: ClassVar[str] = "betavae"

    beta: float = 4.0  # Higgins et al.: 4 for dSprites (Fig. 7), 250 for CelebA (A.1)
    # capacity control (Burgess et al. 2018) when capacity_max > 0: gamma * |kl - C|
    capacity_max: float = 0.0  # C_max in nats (Burgess et al.: 25 for dSprites)
    capacity_steps: int = 100000  # N: optimiser steps over which C rises from 0 to C_max
    gamma: float = 1000.0  # Burgess et al.: 1000

    def validate(self) -> None:
        super().validate()
        if self.beta < 0:
            raise ConfigError(f"model.beta = {self.beta} must be >= 0 (1 is the plain VAE, "
                              "Higgins et al. use 4 on dSprites).")
        if self.capacity_max < 0 or self.capacity_steps < 1 or self.gamma < 0:
            raise ConfigError(
                f"capacity control needs model.capacity_max >= 0 (got {self.capacity_max}; "
                f"0 turns it off), model.capacity_steps >= 1 (got {self.capacity_steps}) "
                f"and model.gamma >= 0 (got {self.gamma}).")


# fields that change the loss but not the network
_LOSS_ONLY_FIELDS = ("beta", "gamma", "capacity_max", "capacity_steps")


class BetaVAE(VAE):
    """VAE whose KL term is weighted by beta, or pulled towards a growing capacity C."""

    Config = BetaVAEConfig
    loss_terms = {**VAE.loss_terms, "capacity": "capacity C of the objective, nats"}

    def __init__(self, config: BetaVAEConfig, image_shape: tuple[int, int, int]):
        super().__init__(config, image_shape)
        self.register_buffer("step", torch.zeros((), dtype=torch.long))

    @classmethod
    def network_fields(cls, fields: dict[str, Any]) -> dict[str, Any]:
        """The VAE's: beta, gamma and the capacity schedule change only the loss, so an
        untrained beta-VAE is an untrained VAE (they share baseline caches)."""
        out = {k: v for k, v in fields.items() if k not in _LOSS_ONLY_FIELDS}
        if "name" in out:
            out["name"] = VAE.Config.model_name
        return out

    def capacity(self) -> float:
        """C in nats at the current training step (0 without capacity control)."""
        c = self.config
        return c.capacity_max * min(1.0, int(self.step) / c.capacity_steps)

    def loss(self, x: torch.Tensor):
        out = super().loss(x)
        if self.config.capacity_max > 0:
            out.terms["capacity"] = torch.tensor(self.capacity())
        if self.training and torch.is_grad_enabled():
            self.step += 1  # a training step: the schedule moves on
        return out

    def regularised(self, rec: torch.Tensor, kl: torch.Tensor) -> torch.Tensor:
        c = self.config
        if c.capacity_max > 0:
            return rec + c.gamma * (kl - self.capacity()).abs()
        return rec + c.beta * kl
