"""Name -> class for models. A dict, not an if/elif chain; users add their own with
:func:`register_model`.

Example:
    >>> from autoencoders.registry import MODELS
    >>> sorted(MODELS)[:1]
    ['vae']
"""

from __future__ import annotations

from .errors import ConfigError
from .models.base import Autoencoder
from .models.betavae import BetaVAE
from .models.dae import DenoisingAE
from .models.ksparse import KSparseAE
from .models.sbvae import StickBreakingVAE
from .models.sda import StackedDAE
from .models.vae import VAE

MODELS: dict[str, type[Autoencoder]] = {
    VAE.Config.model_name: VAE,
    BetaVAE.Config.model_name: BetaVAE,
    DenoisingAE.Config.model_name: DenoisingAE,
    KSparseAE.Config.model_name: KSparseAE,
    StackedDAE.Config.model_name: StackedDAE,
    StickBreakingVAE.Config.model_name: StickBreakingVAE,
}


def register_model(cls: type[Autoencoder]) -> type[Autoencoder]:
    """Register a model class (usable as a decorator). Its ``Config.model_name`` is the key."""
    name = getattr(getattr(cls, "Config", None), "model_name", None)
    if not name:
        raise ConfigError(
            f"{cls.__name__} needs a Config dataclass with a class attribute model_name."
        )
    MODELS[name] = cls
    return cls


def build_model(config, image_shape: tuple[int, int, int]) -> Autoencoder:
    """Instantiate the model a config dataclass describes."""
    from .limits import check_image_shape

    return MODELS[type(config).model_name](config, check_image_shape(image_shape))
