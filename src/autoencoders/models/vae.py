"""Variational autoencoder (Kingma & Welling, "Auto-Encoding Variational Bayes", ICLR 2014).

Model (paper, section 3 and appendix C): prior p(z) = N(0, I); Gaussian posterior
q(z|x) = N(mu(x), diag sigma^2(x)) from an MLP with one hidden layer; decoder p(x|z) an
MLP with one hidden layer, Bernoulli for binarised MNIST, Gaussian for Frey Face.

Loss (the negative SGVB estimator B(theta, phi; x), equation 10, with L = 1):

    loss = rec + kl,  rec = -log p(x | z), z = mu + sigma * eps, eps ~ N(0, I)
                       kl  = KL(q(z|x) || p(z))   (closed form, appendix B)

both in nats per example. Appendix C settings: tanh hidden units, 500 (MNIST) / 200 (Frey),
weights initialised from N(0, 0.01), minibatch M = 100, Adagrad; the weight decay of the
N(0, I) prior on the parameters lives in ``train.weight_decay``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Literal

import torch

from ..errors import ConfigError
from .base import LatentVariableModel, Loss
from .likelihoods import (
    Bernoulli,
    bernoulli_log_prob_mlp,
    gaussian_kl,
    gaussian_log_prob,
    make_likelihood,
    standard_normal_log_prob,
)
from .nets import (
    ACTIVATIONS,
    ConvDecoder,
    Unflatten,
    conv_encoder,
    flat_dim,
    kaiming_init_,
    mlp,
)


@dataclass
class VAEConfig:
    model_name: ClassVar[str] = "vae"

    latent_dim: int = 20  # N_z; the paper sweeps 2, 3, 5, 10, 20, 200
    hidden: int = 500  # one hidden layer: 500 units for MNIST, 200 for Frey Face
    activation: str = "tanh"  # appendix C: tanh (softplus-free MLPs)
    likelihood: Literal["bernoulli", "gaussian"] = "bernoulli"  # MNIST / Frey Face
    init_std: float = 0.01  # weights ~ N(0, 0.01) (appendix C); 0 keeps PyTorch's default
    min_log_var: float = -9.0  # Gaussian decoder only: floor of the pixel log-variance
    # Networks. "mlp": the paper's (hidden_layers x hidden units each way); "conv": 4x4
    # stride-2 convs of conv_channels, FC conv_fc, mirrored decoder (Higgins et al. 2017)
    arch: Literal["mlp", "conv"] = "mlp"
    hidden_layers: int = 1  # mlp encoder depth (Higgins et al.'s dSprites net: 2 x 1200)
    decoder_layers: int = 0  # mlp decoder depth; 0: same as hidden_layers (Higgins: 3)
    decoder_activation: str = ""  # "": same as activation (Higgins' dSprites decoder: tanh)
    conv_channels: list[int] = field(default_factory=lambda: [32, 32, 64, 64])
    conv_fc: int = 256  # the FC layer between the convs and the latent code
    # conv weights: "pytorch" (its default) or "kaiming" (He normal weights, zero biases,
    # as reference beta-VAE code does; the capacity-controlled objective needs it: with
    # PyTorch's default the gamma = 1000 term pins the encoder's means to a constant and
    # the run never leaves the mean image, docs/REPRODUCTIONS.md)
    conv_init: Literal["pytorch", "kaiming"] = "pytorch"

    def validate(self) -> None:
        if self.latent_dim < 1:
            raise ConfigError(f"model.latent_dim = {self.latent_dim} must be >= 1.")
        if self.hidden < 1:
            raise ConfigError(f"model.hidden = {self.hidden} must be >= 1.")
        if self.init_std < 0:
            raise ConfigError(f"model.init_std = {self.init_std} must be >= 0.")
        if self.activation not in ACTIVATIONS:
            raise ConfigError(f"model.activation = {self.activation!r} is not valid; "
                              f"choices: {', '.join(sorted(ACTIVATIONS))}.")
        if self.decoder_activation and self.decoder_activation not in ACTIVATIONS:
            raise ConfigError(f"model.decoder_activation = {self.decoder_activation!r} is not "
                              f"valid; choices: \"\" (same as activation), "
                              f"{', '.join(sorted(ACTIVATIONS))}.")
        if self.hidden_layers < 1 or self.decoder_layers < 0:
            raise ConfigError(f"model.hidden_layers = {self.hidden_layers} must be >= 1 and "
                              f"model.decoder_layers = {self.decoder_layers} >= 0 (0: same).")
        if not self.conv_channels or min(self.conv_channels) < 1 or self.conv_fc < 1:
            raise ConfigError(f"model.conv_channels = {self.conv_channels} must be a non-empty "
                              f"list of positive widths and model.conv_fc = {self.conv_fc} >= 1.")


class VAE(LatentVariableModel):
    """Gaussian-latent VAE with MLP (or, with ``arch = "conv"``, convolutional) encoder and
    decoder (Kingma & Welling 2014).

    ``model(x)`` is the decoder's mean at the posterior mean, ``lik.mean(decode(mu(x)))``:
    pixel probabilities (Bernoulli) or means (Gaussian).
    """

    Config = VAEConfig
    capabilities = LatentVariableModel.capabilities | {"kl_per_dim", "diagnostics"}
    loss_terms = {"rec": "reconstruction term, nats", "kl": "KL term, nats"}

    def __init__(self, config: VAEConfig, image_shape: tuple[int, int, int]):
        super().__init__(config, image_shape)
        self.latent_dim = config.latent_dim
        self.lik = make_likelihood(config.likelihood, config.min_log_var)
        d = flat_dim(self.image_shape)
        std = config.init_std or None
        h, z = config.hidden, config.latent_dim
        out_channels = self.lik.n_params * self.image_shape[0]
        if config.arch == "conv":  # both take and give the same shapes as the MLPs below
            self.encoder = conv_encoder(self.image_shape, config.conv_channels, config.conv_fc,
                                        2 * z, config.activation)
            self.decoder = ConvDecoder(z, self.image_shape, config.conv_channels,
                                       config.conv_fc, out_channels, config.activation)
            if config.conv_init == "kaiming":
                kaiming_init_(self)
            return
        n_dec = config.decoder_layers or config.hidden_layers
        dec_act = config.decoder_activation or config.activation
        self.encoder = mlp([d, *[h] * config.hidden_layers, 2 * z], config.activation,
                           init_std=std)
        out_shape = (out_channels, *self.image_shape[1:])
        self.decoder = torch.nn.Sequential(
            mlp([z, *[h] * n_dec, self.lik.n_params * d], dec_act, init_std=std),
            Unflatten(out_shape),
        )

    # -- the model contract ------------------------------------------------------------

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(B, C, H, W) -> (mu, log_var)``, each ``(B, latent_dim)``."""
        mu, log_var = self.encoder(x.flatten(1)).float().chunk(2, dim=-1)  # fp32 under autocast
        return mu, log_var

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """``(..., latent_dim) -> (..., n_params*C, H, W)`` decoder parameters (logits)."""
        return self.decoder(z)

    def decode_mean(self, z: torch.Tensor) -> torch.Tensor:
        """The decoder's mean image, ``(..., latent_dim) -> (..., C, H, W)``."""
        return self.lik.mean(self.decode(z))

    def kl(self, mu: torch.Tensor, log_var: torch.Tensor) -> torch.Tensor:
        """KL(q(z|x) || p(z)) per example, ``(B,)`` nats."""
        return gaussian_kl(mu, log_var)

    def loss(self, x: torch.Tensor) -> Loss:
        mu, log_var = self.encode(x)
        z = mu + torch.exp(0.5 * log_var) * torch.randn_like(mu)  # reparameterisation
        rec = -self.lik.log_prob(self.decode(z), x).mean()
        kl = self.kl(mu, log_var).mean()
        return Loss(total=self.regularised(rec, kl), terms={"rec": rec, "kl": kl})

    @torch.no_grad()
    def kl_per_dim(self, x: torch.Tensor, batch: int = 1000) -> torch.Tensor:
        """Average KL(q(z_d|x) || N(0, 1)) of each latent over ``x``: ``(latent_dim,)``
        float64 nats, in eval mode."""
        was_training = self.training
        self.eval()
        total = torch.zeros(self.latent_dim, dtype=torch.float64)
        for i in range(0, x.shape[0], batch):
            mu, log_var = self.encode(x[i:i + batch])
            total += gaussian_kl(mu.unsqueeze(-1), log_var.unsqueeze(-1)).sum(0).double().cpu()
        self.train(was_training)
        return total / max(1, x.shape[0])

    def diagnostics(self, x: torch.Tensor) -> dict[str, float]:
        """:meth:`kl_per_dim` as ``{"kl_dim/<d>": ...}``.

        The trainer logs these with the validation numbers after every epoch (as
        ``valid/kl_dim/<d>`` in metrics.jsonl), so the figure ``kl_over_training`` can show
        when each latent comes alive (Burgess et al. 2018, Figure 3)."""
        return {f"kl_dim/{d}": float(v) for d, v in enumerate(self.kl_per_dim(x))}

    def regularised(self, rec: torch.Tensor, kl: torch.Tensor) -> torch.Tensor:
        """The objective from its terms; beta-VAE overrides only this."""
        return rec + kl

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        mu, _ = self.encode(x)
        return self.lik.mean(self.decode(mu))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.encode(x)[0]

    def sample_posterior(self, x: torch.Tensor,
                         generator: torch.Generator | None = None) -> torch.Tensor:
        """z = mu + sigma * eps, eps ~ N(0, I), one draw per example."""
        mu, log_var = self.encode(x)
        eps = torch.randn(mu.shape, generator=generator).to(mu.device)
        return mu + (0.5 * log_var).exp() * eps

    def sample_prior(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        device = next(self.parameters()).device
        return torch.randn(n, self.latent_dim, generator=generator).to(device)

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return self.lik.mean(self.decode(self.sample_prior(n, generator)))

    def log_importance_weights(self, x: torch.Tensor, n_samples: int) -> torch.Tensor:
        with torch.autocast(device_type=x.device.type, enabled=False):  # encoder in fp32
            mu, log_var = self.encode(x)  # (B, Z) each, once
        eps = torch.randn(n_samples, *mu.shape, dtype=mu.dtype, device=mu.device)
        z = mu + torch.exp(0.5 * log_var) * eps  # (S, B, Z)
        if isinstance(self.lik, Bernoulli) and self.config.arch == "mlp":
            body, last = self.decoder[0][:-1], self.decoder[0][-1]
            log_px_z = bernoulli_log_prob_mlp(z, body, last, x)  # (S, B)
        else:
            log_px_z = self.lik.log_prob(self.decode(z), x)  # (S, B)
        log_pz = standard_normal_log_prob(z)
        log_qz = gaussian_log_prob(z, mu, log_var)
        return log_px_z + log_pz - log_qz

