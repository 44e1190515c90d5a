"""evaluation/features.py: the kNN probe on codes (oracle codes score ~0 % error, noise ~90 %,
sklearn agrees) and its options; the logistic-regression probe; encode_dataset."""

from __future__ import annotations

import numpy as np
import pytest
from tiny_problems import SHAPE, blobs

from autoencoders.errors import ConfigError
from autoencoders.evaluation.features import (
    encode_dataset,
    knn_error,
    knn_errors,
    logistic_regression_probe,
)
from autoencoders.models.dae import DenoisingAE, DenoisingAEConfig


def _codes(rng, y, informative: bool):
    if informative:  # one-hot of the label plus noise
        return np.eye(10)[y] + 0.1 * rng.standard_normal((len(y), 10))
    return rng.standard_normal((len(y), 10))


def test_informative_codes_score_zero_and_noise_scores_chance():
    rng = np.random.default_rng(0)
    y_train, y_test = rng.integers(0, 10, 3000), rng.integers(0, 10, 1000)
    good = knn_errors(_codes(rng, y_train, True), y_train, _codes(rng, y_test, True), y_test)
    assert set(good) == {3, 5, 10}
    assert all(e < 0.5 for e in good.values()), good
    noise = knn_errors(_codes(rng, y_train, False), y_train, _codes(rng, y_test, False), y_test)
    assert all(84 < e < 96 for e in noise.values()), noise


def test_votes_agree_with_sklearn_predict():
    from sklearn.neighbors import KNeighborsClassifier

    rng = np.random.default_rng(1)
    y_train, y_test = rng.integers(0, 4, 400), rng.integers(0, 4, 300)
    z_train = rng.standard_normal((400, 3)) + y_train[:, None] * 0.5
    z_test = rng.standard_normal((300, 3)) + y_test[:, None] * 0.5
    ours = knn_errors(z_train, y_train, z_test, y_test, (1, 4, 7))
    for k, err in ours.items():
        clf = KNeighborsClassifier(n_neighbors=k, algorithm="brute").fit(z_train, y_train)
        assert err == pytest.approx(100 * np.mean(clf.predict(z_test) != y_test))
    assert knn_error(z_train, y_train, z_test, y_test, 4) == ours[4]


def test_k_larger_than_the_train_set_is_an_error_that_names_it():
    z = np.zeros((5, 2))
    y = np.arange(5)
    with pytest.raises(ConfigError, match="k in \\[10\\].*5"):
        knn_errors(z, y, z, y, (10,))


def test_sampled_codes_need_a_generative_model_and_the_choice_is_checked():
    import torch

    from autoencoders.config import from_dict
    from autoencoders.evaluation.features import knn_evaluator
    from autoencoders.models.dae import DenoisingAE, DenoisingAEConfig

    with pytest.raises(ConfigError, match="knn_codes = 'samples'.*mean, sample"):
        from_dict({"model": {"name": "vae"}, "eval": {"knn_codes": ["samples"]}})

    class FakeRun:  # the check comes before any data is read
        config = from_dict({"model": {"name": "dae"}, "eval": {"knn_codes": ["sample"]}})

    model = DenoisingAE(DenoisingAEConfig(hidden=4), (1, 28, 28))
    torch.manual_seed(0)
    with pytest.raises(ConfigError, match="no posterior to sample from"):
        knn_evaluator(FakeRun(), model)


# ------------------------------------------------------- logistic regression probe


def _split_codes(z: np.ndarray, y: np.ndarray):
    return z[:600], y[:600], z[600:800], y[600:800], z[800:], y[800:]


def test_logreg_probe_oracles():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 10, 1200)
    informative = np.eye(10)[y] + 0.1 * rng.standard_normal((1200, 10))
    res = logistic_regression_probe(*_split_codes(informative, y))
    assert res["test_error"] < 1.0
    noise = rng.standard_normal((1200, 10))
    res = logistic_regression_probe(*_split_codes(noise, y))
    assert 80.0 < res["test_error"] < 100.0
    assert res["C"] in res["valid_errors"]


def test_encode_dataset_uses_eval_mode_and_batches():
    model = DenoisingAE(DenoisingAEConfig(hidden=8, noise=0.5), SHAPE)
    model.train()
    x = blobs(50)
    z = encode_dataset(model, x, batch=7)
    assert z.shape == (50, 8) and model.training
    assert np.allclose(z, model.features(x).detach().numpy(), atol=1e-6)
