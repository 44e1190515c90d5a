"""The models, one file each, and a short way to build one.

Example:
    >>> import autoencoders as ae
    >>> model = ae.models.get("vae")(latent_dim=2, image_shape=(1, 28, 28))
    >>> model.sample(4).shape
    torch.Size([4, 1, 28, 28])
"""

from __future__ import annotations

from collections.abc import Callable

from .base import Autoencoder, LatentVariableModel, Loss


def get(name: str) -> Callable[..., Autoencoder]:
    """A builder for the registered model ``name``: ``get(name)(image_shape=..., **fields)``.

    Keyword arguments are fields of the model's ``Config`` dataclass, checked like a config
    file's keys (a typo lists the valid keys). ``image_shape`` is ``(C, H, W)``, default
    ``(1, 28, 28)``.

    Raises:
        ConfigError: unknown model name or config key, or a value out of range.
    """
    from ..config import _check_choice, build_dataclass
    from ..registry import MODELS

    _check_choice("model name", name, sorted(MODELS))
    cls = MODELS[name]

    def build(image_shape: tuple[int, int, int] = (1, 28, 28), **fields) -> Autoencoder:
        from ..limits import check_image_shape, check_model_fits

        config = build_dataclass(cls.Config, fields, "model")
        image_shape = check_image_shape(image_shape)
        check_model_fits(config, image_shape)
        return cls(config, image_shape)

    build.__doc__ = f"Build a {cls.__name__}; fields of {cls.Config.__name__} as keywords."
    return build


def names() -> list[str]:
    """Names of the registered models, sorted."""
    from ..registry import MODELS

    return sorted(MODELS)


__all__ = ["Autoencoder", "LatentVariableModel", "Loss", "get", "names"]
