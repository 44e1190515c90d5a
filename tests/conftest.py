"""Shared fixtures: tiny synthetic datasets, the real data folder, a fast experiment."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"

# Tests never touch the user's cache or network mirrors.
os.environ.pop("AUTOENCODERS_DATA", None)


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    cache = tmp_path_factory.mktemp("cache")
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    monkeypatch.delenv("AUTOENCODERS_DATA", raising=False)


def pytest_addoption(parser):
    parser.addoption("--runslow", action="store_true", default=False,
                     help="also run tests marked slow")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--runslow"):
        return
    skip = pytest.mark.skip(reason="slow: run with --runslow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not (SHARED_DATA / "mnist" / "train-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"real MNIST not found in {SHARED_DATA}")
    return SHARED_DATA


TINY_OVERRIDES = ["model.latent_dim=2", "model.hidden=16", "data.train_size=300",
                  "data.valid_size=100", "train.epochs=1", "eval.iw_samples=5",
                  "eval.test_subset=20", "train.threads=1"]


@pytest.fixture(scope="session")
def tiny_runs(tmp_path_factory, shared_data):
    """Two tiny VAE runs on real MNIST, trained once per session: ``done`` (1 epoch, to
    the end) and ``partial`` (3 epochs configured, stopped during epoch 2)."""
    from autoencoders.config import load_experiment
    from autoencoders.train import train

    root = tmp_path_factory.mktemp("tiny-runs")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_CACHE_HOME", str(root / "cache"))
        base = [*TINY_OVERRIDES, f'data.data_dir="{shared_data}"']
        done = train(load_experiment("vae-mnist", "quick", base), runs_dir=root / "runs",
                     progress=False, log_epochs=False)
        partial = train(load_experiment("vae-mnist", "quick", [*base, "train.epochs=3"]),
                        runs_dir=root / "partial", progress=False, log_epochs=False,
                        stop_after_steps=4)
    return {"root": root, "done": done.path, "partial": partial.path}
