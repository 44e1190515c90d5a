"""The models, one file each; :data:`MODELS` (name -> class) and a short way to build one.

Example:
    >>> import autoencoders as ae
    >>> model = ae.models.get("vae")(latent_dim=2, image_shape=(1, 28, 28))
    >>> model.sample(4).shape
    torch.Size([4, 1, 28, 28])
"""

from __future__ import annotations

from collections.abc import Callable

from ..checks import _check_choice, build_dataclass
from ..errors import ConfigError
from ..limits import check_image_shape, check_model_fits
from .base import Autoencoder, LatentVariableModel, Loss, check_contract
from .betavae import BetaVAE
from .dae import DenoisingAE
from .ksparse import KSparseAE
from .sbvae import StickBreakingVAE
from .sda import StackedDAE
from .vae import VAE

#: model name (``Config.model_name``) -> class. A dict, not an if/elif chain; users add
#: their own with :func:`register_model`.
MODELS: dict[str, type[Autoencoder]] = {
    VAE.Config.model_name: VAE,
    BetaVAE.Config.model_name: BetaVAE,
    DenoisingAE.Config.model_name: DenoisingAE,
    KSparseAE.Config.model_name: KSparseAE,
    StackedDAE.Config.model_name: StackedDAE,
    StickBreakingVAE.Config.model_name: StickBreakingVAE,
}


def register_model(cls: type[Autoencoder]) -> type[Autoencoder]:
    """Register a model class (usable as a decorator). Its ``Config.model_name`` is the key.

    Raises:
        ConfigError: no ``Config.model_name``, or the class breaks the model contract
            (:func:`~autoencoders.models.base.check_contract`: a declared capability
            without its method, or the reverse).
    """
    config = vars(cls).get("Config")
    name = vars(config).get("model_name") if isinstance(config, type) else None
    if not name or not issubclass(cls, Autoencoder):
        raise ConfigError(
            f"{cls.__name__} must subclass autoencoders.models.Autoencoder and set a Config "
            "dataclass with a class attribute model_name."
        )
    check_contract(cls)
    MODELS[name] = cls
    return cls


def build_model(config, image_shape: tuple[int, int, int]) -> Autoencoder:
    """Instantiate the model a config dataclass describes.

    Raises:
        ConfigError: ``image_shape`` is not ``(C, H, W)`` of positive integers.
    """
    return MODELS[type(config).model_name](config, check_image_shape(image_shape))


def get(name: str) -> Callable[..., Autoencoder]:
    """A builder for the registered model ``name``: ``get(name)(image_shape=..., **fields)``.

    Keyword arguments are fields of the model's ``Config`` dataclass, checked like a config
    file's keys (a typo lists the valid keys). ``image_shape`` is ``(C, H, W)``, default
    ``(1, 28, 28)``.

    Raises:
        ConfigError: unknown model name or config key, or a value out of range.
    """
    _check_choice("model name", name, sorted(MODELS))
    cls = MODELS[name]

    def build(image_shape: tuple[int, int, int] = (1, 28, 28), **fields) -> Autoencoder:
        config = build_dataclass(cls.Config, fields, "model")
        image_shape = check_image_shape(image_shape)
        check_model_fits(cls, config, image_shape)
        return cls(config, image_shape)

    build.__doc__ = f"Build a {cls.__name__}; fields of {cls.Config.__name__} as keywords."
    return build


def names() -> list[str]:
    """Names of the registered models, sorted."""
    return sorted(MODELS)


__all__ = ["MODELS", "Autoencoder", "LatentVariableModel", "Loss", "build_model",
           "check_contract", "get", "names", "register_model"]
