"""Streaming from a memory-mapped uint8 cache: the same batches and training as in RAM,
the cache reused, a damaged cache rebuilt, the automatic choice."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from autoencoders.config import load_experiment
from autoencoders.data import StreamedImages, dsprites, get, storage
from autoencoders.errors import ConfigError, UserError
from autoencoders.runs import Run
from autoencoders.train import load_split, train

TINY = [
    "model.latent_dim=4", "model.hidden=32", "model.init_std=0.0",
    "data.train_size=600", "data.valid_size=200", "train.epochs=3", "train.threads=1",
    "train.lr=0.003",
]
DSPRITES = dict(valid_size=50, test_size=30, size=400)


def tiny_config(shared_data, *extra):
    return load_experiment("vae-mnist", "quick",
                           [*TINY, f'data.data_dir="{shared_data}"', *extra])


def assert_same_run(a: Run, b: Run):
    wa, wb = a.load_checkpoint()[0], b.load_checkpoint()[0]
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.equal(wa[k], wb[k]), f"{k} differs"
    strip = [{k: v for k, v in r.items() if k != "time"} for r in a.metrics()]
    assert strip == [{k: v for k, v in r.items() if k != "time"} for r in b.metrics()]


def assert_same_batches(memory: torch.Tensor, streamed: StreamedImages):
    assert isinstance(memory, torch.Tensor) and isinstance(streamed, StreamedImages)
    assert streamed.shape == memory.shape and len(streamed) == len(memory)
    gen = torch.Generator().manual_seed(0)
    perm = torch.randperm(len(memory), generator=gen)
    for b in range(0, len(memory), 97):  # unsorted index batches, as the trainer takes them
        idx = perm[b:b + 97]
        assert torch.equal(memory[idx], streamed[idx])
    assert torch.equal(memory[3:40], streamed[3:40])
    assert torch.equal(memory[5], streamed[5])
    assert torch.equal(memory, streamed[:])


@pytest.mark.parametrize("binarize", ["none", "static"])
def test_mnist_memmap_batches_equal_memory(shared_data, binarize):
    kw = dict(data_dir=shared_data, valid_size=1000, first=900, binarize=binarize)
    memory, streamed = get("mnist", "train", **kw), get("mnist", "train", **kw,
                                                         storage="memmap")
    assert_same_batches(memory.x, streamed.x)
    assert torch.equal(memory.y, streamed.y) and memory.binarize == streamed.binarize


def test_dsprites_and_celeba_memmap_batches_equal_memory():
    for split in ("train", "valid", "test"):
        memory = get("dsprites-generated", split, **DSPRITES)
        assert_same_batches(memory.x, get("dsprites-generated", split, **DSPRITES,
                                          storage="memmap").x)
    sample = str(Path(__file__).resolve().parents[2] / "shared" / "data")
    try:
        memory = get("celeba", "train", data_dir=sample, valid_size=0, test_size=4)
    except UserError:
        pytest.skip("the CelebA sample is not present")
    streamed = get("celeba", "train", data_dir=sample, valid_size=0, test_size=4,
                   storage="memmap")
    assert_same_batches(memory.x, streamed.x)  # (N, 64, 64, 3) cache -> (N, 3, 64, 64)


def test_training_from_memmap_equals_memory_and_resumes_bit_identically(shared_data,
                                                                         tmp_path):
    """Dynamic binarisation draws from the streamed batches as from the tensor."""
    extra = ['data.binarize="dynamic"']
    memory = train(tiny_config(shared_data, *extra, 'data.storage="memory"'),
                   runs_dir=tmp_path / "memory", progress=False, log_epochs=False)
    cfg = tiny_config(shared_data, *extra, 'data.storage="memmap"')
    assert isinstance(load_split(cfg, "train", stream=True).x, StreamedImages)
    assert isinstance(load_split(cfg, "valid").x, torch.Tensor)  # evaluation gets tensors
    streamed = train(cfg, runs_dir=tmp_path / "memmap", progress=False, log_epochs=False)
    assert_same_run(memory, streamed)
    cut = train(cfg, runs_dir=tmp_path / "cut", progress=False, log_epochs=False,
                stop_after_steps=8)
    train(cfg, cut, resume=True, progress=False, log_epochs=False)
    assert_same_run(memory, cut)


def test_cache_is_written_once_and_reused(monkeypatch):
    first = get("dsprites-generated", "train", **DSPRITES, storage="memmap")
    path = first.x.path
    assert path.is_file() and path.parent.name == "dsprites"
    assert not list(path.parent.glob(".*.tmp"))  # the temp file was renamed
    stamp = path.stat().st_mtime_ns, path.stat().st_ino

    def no_render(*args, **kwargs):
        raise AssertionError("the cache was rebuilt instead of reused")

    monkeypatch.setattr(dsprites, "render", no_render)
    again = get("dsprites-generated", "valid", **DSPRITES, storage="memmap")
    assert again.x.path == path and (path.stat().st_mtime_ns, path.stat().st_ino) == stamp
    assert torch.equal(again.x[:], get("dsprites-generated", "valid", **DSPRITES,
                                       storage="memmap").x[:])


@pytest.mark.parametrize("damage", ["truncate", "header", "extend"])
def test_damaged_cache_is_reported_and_rebuilt(damage, capsys):
    good = get("dsprites-generated", "train", **DSPRITES, storage="memmap")
    reference = good.x[:]
    path = good.x.path
    size = path.stat().st_size
    del good
    if damage == "truncate":  # e.g. the disk filled up while another tool copied it
        with open(path, "r+b") as f:
            f.truncate(size - 4096 * 7)
    elif damage == "header":
        with open(path, "r+b") as f:
            f.write(b"garbage!" * 4)
    else:
        with open(path, "ab") as f:
            f.write(b"\0" * 100)
    capsys.readouterr()
    rebuilt = get("dsprites-generated", "train", **DSPRITES, storage="memmap")
    err = capsys.readouterr().err
    assert f"the cache {path} is damaged" in err and "rebuilding" in err
    assert path.stat().st_size == size
    assert torch.equal(rebuilt.x[:], reference)


def test_auto_streams_only_over_budget(shared_data, capsys):
    kw = dict(data_dir=shared_data, valid_size=1000, first=500)
    split_bytes = 500 * 28 * 28 * 4
    roomy = get("mnist", "train", **kw, storage="auto", budget=split_bytes)
    assert isinstance(roomy.x, torch.Tensor)
    assert "streaming" not in capsys.readouterr().err
    tight = get("mnist", "train", **kw, storage="auto", budget=split_bytes - 1)
    assert isinstance(tight.x, StreamedImages)
    line = capsys.readouterr().err.strip()
    assert line.startswith("mnist: 500 train images (1.6 MB as float32) > budget 1.6 MB: "
                           "streaming from memory-mapped uint8 cache ")
    assert line.endswith(".npy") and "\n" not in line
    assert_same_batches(roomy.x, tight.x)
    # a small split of a data set over budget is read from the cache, in RAM
    valid = get("dsprites-generated", "valid", **DSPRITES, storage="auto", budget=10**6)
    assert isinstance(valid.x, torch.Tensor)
    assert torch.equal(valid.x, get("dsprites-generated", "valid", **DSPRITES).x)
    assert storage.default_budget() > 0
    assert not storage.over_budget("memory", 10**9, (3, 64, 64), 1)
    assert storage.over_budget("memmap", 1, (1, 2, 2), 10**9)


def test_streamed_images_follow_the_device_and_head():
    x = get("dsprites-generated", "train", **DSPRITES, storage="memmap").x
    head = x.head(10).to("cpu")
    assert head.shape == (10, 1, 64, 64) and head[:].device.type == "cpu"
    assert torch.equal(head[:], x[:10]) and x[torch.tensor([2, 0])].dtype == torch.float32


def test_unwritable_cache_names_the_file(tmp_path, monkeypatch):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))
    with pytest.raises(UserError, match=r"could not write the uint8 cache .*not-a-folder.*"
                                        r"data.storage = \"memory\""):
        get("dsprites-generated", "train", **DSPRITES, storage="memmap")


def test_storage_is_validated():
    with pytest.raises(ConfigError, match="data.storage.*auto, memory, memmap"):
        load_experiment("vae-mnist", "quick", ['data.storage="disk"'])
    with pytest.raises(ConfigError, match="storage must be one of"):
        get("dsprites-generated", "train", **DSPRITES, storage="disk")
