"""Classifiers on learned codes: "features learned without labels make a good classifier".

Each probe is split into a sampler that needs a model and data (``encode_dataset``, the
``*_evaluator`` functions registered in :data:`autoencoders.registry.EVALUATORS`) and a
pure scorer on arrays (``logistic_regression_probe``). Every hyper-parameter is chosen on
the validation split; the test split is scored once, with the chosen values.
"""

from __future__ import annotations

import dataclasses
import warnings
from typing import Any

import numpy as np
import torch

from ..data.load import has_valid, load_split
from ..errors import ConfigError


@torch.no_grad()
def encode_dataset(model, x: torch.Tensor, batch: int = 1000, method: str = "features",
                   **options: Any) -> np.ndarray:
    """``model.features`` over a whole split in batches, in eval mode (no training noise).

    Args:
        model: any ``Autoencoder``.
        x: ``(N, C, H, W)`` images.
        batch: examples per forward pass.
        method: the model's method that codes a batch: ``"features"`` or, for generative
            models (capability ``generative``), ``"sample_posterior"``.
        **options: passed to that method (``alpha`` for models with the capability
            ``feature_alpha``, ``generator`` for ``sample_posterior``).

    Returns:
        ``(N, n_features)`` float32 array.
    """
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    if method not in ("features", "sample_posterior"):
        raise ConfigError(f"encode_dataset: method = {method!r} is not valid; choices: "
                          "features, sample_posterior.")
    code = model.sample_posterior if method == "sample_posterior" else model.features
    out = [code(x[i:i + batch].to(device), **options).flatten(1).float().cpu()
           for i in range(0, x.shape[0], batch)]
    model.train(was_training)
    return torch.cat(out).numpy()


def logistic_regression_probe(
    z_train: np.ndarray, y_train: np.ndarray,
    z_valid: np.ndarray, y_valid: np.ndarray,
    z_test: np.ndarray | None = None, y_test: np.ndarray | None = None,
    Cs: tuple[float, ...] = (0.01, 0.1, 1.0),
    max_iter: int = 200,
) -> dict[str, Any]:
    """Multinomial logistic regression on codes; the inverse L2 strength C chosen on valid.

    Protocol: 1. standardise each feature with the train split's mean and standard
    deviation (constant features are left at 0); 2. for each C fit
    ``sklearn.linear_model.LogisticRegression(C, lbfgs, max_iter)`` on train and score the
    validation split; 3. refit nothing: the model with the lowest validation error is
    scored on test (ties: the smaller C).

    Args:
        z_*: ``(n_points, n_features)`` codes; y_*: ``(n_points,)`` integer labels.
        Cs: candidate inverse regularisation strengths.
        max_iter: L-BFGS iterations per fit.

    Returns:
        ``{"valid_error": %, "C": chosen C, "valid_errors": {C: %}, "predict": codes ->
        labels of the chosen model}`` and ``"test_error"`` (%) when test codes are given
        (leave them out while choosing among several probes: score test once, for the
        chosen one, with ``predict``).
    """
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    if len(Cs) == 0:
        raise ConfigError("logistic_regression_probe needs at least one C value.")
    mean = z_train.mean(0)
    std = z_train.std(0)
    std[std == 0] = 1.0

    def scale(z: np.ndarray) -> np.ndarray:
        return (z - mean) / std

    tr, va = scale(z_train), scale(z_valid)
    best, valid_errors = None, {}
    for C in sorted(Cs):
        clf = LogisticRegression(C=C, max_iter=max_iter)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            clf.fit(tr, y_train)
        err = 100.0 * float(np.mean(clf.predict(va) != y_valid))
        valid_errors[C] = err
        if best is None or err < best[0]:
            best = (err, C, clf)
    err, C, clf = best
    out = {"valid_error": err, "C": C, "valid_errors": valid_errors,
           "predict": lambda z: clf.predict(scale(z))}
    if z_test is not None:
        out["test_error"] = 100.0 * float(np.mean(out["predict"](z_test) != y_test))
    return out


def logreg_evaluator(run, model) -> dict[str, float]:
    """Logistic regression on ``model.features`` (Makhzani & Frey 2014, section 4.2).

    Trains on the run's train split (at most ``eval.logreg_train_size`` examples), chooses
    C from ``eval.logreg_C`` and, when ``eval.feature_alphas`` is set (models with the
    capability ``feature_alpha``: the k-sparse AE), the number of kept units alpha * k on
    the validation split, and reports the test error.

    Returns:
        ``test/logreg_error`` and ``valid/logreg_error`` (%), the chosen ``logreg_C`` (and
        ``logreg_alpha``), and ``logreg_train_examples``.
    """
    from threadpoolctl import threadpool_limits

    cfg = run.config
    ev = cfg.eval
    if ev.feature_alphas and "feature_alpha" not in model.capabilities:
        raise ConfigError(
            f"Experiment {cfg.name!r}: eval.feature_alphas = {ev.feature_alphas} asks the "
            f"evaluator 'logreg' for features(x, alpha=...), the capability "
            f"'feature_alpha' that model {cfg.model_name!r} does not have (the k-sparse AE "
            "has it). Set eval.feature_alphas = [].")
    if not has_valid(cfg):
        raise ConfigError(
            f"The logreg probe chooses its hyper-parameters on the validation split, but "
            f"data.valid_size = 0 in {cfg.name}. Set data.valid_size > 0 "
            "(e.g. --set data.valid_size=10000).")
    splits = {s: load_split(cfg, s) for s in ("train", "valid", "test")}
    if any(d.y is None for d in splits.values()):
        raise ConfigError(f"The logreg probe needs labels; {cfg.data.name} has none.")
    if ev.logreg_train_size:
        d = splits["train"]
        d.x, d.y = d.x[:ev.logreg_train_size], d.y[:ev.logreg_train_size]
    labels = {s: d.y.numpy() for s, d in splits.items()}
    variants: list[dict[str, Any]] = [{"alpha": a} for a in ev.feature_alphas] or [{}]
    best = None
    # scikit-learn's BLAS threads follow train.threads (0: the library's default)
    with threadpool_limits(cfg.train.threads or None):
        for options in variants:  # chosen on validation; test is not encoded yet
            codes = {s: encode_dataset(model, splits[s].x, **options) for s in ("train",
                                                                                 "valid")}
            res = logistic_regression_probe(
                codes["train"], labels["train"], codes["valid"], labels["valid"],
                Cs=tuple(ev.logreg_C), max_iter=ev.logreg_max_iter)
            if best is None or res["valid_error"] < best[0]["valid_error"]:
                best = (res, options)
        res, options = best
        z_test = encode_dataset(model, splits["test"].x, **options)
        test_error = 100.0 * float(np.mean(res["predict"](z_test) != labels["test"]))
    out = {"test/logreg_error": test_error, "valid/logreg_error": res["valid_error"],
           "logreg_C": res["C"], "logreg_train_examples": int(labels["train"].shape[0])}
    if "alpha" in options:
        out["logreg_alpha"] = options["alpha"]
    return out


def knn_errors(train_codes: np.ndarray, train_y: np.ndarray, test_codes: np.ndarray,
               test_y: np.ndarray, ks: tuple[int, ...] = (3, 5, 10)) -> dict[int, float]:
    """Test error (%) of k-nearest-neighbour classifiers: test codes against train codes.

    Protocol: ``sklearn.neighbors.KNeighborsClassifier`` with Euclidean distance and exact
    (brute-force) neighbours; the ``max(ks)`` nearest train codes of each test code are
    found once, and for each k the first k vote with equal weight (ties go to the smallest
    label, as ``KNeighborsClassifier.predict`` does). Codes are used as they are (no
    scaling), as for Nalisnick & Smyth 2017, Figure 3 (k = 3, 5, 10).

    Args:
        train_codes: ``(n_train, n_features)``; train_y: ``(n_train,)`` integer labels.
        test_codes: ``(n_test, n_features)``; test_y: ``(n_test,)``.
        ks: numbers of neighbours.

    Returns:
        ``{k: percentage of test points whose predicted label is wrong}``.
    """
    from sklearn.neighbors import KNeighborsClassifier

    if not ks or not all(1 <= k <= len(train_codes) for k in ks):
        raise ConfigError(f"knn_errors: every k in {list(ks)} must be between 1 and the "
                          f"number of train codes ({len(train_codes)}).")
    clf = KNeighborsClassifier(n_neighbors=max(ks), algorithm="brute").fit(train_codes, train_y)
    idx = clf.kneighbors(test_codes, return_distance=False)  # (n_test, max k), nearest first
    classes = np.unique(train_y)
    votes = train_y[idx][..., None] == classes  # (n_test, max k, n_classes)
    out = {}
    for k in ks:
        pred = classes[votes[:, :k].sum(1).argmax(1)]  # argmax: the first (smallest) of ties
        out[k] = 100.0 * float(np.mean(pred != test_y))
    return out


def knn_error(train_codes: np.ndarray, train_y: np.ndarray, test_codes: np.ndarray,
              test_y: np.ndarray, k: int = 5) -> float:
    """Test error (%) of one k-nearest-neighbour classifier; see :func:`knn_errors`."""
    return knn_errors(train_codes, train_y, test_codes, test_y, (k,))[k]


def knn_evaluator(run, model) -> dict[str, float]:
    """kNN classification of the test split's codes against the train split's (Nalisnick &
    Smyth 2017, Figure 3), each k in ``eval.knn_k``, for each kind of code in
    ``eval.knn_codes``:

    - ``"mean"``: ``model.features`` (for VAEs the posterior mean; for the SB-VAE the
      expected stick weights);
    - ``"sample"``: one draw from q(z | x) per image (``model.sample_posterior``; the same
      space as ``features``), train and test alike, from a generator seeded with
      ``train.seed``. Posterior samples put unit-variance noise on every unused Gaussian
      latent but almost none on an unused stick (its weight is near 0 either way), so the
      two protocols can rank the Gaussian VAE and the SB-VAE differently (docs/REPRODUCTIONS.md).

    Both splits are those the model was trained and tested on; with dynamic binarisation
    the train images are binarised once (the static binarisation of the data layer), so
    train and test codes come from the same kind of input. With ``eval.knn_raw_pixels`` the
    same classifier also runs on the flattened images (the paper's raw-pixel baseline).

    Returns:
        ``test/knn_error_k<k>`` (%) per k on the means, ``test/knn_error_sample_k<k>`` on
        posterior samples, ``test/knn_error_raw_k<k>`` with raw pixels, and
        ``knn_train_examples``. Empty if ``eval.knn_k`` is empty.
    """
    cfg = run.config
    ks = list(cfg.eval.knn_k)
    if not ks:
        return {}
    if "sample" in cfg.eval.knn_codes and "generative" not in model.capabilities:
        raise ConfigError(f"Experiment {cfg.name!r}: eval.knn_codes includes \"sample\" "
                          f"for the evaluator 'knn', which needs the capability "
                          f"'generative' that model {cfg.model_name!r} does not have (it has "
                          "no posterior to sample from); use [\"mean\"].")
    if cfg.data.binarize == "dynamic":
        cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, binarize="static"))
    train, test = load_split(cfg, "train"), load_split(cfg, "test")
    if train.y is None or test.y is None:
        raise ConfigError(f"The knn probe needs labels; {cfg.data.name} has none. Remove "
                          "\"knn\" from eval.metrics.")
    y_train, y_test = train.y.numpy(), test.y.numpy()
    inputs = {}
    if "mean" in cfg.eval.knn_codes:
        inputs[""] = (encode_dataset(model, train.x), encode_dataset(model, test.x))
    if "sample" in cfg.eval.knn_codes:
        generator = torch.Generator().manual_seed(cfg.train.seed)
        inputs["sample_"] = tuple(
            encode_dataset(model, split.x, method="sample_posterior", generator=generator)
            for split in (train, test))
    if cfg.eval.knn_raw_pixels:
        inputs["raw_"] = (train.x.flatten(1).numpy(), test.x.flatten(1).numpy())
    out: dict[str, float] = {"knn_train_examples": int(len(y_train))}
    for prefix, (z_train, z_test) in inputs.items():
        for k, err in knn_errors(z_train, y_train, z_test, y_test, tuple(ks)).items():
            out[f"test/knn_error_{prefix}k{k}"] = err
    return out
