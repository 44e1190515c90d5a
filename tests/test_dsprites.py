"""dSprites: the factor API, the npz readers and the procedural generator's fidelity
against the real subsets in the shared data folder."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from autoencoders.data import dsprites as ds
from autoencoders.data import get
from autoencoders.errors import ConfigError, DataMissingError

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "dsprites"
needs_real = pytest.mark.skipif(not (SHARED / "dsprites_subset.npz").is_file(),
                                reason="the real dSprites subsets are not present")


def test_factor_api_shapes_and_docstring():
    gt = ds.DSprites()
    assert gt.factor_sizes == (3, 6, 40, 32, 32)
    assert math.prod(gt.factor_sizes) == 737280 == ds.N_IMAGES
    assert gt.bases == (245760, 40960, 1024, 32, 1)
    for name, size in zip(gt.factor_names, gt.factor_sizes, strict=True):
        # the module docstring's factor table names each factor with its size
        assert any(line.split()[:2] == [name, str(size)] for line in ds.__doc__.splitlines())
    f = gt.sample_factors(1000, torch.Generator().manual_seed(0))
    assert f.shape == (1000, 5) and f.dtype == torch.long
    assert (f.min(0).values >= 0).all() and (f.max(0).values < torch.tensor(gt.factor_sizes)).all()
    x = gt.sample_observations_from_factors(f[:7], torch.Generator())
    assert x.shape == (7, 1, 64, 64) and x.dtype == torch.float32
    assert set(x.unique().tolist()) <= {0.0, 1.0}


def test_index_round_trip_and_bounds():
    gt = ds.DSprites()
    index = torch.randint(ds.N_IMAGES, (5000,), generator=torch.Generator().manual_seed(1))
    assert torch.equal(gt.index_of(gt.factors_of(index)), index)
    assert gt.index_of(torch.tensor([[2, 5, 39, 31, 31]])).item() == ds.N_IMAGES - 1
    with pytest.raises(ValueError, match="out of range"):
        gt.index_of(torch.tensor([[3, 0, 0, 0, 0]]))
    with pytest.raises(ValueError):
        gt.factors_of(torch.tensor([ds.N_IMAGES]))


@needs_real
def test_real_subset_indices_match_mixed_radix():
    with np.load(SHARED / "dsprites_subset.npz", allow_pickle=False) as z:
        classes, index = z["latents_classes"], z["original_dataset_indices"]
    gt = ds.DSprites()
    assert torch.equal(gt.index_of(torch.from_numpy(classes)), torch.from_numpy(index))


def test_read_npz_rows_streams_the_selected_rows(tmp_path):
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 2, size=(300, 64, 64), dtype=np.uint8)
    path = tmp_path / "tiny.npz"
    np.savez_compressed(path, imgs=imgs, latents_classes=np.zeros((300, 6), np.int64))
    rows = np.array([0, 5, 99, 100, 257, 299])
    assert np.array_equal(ds.read_npz_rows(path, rows, block=64), imgs[rows])
    read, classes = ds.read_npz(path)
    assert np.array_equal(read, imgs) and classes.shape == (300, 5)  # colour dropped


@needs_real
@pytest.mark.parametrize("name", ["dsprites_subset.npz", "dsprites_downsampled.npz"])
def test_generator_matches_real_images(name):
    imgs, factors = ds.read_shared_subset(SHARED / name)
    rows = np.random.default_rng(0).choice(len(imgs), 1500, replace=False)
    out = ds.fidelity(imgs[rows], factors[rows])
    assert out["mean_iou"] >= 0.95
    for shape in range(3):  # each shape on its own, not only on average
        assert out["iou"][factors[rows, 0] == shape].mean() >= 0.95


@needs_real
def test_generator_sizes_per_shape_scale_and_orientation():
    """Every shape at every scale and grid orientation covers the official pixel count."""
    imgs, factors = ds.read_shared_subset(SHARED / "dsprites_downsampled.npz")
    centre = (factors[:, 3] == 16) & (factors[:, 4] == 16)  # one position per combination
    imgs, factors = imgs[centre], factors[centre]
    assert len(imgs) == 3 * 6 * 10
    drawn = ds.render(torch.from_numpy(factors)).numpy()
    real_area = imgs.sum((1, 2)).astype(float)
    drawn_area = drawn.sum((1, 2)).astype(float)
    assert np.abs(drawn_area / real_area - 1).max() < 0.08
    out = ds.fidelity(imgs, factors)
    assert out["iou"].min() >= 0.9


def test_generated_dataset_splits():
    kw = dict(valid_size=50, test_size=100, size=600)
    train, valid, test = (get("dsprites-generated", s, **kw) for s in ("train", "valid", "test"))
    assert (len(train), len(valid), len(test)) == (450, 50, 100)
    assert train.x.shape[1:] == (1, 64, 64) and train.y is None
    # the three splits are disjoint images of one fixed subset
    flat = torch.cat([train.x, valid.x, test.x]).flatten(1)
    assert torch.unique(flat, dim=0).shape[0] >= 590  # (a few symmetric shapes coincide)
    again = get("dsprites-generated", "test", **kw)
    assert torch.equal(again.x, test.x)
    with pytest.raises(ConfigError, match="data.size"):
        get("dsprites-generated", "train", size=ds.N_IMAGES + 1)


def test_official_file_missing_says_where(tmp_path, monkeypatch):
    monkeypatch.setenv("AUTOENCODERS_DATA", str(tmp_path))
    with pytest.raises(DataMissingError, match=ds.NPZ_NAME):
        get("dsprites", "train", data_dir=tmp_path, download=False, size=10)
