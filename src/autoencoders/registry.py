"""Lookups by name: models, figures (``eval.figures``) and evaluators (``eval.metrics``).

Dicts, not if/elif chains. Figures and evaluators are registered as ``"module:function"``
strings (imported when used), each with the model capabilities it needs
(:data:`autoencoders.models.base.CAPABILITIES`); :func:`require` turns a missing one into
a :class:`ConfigError` naming the experiment, the figure or evaluator and the capability.
Evaluators also describe their outputs (:class:`Output`: label, unit, which way is
better), so a report needs no table of every evaluator's keys.

Example:
    >>> from autoencoders.registry import FIGURES, MODELS
    >>> sorted(MODELS)[:1], FIGURES["filters"].requires
    (['betavae'], frozenset({'filters'}))
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from dataclasses import dataclass

from .errors import ConfigError
from .models import MODELS, build_model, register_model
from .models.base import CAPABILITIES, Autoencoder, missing_capabilities


@dataclass(frozen=True)
class Figure:
    """A figure ``autoencoders plot`` can draw: ``fn(run, model, path) -> Path | None``
    (None: not applicable to this run's data or configuration, e.g. a manifold of a 20-D
    latent space, or a PCA coloured by labels the data set does not have)."""

    description: str
    target: str  # "package.module:function"
    requires: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Output:
    """One number an evaluation writes to ``eval.json``. ``key`` may hold ``{name}``
    fields (``test/knn_error_k{k}``) that match any text without a slash; ``label`` uses
    the same fields."""

    key: str
    label: str
    unit: str = ""  # "nats", "%", "" (a number without unit)
    higher_is_better: bool | None = None  # None: not a score (a chosen hyper-parameter)
    table: bool = True  # shown in a report's table of numbers (else only in eval.json)

    def match(self, key: str) -> dict[str, str] | None:
        pattern = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(self.key))
        m = re.fullmatch(pattern, key)
        return m.groupdict() if m else None

    def describe(self, key: str) -> str:
        """The label of ``key`` (which this output matches), with its unit."""
        label = self.label.format(**(self.match(key) or {}))
        return f"{label}, {self.unit}" if self.unit else label


@dataclass(frozen=True)
class Evaluator:
    """An evaluation named in ``eval.metrics``: ``fn(run, model) -> dict[str, float]``."""

    description: str
    target: str
    outputs: tuple[Output, ...]
    requires: frozenset[str] = frozenset()


FIGURES: dict[str, Figure] = {
    "curves": Figure("training curves: lower bound vs samples (log x)",
                     "autoencoders.plots:_fig_curves"),
    "reconstructions": Figure("test inputs (above) and reconstructions (below)",
                              "autoencoders.plots:_fig_reconstructions"),
    "samples": Figure("decoder means at samples from the prior",
                      "autoencoders.plots:_fig_samples", frozenset({"generative"})),
    "manifold": Figure("2-D latent manifold through the inverse Gaussian CDF",
                       "autoencoders.plots:_fig_manifold", frozenset({"decode_mean"})),
    "filters": Figure("first 100 filters (encoder weights as images, each normalised)",
                      "autoencoders.plots:_fig_filters", frozenset({"filters"})),
    "denoising": Figure("corrupted test inputs (above) and their reconstructions (below)",
                        "autoencoders.plots:_fig_denoising", frozenset({"corrupt"})),
    "sticks": Figure("average stick weight per component, test set (stick-breaking models "
                     "only)", "autoencoders.latent_plots:fig_sticks",
                     frozenset({"stick_weights"})),
    "codes_pca": Figure("first two principal components of the test codes, coloured by "
                        "label", "autoencoders.latent_plots:fig_codes_pca"),
    "traversals": Figure("latent traversals over [-3, 3] from test images, rows sorted by KL",
                         "autoencoders.traversal_plots:fig_traversals",
                         frozenset({"kl_per_dim", "decode_mean"})),
    "kl_per_dim": Figure("average KL of each latent dimension on the test split (alive "
                         "latents)", "autoencoders.traversal_plots:fig_kl_per_dim",
                         frozenset({"kl_per_dim"})),
    "kl_over_training": Figure("KL of each latent on the validation split after every epoch",
                               "autoencoders.traversal_plots:fig_kl_over_training",
                               frozenset({"diagnostics"})),
}

#: what ``pipeline.evaluate`` writes for every run besides the model's loss terms
#: (``test/<term>``, described by the model's ``loss_terms``) and the evaluators' outputs
CORE_OUTPUTS: tuple[Output, ...] = (
    Output("test/elbo", "test lower bound (ELBO)", "nats", True),
    Output("test/log_px", "test log p(x), importance-weighted", "nats", True),
    Output("test/log_px_sem", "standard error of the test log p(x)", "nats", table=False),
    Output("test/loss", "test loss", "nats", False),
    Output("valid/loss", "validation loss", "nats", False, table=False),
    # the model's diagnostics(x) on the validation split, for the weights evaluated
    Output("valid/dead_units", "fraction of hidden units never among the k largest on the "
           "validation split", "", False),
    Output("valid/kl_dim/{d}", "validation KL of latent {d}", "nats", None, table=False),
)

_KNN_CODES = "the codes (posterior means)"
_VOTES = "eval.votes_batch, eval.votes_train, eval.votes_eval"
EVALUATORS: dict[str, Evaluator] = {
    "logreg": Evaluator(
        "logistic regression on model.features, C (and alpha) chosen on valid",
        "autoencoders.evaluation.features:logreg_evaluator",
        (Output("test/logreg_error", "test error of logistic regression on the features",
                "%", False),
         Output("valid/logreg_error",
                "validation error of logistic regression on the features", "%", False),
         Output("logreg_C", "inverse L2 strength C chosen on valid", table=False),
         Output("logreg_alpha", "alpha chosen on valid (alpha * k units kept)", table=False),
         Output("logreg_train_examples", "train examples of the probe", table=False))),
    "knn": Evaluator(
        "k-nearest neighbours of test codes among train codes, k in eval.knn_k",
        "autoencoders.evaluation.features:knn_evaluator",
        (Output("test/knn_error_k{k}", "test error of {k}-NN on " + _KNN_CODES, "%", False),
         Output("test/knn_error_sample_k{k}", "test error of {k}-NN on posterior samples",
                "%", False),
         Output("test/knn_error_raw_k{k}", "test error of {k}-NN on raw pixels", "%", False),
         Output("knn_train_examples", "train examples of the probe", table=False))),
    "beta_vae_metric": Evaluator(
        f"beta-VAE metric on the posterior mean ({_VOTES})",
        "autoencoders.evaluation.disentanglement:beta_vae_evaluator",
        (Output("test/beta_vae_metric", "beta-VAE metric (Higgins et al.), eval accuracy",
                "%", True),
         Output("test/beta_vae_metric_train", "beta-VAE metric, train accuracy", "%", True,
                table=False))),
    "factor_vae_metric": Evaluator(
        f"FactorVAE metric on the posterior mean ({_VOTES}, eval.variance_points)",
        "autoencoders.evaluation.disentanglement:factor_vae_evaluator",
        (Output("test/factor_vae_metric", "FactorVAE metric (Kim & Mnih), eval accuracy",
                "%", True),
         Output("test/factor_vae_active_dims", "latents active in the FactorVAE metric",
                table=False))),
    "mig": Evaluator(
        "mutual information gap on the posterior mean (eval.mig_points)",
        "autoencoders.evaluation.disentanglement:mig_evaluator",
        (Output("test/mig", "MIG (Chen et al.)", "0-1", True),)),
    "disentanglement_baselines": Evaluator(
        "the three metrics for raw pixels, PCA, FastICA and an untrained copy of the model "
        "(eval.baselines)",
        "autoencoders.evaluation.disentanglement:baselines_evaluator",
        (Output("baseline/{name}/beta_vae_metric", "{name}: beta-VAE metric", "%", True,
                table=False),
         Output("baseline/{name}/factor_vae_metric", "{name}: FactorVAE metric", "%", True,
                table=False),
         Output("baseline/{name}/mig", "{name}: MIG", "0-1", True, table=False))),
}


def resolve(target: str) -> Callable:
    """``"package.module:function"`` -> the function."""
    module, _, func = target.partition(":")
    return vars(importlib.import_module(module))[func]


def require(model: Autoencoder | type[Autoencoder], experiment: str, kind: str, name: str,
            requires: frozenset[str]) -> None:
    """Raise a :class:`ConfigError` if ``model`` (a model or its class) lacks a capability
    ``requires`` names.

    Args:
        experiment: the experiment's name, for the message.
        kind: ``"figure"`` (``eval.figures``) or ``"evaluator"`` (``eval.metrics``).
        name: the figure's or evaluator's name.
    """
    missing = missing_capabilities(model, requires)
    cls = model if isinstance(model, type) else type(model)
    if missing:
        key = "eval.figures" if kind == "figure" else "eval.metrics"
        what = "; ".join(f"{c!r}: {CAPABILITIES[c]}" for c in missing)
        raise ConfigError(
            f"Experiment {experiment!r} asks for the {kind} {name!r} ({key}), which needs the "
            f"model capability {', '.join(repr(c) for c in missing)} that model "
            f"{cls.__name__} does not have ({what}). Remove {name!r} from {key} or "
            f"use a model with that capability.")


def require_all(config) -> None:
    """:func:`require` for every figure and evaluator an experiment config names, from its
    model's class (so before anything is trained)."""
    cls = MODELS[config.model_name]
    for name in config.eval.figures:
        require(cls, config.name, "figure", name, FIGURES[name].requires)
    for name in config.eval.metrics:
        require(cls, config.name, "evaluator", name, EVALUATORS[name].requires)


def find_output(key: str, model_cls: type[Autoencoder] | None = None
                ) -> tuple[tuple[int, int], str, bool] | None:
    """What describes an ``eval.json`` key: ``(rank, label with unit, shown in tables)``,
    or None if nothing does.

    Looked up in :data:`CORE_OUTPUTS`, the model class's ``loss_terms`` (``test/<term>``, and
    ``valid/<term>``, which tables leave out;
    without a class, the first registered model with that term) and the evaluators'
    outputs; ``rank`` orders a report's table in that order."""
    for i, out in enumerate(CORE_OUTPUTS):
        if out.match(key) is not None:
            return (0, i), out.describe(key), out.table
    term = key.removeprefix("test/")
    for cls in [model_cls] if model_cls is not None else list(MODELS.values()):
        if key.startswith("test/") and term in cls.loss_terms:
            return (1, list(cls.loss_terms).index(term)), f"test {cls.loss_terms[term]}", True
        term_v = key.removeprefix("valid/")  # the same terms on the validation split
        if key.startswith("valid/") and term_v in cls.loss_terms:
            return ((1, len(cls.loss_terms) + list(cls.loss_terms).index(term_v)),
                    f"validation {cls.loss_terms[term_v]}", False)
    for j, evaluator in enumerate(EVALUATORS.values()):
        for i, out in enumerate(evaluator.outputs):
            if out.match(key) is not None:
                return (2 + j, i), out.describe(key), out.table
    return None


__all__ = ["CORE_OUTPUTS", "EVALUATORS", "FIGURES", "MODELS", "Evaluator", "Figure",
           "Output", "build_model", "find_output", "register_model", "require",
           "require_all", "resolve"]
