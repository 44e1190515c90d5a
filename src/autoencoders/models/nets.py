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
