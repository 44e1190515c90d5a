"""The model contract every autoencoder follows.

Training, evaluation, plotting and the command line only call these methods; none of them
checks a model's type. A model is built from its config dataclass and the data's image
shape ``(C, H, W)``, so a checkpoint is just that config plus a ``state_dict``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn


@dataclass
class Loss:
    """What ``model.loss(x)`` returns.

    Attributes:
        total: scalar that the optimiser minimises (for VAEs the negative ELBO), nats per
            example averaged over the batch.
        terms: named scalars, each a per-example quantity in nats averaged over the batch
            (``rec``, ``kl``, ...). The trainer logs every term without knowing the model.
    """

    total: torch.Tensor
    terms: dict[str, torch.Tensor] = field(default_factory=dict)


class Autoencoder(nn.Module):
    """Base class: an encoder, a decoder and a loss that the model owns.

    Subclasses set ``Config`` (a dataclass with a ``model_name`` class attribute) and
    implement ``encode``, ``decode`` and ``loss``. Inputs and outputs are images of shape
    ``(batch, C, H, W)``; flattening is the network's job.
    """

    Config: ClassVar[type]
    #: True for models with a prior and an importance-weighted log-likelihood.
    generative: ClassVar[bool] = False

    def __init__(self, config: Any, image_shape: tuple[int, int, int]):
        super().__init__()
        self.config = config
        self.image_shape = tuple(int(s) for s in image_shape)

    def encode(self, x: torch.Tensor) -> Any:
        raise NotImplementedError

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def loss(self, x: torch.Tensor) -> Loss:
        raise NotImplementedError

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """Reconstruction of ``x`` in data space, ``(batch, C, H, W)``, for plots."""
        raise NotImplementedError

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """A deterministic code ``(batch, n_features)`` for probes and plots."""
        raise NotImplementedError

    def on_epoch_start(self, epoch: int, total_epochs: int) -> None:
        """Hook for schedules (e.g. the k-sparse k schedule). No-op by default."""


class LatentVariableModel(Autoencoder):
    """A generative autoencoder p(z) p(x|z) with an amortised posterior q(z|x).

    Subclasses implement ``log_importance_weights``; the importance-weighted estimate
    of log p(x) (``autoencoders.evaluation.likelihood``) is written once on top of it.
    """

    generative: ClassVar[bool] = True
    latent_dim: int

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` images from the model, ``(n, C, H, W)``: the decoder means at z ~ p(z)."""
        raise NotImplementedError

    def sample_prior(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` latent codes from the prior, ``(n, latent_dim)``."""
        raise NotImplementedError

    def sample_posterior(self, x: torch.Tensor,
                         generator: torch.Generator | None = None) -> torch.Tensor:
        """One code per example drawn from q(z | x), ``(batch, n_features)``: the stochastic
        counterpart of ``features`` (same space: z for a Gaussian VAE, the weights pi for the
        SB-VAE). The kNN probe's ``eval.knn_codes = ["sample"]`` reads it."""
        raise NotImplementedError

    def log_importance_weights(self, x: torch.Tensor, n_samples: int) -> torch.Tensor:
        """log p(x, z_s) - log q(z_s | x) for z_s ~ q(z | x), s = 1..n_samples.

        Args:
            x: ``(batch, C, H, W)``.
            n_samples: importance samples per example.

        Returns:
            ``(n_samples, batch)`` in nats. The encoder runs once per call.
        """
        raise NotImplementedError

    @torch.no_grad()
    def log_likelihood(self, x: torch.Tensor, samples: int = 5000,
                       batch: int = 50000) -> torch.Tensor:
        """Importance-weighted estimate of log p(x) per example, ``(N,)`` nats."""
        from ..evaluation.likelihood import iw_log_likelihood

        return iw_log_likelihood(self, x, n_samples=samples, batch_rows=batch)
