"""Upper bounds that fit the machine: a model's size against the RAM, an image shape.

Checked before anything is allocated or any run folder is made, so a value such as
``model.latent_dim = 100000000`` is a one-paragraph error saying how much memory it would
need, not an allocator's traceback.
"""

from __future__ import annotations

from typing import Any

import torch

from .data.storage import available_memory
from .errors import ConfigError

# bytes per parameter while training: float32 weights, gradients and two Adam moments
TRAINING_BYTES_PER_PARAMETER = 16


def check_image_shape(image_shape: Any) -> tuple[int, int, int]:
    """``image_shape`` as a ``(C, H, W)`` tuple of positive integers, else a ConfigError."""
    try:
        shape = tuple(image_shape)
    except TypeError:
        shape = ()
    if len(shape) != 3 or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 1
                                  for s in shape):
        raise ConfigError(f"image_shape = {image_shape!r} is not valid: expected (C, H, W), "
                          "three integers >= 1, e.g. (1, 28, 28).")
    return shape  # type: ignore[return-value]


def check_model_fits(model_cls: type, model_config: Any, image_shape: tuple[int, int, int],
                     available: int | None = None) -> int:
    """Count the parameters of the model ``model_config`` describes (built on the ``meta``
    device: nothing is allocated) and check that training it fits in RAM.

    Args:
        model_cls: the model's class (``autoencoders.models.MODELS[name]``).
        model_config: a model's ``Config`` dataclass.
        image_shape: ``(C, H, W)`` of the data.
        available: bytes of RAM to compare with (default: what the system reports).

    Returns:
        The number of parameters (0 when the model cannot be built on ``meta``).

    Raises:
        ConfigError: training would need more memory than is available.
    """
    try:
        with torch.device("meta"):
            model = model_cls(model_config, check_image_shape(image_shape))
    except ConfigError:
        raise
    except Exception:  # noqa: BLE001 - a model that cannot live on meta: the real build decides
        return 0
    n = sum(p.numel() for p in model.parameters())
    n_buffers = sum(b.numel() for b in model.buffers())
    need = n * TRAINING_BYTES_PER_PARAMETER + n_buffers * 4
    available = available_memory() if available is None else available
    if available is not None and need > available:
        raise ConfigError(
            f"This model ({type(model_config).model_name} for images {tuple(image_shape)}) "
            f"has {n:,} parameters: training it needs about {_gib(need)} of memory (weights, "
            f"gradients and optimiser state, {TRAINING_BYTES_PER_PARAMETER} bytes per "
            f"parameter) but {_gib(available)} is available. Use smaller sizes "
            "(model.latent_dim, model.hidden, ...)."
        )
    return n


def _gib(n: int) -> str:
    return f"{n / 2**30:,.1f} GiB" if n >= 2**28 else f"{n / 2**20:,.0f} MiB"
