"""CelebA reader on the 32 sample images of the shared data folder."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from autoencoders.data import celeba, get
from autoencoders.errors import ConfigError, DataMissingError

SAMPLE = Path(__file__).resolve().parents[2] / "shared" / "data" / "celeba_sample"
needs_sample = pytest.mark.skipif(not (SAMPLE / celeba.ATTR_FILE).is_file(),
                                  reason="the CelebA sample is not present")


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setattr(celeba, "_cache_dir", lambda: tmp_path / "cache")
    monkeypatch.setenv("AUTOENCODERS_DATA", str(tmp_path / "nothing"))
    celeba._MEMORY.clear()
    yield
    celeba._MEMORY.clear()


@needs_sample
def test_attributes_parse():
    files, names, attrs = celeba.read_attributes(SAMPLE / celeba.ATTR_FILE)
    assert len(files) == 32 and files[0] == "000001.jpg" and len(names) == 40
    assert attrs.shape == (32, 40) and set(np.unique(attrs)) == {-1, 1}


@needs_sample
def test_images_are_cropped_resized_and_cached(tmp_path, monkeypatch):
    data_dir = SAMPLE.parent
    train = get("celeba", "train", data_dir=data_dir, valid_size=0, test_size=4)
    test = get("celeba", "test", data_dir=data_dir, valid_size=0, test_size=4)
    assert train.x.shape == (28, 3, 64, 64) and test.x.shape == (4, 3, 64, 64)
    assert 0.0 <= float(train.x.min()) and float(train.x.max()) <= 1.0
    assert float(train.x.std()) > 0.1  # real photographs, not blank tiles
    assert list((tmp_path / "cache").glob("celeba64-*.npy"))
    # a second process reads the cache and never decodes a JPEG again
    celeba._MEMORY.clear()
    monkeypatch.setattr(celeba, "preprocess", lambda p: pytest.fail("re-decoded " + str(p)))
    again = get("celeba", "test", data_dir=data_dir, valid_size=0, test_size=4)
    assert np.array_equal(again.x.numpy(), test.x.numpy())


@needs_sample
def test_official_partition_is_used(tmp_path):
    folder = tmp_path / "data" / "celeba"
    shutil.copytree(SAMPLE, folder / "img_align_celeba")
    shutil.move(folder / "img_align_celeba" / celeba.ATTR_FILE, folder / celeba.ATTR_FILE)
    parts = [f"{i:06d}.jpg {0 if i <= 20 else 1 if i <= 26 else 2}" for i in range(1, 33)]
    (folder / celeba.PARTITION_FILE).write_text("\n".join(parts) + "\n")
    sizes = [len(get("celeba", s, data_dir=tmp_path / "data", valid_size=0))
             for s in ("train", "valid", "test")]
    assert sizes == [20, 6, 6]
    with pytest.raises(ConfigError, match="official split"):
        get("celeba", "train", data_dir=tmp_path / "data", valid_size=3)


def test_missing_celeba_says_how_to_place_it(tmp_path):
    with pytest.raises(DataMissingError, match="img_align_celeba"):
        get("celeba", "train", data_dir=tmp_path)
