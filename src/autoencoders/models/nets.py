"""Networks shared by every model: MLPs and the convolutional encoder/decoder.

Models build their encoders and decoders from these functions; no model defines its own
layers twice. Activations are named in configs, and an unknown name is an error.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..errors import ConfigError

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "tanh": nn.Tanh,
    "relu": nn.ReLU,
    "sigmoid": nn.Sigmoid,
    "softplus": nn.Softplus,
    "elu": nn.ELU,
    "identity": nn.Identity,
}


def activation(name: str) -> nn.Module:
    """A new activation module by name (a fresh object each call, never shared)."""
    if name not in ACTIVATIONS:
        raise ConfigError(
            f"Unknown activation {name!r}; valid: {', '.join(sorted(ACTIVATIONS))}."
        )
    return ACTIVATIONS[name]()


def mlp(
    sizes: list[int],
    act: str = "tanh",
    final_act: str | None = None,
    init_std: float | None = None,
) -> nn.Sequential:
    """Fully connected network ``sizes[0] -> ... -> sizes[-1]``.

    Args:
        sizes: layer widths including input and output, e.g. ``[784, 500, 40]``.
        act: activation between layers.
        final_act: activation after the last layer (None: linear output).
        init_std: if given, weights and biases ~ N(0, init_std^2) (Kingma & Welling,
            appendix C: "random sampling from N(0, 0.01)"); else PyTorch's default.

    Returns:
        ``nn.Sequential`` taking ``(batch, sizes[0])`` to ``(batch, sizes[-1])``.
    """
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        lin = nn.Linear(n_in, n_out)
        if init_std is not None:
            nn.init.normal_(lin.weight, 0.0, init_std)
            nn.init.normal_(lin.bias, 0.0, init_std)
        layers.append(lin)
        last = i == len(sizes) - 2
        if not last:
            layers.append(activation(act))
        elif final_act is not None:
            layers.append(activation(final_act))
    return nn.Sequential(*layers)


def flat_dim(image_shape: tuple[int, ...]) -> int:
    """Number of values in one image of shape ``(C, H, W)``."""
    return int(math.prod(image_shape))


class Unflatten(nn.Module):
    """``(batch, C*H*W) -> (batch, C, H, W)``."""

    def __init__(self, shape: tuple[int, ...]):
        super().__init__()
        self.shape = tuple(shape)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h.reshape(*h.shape[:-1], *self.shape)


# --------------------------------------------------------------------------- conv nets
# Higgins et al. 2017 / Burgess et al. 2018 (appendix): 4 conv layers of 32-32-64-64
# channels, 4x4 kernels, stride 2, then FC 256; the decoder mirrors it with transposed
# convolutions. The spatial sizes follow the data (64 -> 32 -> 16 -> 8 -> 4 for dSprites,
# 28 -> 14 -> 7 -> 3 -> 1 for MNIST); the decoder's output_padding undoes each rounding.


def conv_sizes(size: int, n_layers: int) -> list[int]:
    """Spatial size after each 4x4, stride-2, padding-1 conv: ``[size, ..., last]``."""
    sizes = [size]
    for _ in range(n_layers):
        sizes.append((sizes[-1] + 2 - 4) // 2 + 1)
    if sizes[-1] < 1:
        raise ConfigError(f"Image side {size} is too small for {n_layers} stride-2 convs; "
                          "use fewer conv channels (model.conv_channels) or the mlp arch.")
    return sizes


def kaiming_init_(module: nn.Module) -> nn.Module:
    """He-normal weights (fan in, ReLU gain) and zero biases for every linear and
    (transposed) convolution layer of ``module``, in place."""
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    return module


def conv_encoder(image_shape: tuple[int, int, int], channels: list[int], fc: int, out: int,
                 act: str = "relu") -> nn.Sequential:
    """``(batch, C*H*W)`` (flat, like the MLPs) -> ``(batch, out)``: convs, FC ``fc``, linear."""
    c, h, w = image_shape
    hs, ws = conv_sizes(h, len(channels)), conv_sizes(w, len(channels))
    layers: list[nn.Module] = [Unflatten((c, h, w))]
    for n_in, n_out in zip([c, *channels[:-1]], channels, strict=True):
        layers += [nn.Conv2d(n_in, n_out, 4, stride=2, padding=1), activation(act)]
    layers += [nn.Flatten(), nn.Linear(channels[-1] * hs[-1] * ws[-1], fc), activation(act),
               nn.Linear(fc, out)]
    return nn.Sequential(*layers)


class ConvDecoder(nn.Module):
    """``(..., z) -> (..., out_channels, H, W)``: linear to FC ``fc``, to the last conv map,
    then transposed convs mirroring :func:`conv_encoder` (linear output: logits/params)."""

    def __init__(self, latent_dim: int, image_shape: tuple[int, int, int],
                 channels: list[int], fc: int, out_channels: int, act: str = "relu"):
        super().__init__()
        _, h, w = image_shape
        hs, ws = conv_sizes(h, len(channels)), conv_sizes(w, len(channels))
        self.first = (channels[-1], hs[-1], ws[-1])
        self.fc = nn.Sequential(nn.Linear(latent_dim, fc), activation(act),
                                nn.Linear(fc, math.prod(self.first)), activation(act))
        rev = channels[::-1]
        layers: list[nn.Module] = []
        outs = [*rev[1:], out_channels]
        for i, (n_in, n_out) in enumerate(zip(rev, outs, strict=True)):
            j = len(channels) - 1 - i  # map sizes hs[j + 1] -> hs[j]
            pad = (hs[j] - 2 * hs[j + 1], ws[j] - 2 * ws[j + 1])
            layers.append(nn.ConvTranspose2d(n_in, n_out, 4, stride=2, padding=1,
                                             output_padding=pad))
            if i < len(channels) - 1:
                layers.append(activation(act))
        self.deconv = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        lead = z.shape[:-1]
        h = self.fc(z.reshape(-1, z.shape[-1])).reshape(-1, *self.first)  # (B, C', h, w)
        x = self.deconv(h)
        return x.reshape(*lead, *x.shape[1:])  # restore leading dims, e.g. (S, B, ...)
