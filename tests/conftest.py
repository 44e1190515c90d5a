"""Shared fixtures: tiny synthetic datasets, the real data folder, a fast experiment."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

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


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "data: reads the real data in ../shared/data (the `shared_data` fixture; "
        "skipped when absent). `pytest -m 'not data'` runs the core suite without it.")


def pytest_collection_modifyitems(config, items):
    for item in items:  # every test of the real data is marked, not only skipped
        if "shared_data" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.data)
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


@pytest.fixture
def synthetic_mnist(monkeypatch):
    """Every split any experiment loads (``autoencoders.data.load``) is a fixed draw of
    MNIST-shaped random images with labels: 96 train, ``valid_size`` (default 64)
    validation and 48 test images, binarised as the config asks. No file is read."""
    from autoencoders.data import ImageData

    def get(name, split="train", *, valid_size=0, binarize="none", first=0, **_):
        n = {"train": 96, "valid": valid_size or 64, "test": 48}[split]
        n = min(n, first) if first else n
        g = torch.Generator().manual_seed({"train": 0, "valid": 1, "test": 2}[split])
        x = torch.rand(n, 1, 28, 28, generator=g)
        if binarize == "static" or (binarize == "dynamic" and split != "train"):
            x = torch.bernoulli(x, generator=g)
        applied = "dynamic" if binarize == "dynamic" and split == "train" else (
            "static" if binarize != "none" else "none")
        y = torch.randint(0, 10, (n,), generator=g)
        return ImageData(name=name, split=split, x=x, y=y, binarize=applied)

    monkeypatch.setattr("autoencoders.data.load.get", get)
    return get
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
