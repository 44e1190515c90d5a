"""The model contract every autoencoder follows.

Training, evaluation, plotting and the command line only call the methods declared here;
none of them checks a model's type or probes it with ``hasattr``. A model is built from
its config dataclass and the data's image shape ``(C, H, W)``, so a checkpoint is just
that config plus a ``state_dict``.

Required of every model: ``Config``, ``encode``, ``decode``, ``loss``, ``reconstruct``,
``features``. Everything else is optional and declared here with a default; a model that
implements an optional part names it in :attr:`Autoencoder.capabilities`, and figures and
evaluators list the capabilities they need (``autoencoders.registry``), so an experiment
that asks a model for something it lacks fails with a message naming the capability
instead of silently drawing nothing. :func:`check_contract` verifies that each declared
capability is really implemented (the contract test runs it over every registered model).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn

from ..errors import ConfigError
from .estimators import iw_log_likelihood

#: The optional capabilities a model can declare: name -> what it promises. Each is
#: implemented by overriding the methods in :data:`CAPABILITY_METHODS`.
CAPABILITIES: dict[str, str] = {
    "generative": "a prior p(z): sample, sample_prior, sample_posterior and the "
                  "importance-weighted log p(x) (log_importance_weights)",
    "decode_mean": "decode_mean(z): the decoder's mean image for latent codes z",
    "kl_per_dim": "Gaussian latents: features(x) is the posterior mean and kl_per_dim(x) "
                  "the average KL of each latent dimension",
    "diagnostics": "diagnostics(x): extra numbers the trainer logs after each epoch",
    "filters": "filters(): the first layer's weights as images",
    "corrupt": "corrupt(x, generator): the training corruption of the input",
    "stick_weights": "features(x) are stick-breaking weights (rows sum to 1)",
    "feature_alpha": "features(x, alpha=a) keeps alpha * k units (the k-sparse code)",
    "labels": "trains on labels: loss(x, y) (uses_labels may depend on the config)",
    "stages": "stages(config): training is a chain of runs (greedy pre-training)",
    "data_init": "init_from_data(x): set data statistics (e.g. the mean image) from the "
                 "train split before the first step of a new run",
}

#: capability -> the methods of :class:`Autoencoder` a model overrides to provide it
#: (empty: a class attribute declares it, see :attr:`Autoencoder.capabilities`).
CAPABILITY_METHODS: dict[str, tuple[str, ...]] = {
    "generative": ("sample", "sample_prior", "sample_posterior", "log_importance_weights"),
    "decode_mean": ("decode_mean",),
    "kl_per_dim": ("kl_per_dim",),
    "diagnostics": ("diagnostics",),
    "filters": ("filters",),
    "corrupt": ("corrupt",),
    "stick_weights": (),
    "feature_alpha": ("features",),
    "labels": ("uses_labels",),
    "stages": ("stages",),
    "data_init": ("init_from_data",),
}


@dataclass
class Loss:
    """What ``model.loss(x)`` returns.

    Attributes:
        total: scalar that the optimiser minimises (for VAEs the negative ELBO), nats per
            example averaged over the batch.
        terms: named scalars, each a per-example quantity averaged over the batch, named
            and described in the model's :attr:`Autoencoder.loss_terms` (``rec``, ``kl``,
            ... in nats). The trainer logs every term without knowing the model.
    """

    total: torch.Tensor
    terms: dict[str, torch.Tensor] = field(default_factory=dict)


class Autoencoder(nn.Module):
    """Base class: an encoder, a decoder and a loss that the model owns.

    Subclasses set ``Config`` (a dataclass with a ``model_name`` class attribute),
    ``loss_terms`` and implement ``encode``, ``decode``, ``loss``, ``reconstruct`` and
    ``features``. Inputs and outputs are images of shape ``(batch, C, H, W)``; flattening
    is the network's job. ``model(x)`` (``forward``) returns the reconstruction.
    """

    Config: ClassVar[type]
    #: the optional capabilities this class implements (keys of :data:`CAPABILITIES`)
    capabilities: ClassVar[frozenset[str]] = frozenset()
    #: the names ``loss(x).terms`` holds -> what each is, with its unit (reports label
    #: ``test/<term>`` with it; undescribed terms are shown by their key)
    loss_terms: ClassVar[dict[str, str]] = {}
    #: True for models with a prior and an importance-weighted log-likelihood
    generative: ClassVar[bool] = False
    #: size of the latent code of a latent-variable model (None: not one)
    latent_dim: int | None = None
    #: True when ``loss`` takes the labels, ``loss(x, y)`` (capability ``labels``)
    uses_labels: bool = False

    def __init__(self, config: Any, image_shape: tuple[int, int, int]):
        super().__init__()
        self.config = config
        self.image_shape = tuple(int(s) for s in image_shape)

    # -- required ----------------------------------------------------------------------

    def encode(self, x: torch.Tensor) -> Any:
        raise NotImplementedError

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def loss(self, x: torch.Tensor) -> Loss:
        raise NotImplementedError

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """Reconstruction of ``x`` in data space, ``(batch, C, H, W)``, for plots."""
        raise NotImplementedError

    def features(self, x: torch.Tensor, **options: Any) -> torch.Tensor:
        """A deterministic code ``(batch, n_features)`` for probes and plots. Options
        exist only with a capability that names them (``feature_alpha``: ``alpha``)."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``model(x)``: the model's natural output for ``x``, its reconstruction in data
        space (:meth:`reconstruct`; each model's docstring says what that is)."""
        return self.reconstruct(x)

    # -- optional, with defaults -------------------------------------------------------

    def on_epoch_start(self, epoch: int, total_epochs: int) -> None:
        """Hook for schedules (e.g. the k-sparse k schedule). No-op by default."""

    def init_from_data(self, x: Any) -> None:
        """Hook (``data_init``): called once before the first step of a new run (never on
        resume: what it sets is saved with the weights) with the train split's images,
        ``(N, C, H, W)`` (a tensor, or streamed images to slice). No-op by default."""

    def diagnostics(self, x: torch.Tensor) -> dict[str, float]:
        """Numbers the trainer logs as ``valid/<key>`` after each epoch (``diagnostics``;
        e.g. the KL of each latent). None by default."""
        return {}

    @classmethod
    def stages(cls, config: Any) -> list[tuple[str, dict[str, Any]]]:
        """The runs that make up training, ``[(label, overrides), ...]`` in order; the last
        trains in the run folder itself (``stages``). One stage by default."""
        return [("train", {})]

    @classmethod
    def network_fields(cls, fields: dict[str, Any]) -> dict[str, Any]:
        """The part of a ``config.to_dict()["model"]`` table that fixes the network at
        initialisation (its weights at a given seed); fields that change only the loss are
        left out. Keys caches of untrained-network baselines. All fields by default."""
        return dict(fields)

    def decode_mean(self, z: torch.Tensor) -> torch.Tensor:
        """The decoder's mean image ``(..., C, H, W)`` for codes ``z`` (``decode_mean``)."""
        raise self._missing("decode_mean")

    def kl_per_dim(self, x: torch.Tensor, batch: int = 1000) -> torch.Tensor:
        """Average KL(q(z_d|x) || p(z_d)) of each latent over ``x``, ``(latent_dim,)``
        nats (``kl_per_dim``)."""
        raise self._missing("kl_per_dim")

    def filters(self) -> torch.Tensor | None:
        """First-layer weights as images ``(n, C, H, W)`` (``filters``); None without."""
        return None

    def corrupt(self, x: torch.Tensor, generator: torch.Generator | None = None
                ) -> torch.Tensor:
        """The training corruption of the input, ``x``'s shape (``corrupt``)."""
        raise self._missing("corrupt")

    def _missing(self, capability: str) -> ConfigError:
        return ConfigError(f"Model {type(self).__name__} does not have the capability "
                           f"{capability!r} ({CAPABILITIES[capability]}).")


class LatentVariableModel(Autoencoder):
    """A generative autoencoder p(z) p(x|z) with an amortised posterior q(z|x).

    Subclasses implement ``log_importance_weights``; the importance-weighted estimate
    of log p(x) (:func:`iw_log_likelihood`) is written once on top of it.
    """

    capabilities: ClassVar[frozenset[str]] = frozenset({"generative", "decode_mean"})
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
        return iw_log_likelihood(self, x, n_samples=samples, batch_rows=batch)


# ------------------------------------------------------------------ the contract, checked


def _implemented_by(cls: type, name: str) -> type | None:
    """The class of ``cls``'s MRO that defines ``name`` (None: nowhere)."""
    return next((c for c in cls.__mro__ if name in vars(c)), None)


def check_contract(cls: type) -> None:
    """Check that model class ``cls`` implements every capability it declares, and
    declares every one it implements.

    Raises:
        ConfigError: naming the class, the capability and the method concerned.
    """
    name = cls.__name__
    declared = set(cls.capabilities)
    unknown = declared - set(CAPABILITIES)
    if unknown:
        raise ConfigError(f"{name} declares unknown capabilities {sorted(unknown)}; valid: "
                          f"{', '.join(CAPABILITIES)}.")
    base = (Autoencoder, LatentVariableModel, nn.Module, object, None)
    for cap in sorted(declared):
        for method in CAPABILITY_METHODS[cap]:
            if _implemented_by(cls, method) in base:
                raise ConfigError(f"{name} declares the capability {cap!r} but does not "
                                  f"implement {method}(): {CAPABILITIES[cap]}.")
    for cap, methods in CAPABILITY_METHODS.items():
        if cap in declared or cap == "feature_alpha" or not methods:
            continue
        if all(_implemented_by(cls, m) not in base for m in methods):
            raise ConfigError(f"{name} implements {', '.join(methods)}() but does not "
                              f"declare the capability {cap!r} in {name}.capabilities.")
    takes_alpha = "alpha" in inspect.signature(cls.features).parameters
    if takes_alpha != ("feature_alpha" in declared):
        raise ConfigError(f"{name}.features {'takes' if takes_alpha else 'has no'} an alpha "
                          f"option, but the capability 'feature_alpha' is "
                          f"{'not ' if takes_alpha else ''}declared.")
    if bool(cls.generative) != ("generative" in declared):
        raise ConfigError(f"{name}.generative = {cls.generative} disagrees with its "
                          "capabilities (the capability 'generative').")
    if not isinstance(cls.loss_terms, dict):
        raise ConfigError(f"{name}.loss_terms must be a dict: term name -> description "
                          "with unit, e.g. {\"rec\": \"reconstruction term, nats\"}.")


def missing_capabilities(model: Autoencoder | type[Autoencoder],
                         required: frozenset[str] | set[str]) -> list[str]:
    """The capabilities of ``required`` that ``model`` (or a model class) does not declare,
    sorted."""
    return sorted(set(required) - set(model.capabilities))
