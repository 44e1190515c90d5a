"""Tests for autoencoders.data: parsers, splits, binarisation, lookup, checksums, downloads.

Synthetic files are tiny and written by the tests; the dataset specs are patched with their
MD5s. Real files are used when ../shared/data (beside the repo) or Debian's Fashion-MNIST
are present, else those tests are skipped. The only network use is a local HTTP server on
127.0.0.1.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import gzip
import hashlib
import shutil
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pooch
import pytest
import scipy.io
import torch

from autoencoders import data
from autoencoders.data import download
from autoencoders.data.frey import FreyFace, read_frey
from autoencoders.data.mnist import MNIST, FashionMNIST, read_idx
from autoencoders.errors import ConfigError, DataCorruptError, DataMissingError

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
DEBIAN_FASHION = Path("/usr/share/datasets/fashion-mnist")
N_TRAIN, N_TEST, N_FREY = 60, 20, 50
OFFICIAL_MNIST = MNIST.source


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes(), usedforsecurity=False).hexdigest()


def write_idx(path: Path, array: np.ndarray, gz: bool = True) -> Path:
    """Write a uint8 array as IDX (magic 0x0800 + ndim, big-endian uint32 dims)."""
    header = bytes([0, 0, 0x08, array.ndim]) + np.asarray(array.shape, ">u4").tobytes()
    payload = header + array.astype(np.uint8).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(payload) if gz else payload)
    return path


def use_files(monkeypatch, cls: type, folder: Path, urls: tuple[str, ...] | None = None) -> None:
    """Make ``cls`` accept the files in ``folder`` (their MD5s) and download from ``urls``."""
    specs = tuple(
        dataclasses.replace(
            spec,
            md5=md5(folder / spec.name),
            raw_md5=None,
            urls=spec.urls if urls is None else tuple(url + spec.name for url in urls),
        )
        for spec in cls.source.files
    )
    monkeypatch.setattr(cls, "source", dataclasses.replace(cls.source, files=specs))


def ids(x: torch.Tensor) -> list[int]:
    """Image identities encoded in pixel (0, 0) by the synthetic datasets."""
    return (x[:, 0, 0, 0] * 255).round().long().tolist()


@pytest.fixture(autouse=True)
def isolated(monkeypatch, tmp_path_factory):
    """No user cache, no AUTOENCODERS_DATA, no proxy for 127.0.0.1, short timeouts."""
    cache = tmp_path_factory.mktemp("cache")
    monkeypatch.setattr(pooch, "os_cache", lambda project: cache / project)
    monkeypatch.delenv("AUTOENCODERS_DATA", raising=False)
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setattr(download, "DOWNLOAD_TIMEOUT_S", 5.0)
    return cache


@pytest.fixture
def mnist_dir(tmp_path, monkeypatch) -> Path:
    """A data dir with tiny MNIST files (60 train, 20 test); pixel (0, 0) is the image id."""
    rng = np.random.default_rng(0)
    folder = tmp_path / "data" / "mnist"
    for prefix, n, first_id in (("train", N_TRAIN, 0), ("t10k", N_TEST, 100)):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        images[:, 0, 0] = np.arange(first_id, first_id + n)
        write_idx(folder / f"{prefix}-images-idx3-ubyte.gz", images)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", np.arange(n, dtype=np.uint8) % 10)
    use_files(monkeypatch, MNIST, folder)
    return tmp_path / "data"


@pytest.fixture
def frey_dir(tmp_path, monkeypatch) -> Path:
    """A data dir with a tiny frey_rawface.mat (50 images); pixel (0, 0) is the image id."""
    ff = np.random.default_rng(1).integers(0, 256, (560, N_FREY), dtype=np.uint8)
    ff[0] = np.arange(N_FREY)
    folder = tmp_path / "data" / "frey"
    folder.mkdir(parents=True)
    scipy.io.savemat(folder / "frey_rawface.mat", {"ff": ff})
    use_files(monkeypatch, FreyFace, folder)
    return tmp_path / "data"


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - signature of the base class
        pass


@contextlib.contextmanager
def serve(directory: Path):
    """Serve ``directory`` on 127.0.0.1 (free port) in a thread; yield the base URL."""
    handler = functools.partial(QuietHandler, directory=str(directory))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def dead_url() -> str:
    """A URL on 127.0.0.1 where nothing listens (a server's port, after it closed)."""
    with serve(Path.cwd()) as url:
        pass
    return url


# --- parsers ------------------------------------------------------------------------------


@pytest.mark.parametrize("gz", [True, False])
def test_read_idx_round_trips_images_and_labels(tmp_path, gz):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (7, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, 7, dtype=np.uint8)
    got_images = read_idx(write_idx(tmp_path / "images", images, gz))
    got_labels = read_idx(write_idx(tmp_path / "labels", labels, gz))
    assert got_images.dtype == np.uint8 and got_images.shape == (7, 28, 28)
    np.testing.assert_array_equal(got_images, images)
    np.testing.assert_array_equal(got_labels, labels)


def test_read_idx_truncated_gzip_is_corrupt(tmp_path):
    path = write_idx(tmp_path / "train-images-idx3-ubyte.gz", np.ones((20, 28, 28), np.uint8))
    path.write_bytes(path.read_bytes()[:-30])
    with pytest.raises(DataCorruptError, match="train-images-idx3-ubyte.gz"):
        read_idx(path)


def test_read_idx_header_length_mismatch_is_corrupt(tmp_path):
    path = write_idx(tmp_path / "t10k-images-idx3-ubyte", np.ones((5, 28, 28), np.uint8), gz=False)
    path.write_bytes(path.read_bytes()[: -28 * 28])  # 4 images left, header says 5
    with pytest.raises(DataCorruptError, match="t10k-images-idx3-ubyte.*implies"):
        read_idx(path)


def test_read_idx_bad_magic_is_corrupt(tmp_path):
    path = tmp_path / "labels"
    path.write_bytes(b"\x12\x34\x08\x01" + b"\x00" * 8)
    with pytest.raises(DataCorruptError, match="magic number"):
        read_idx(path)


def test_read_frey_round_trip(tmp_path):
    ff = np.random.default_rng(0).integers(0, 256, (560, 3), dtype=np.uint8)
    scipy.io.savemat(tmp_path / "f.mat", {"ff": ff})
    faces = read_frey(tmp_path / "f.mat")
    assert faces.shape == (3, 28, 20) and faces.dtype == np.uint8
    np.testing.assert_array_equal(faces[2], ff[:, 2].reshape(28, 20))  # row-major columns


def test_read_frey_rejects_missing_variable_wrong_shape_and_truncation(tmp_path):
    scipy.io.savemat(tmp_path / "none.mat", {"faces": np.zeros((560, 2), np.uint8)})
    with pytest.raises(DataCorruptError, match="none.mat.*'ff'"):
        read_frey(tmp_path / "none.mat")
    scipy.io.savemat(tmp_path / "shape.mat", {"ff": np.zeros((100, 2), np.uint8)})
    with pytest.raises(DataCorruptError, match=r"shape.mat.*\(100, 2\)"):
        read_frey(tmp_path / "shape.mat")
    scipy.io.savemat(tmp_path / "cut.mat", {"ff": np.zeros((560, 9), np.uint8)})
    (tmp_path / "cut.mat").write_bytes((tmp_path / "cut.mat").read_bytes()[:2000])
    with pytest.raises(DataCorruptError, match="cut.mat"):
        read_frey(tmp_path / "cut.mat")


# --- splits and binarisation (synthetic) ---------------------------------------------------


def test_mnist_splits_are_disjoint_deterministic_and_cover_train(mnist_dir):
    def split(name, seed=0, valid_size=15):
        return data.get("mnist", name, data_dir=mnist_dir, valid_size=valid_size, seed=seed)

    train, valid, test = split("train"), split("valid"), split("test")
    assert (len(train), len(valid), len(test)) == (45, 15, N_TEST)
    assert train.x.shape == (45, 1, 28, 28) and train.x.dtype == torch.float32
    assert train.y.dtype == torch.int64 and train.y.shape == (45,)
    assert not set(ids(train.x)) & set(ids(valid.x))
    assert sorted(ids(train.x) + ids(valid.x)) == list(range(N_TRAIN))
    assert ids(test.x) == list(range(100, 100 + N_TEST))
    assert train.y.tolist() == [i % 10 for i in ids(train.x)]  # labels follow their images
    assert ids(split("valid").x) == ids(valid.x)
    assert ids(split("valid", seed=1).x) != ids(valid.x)
    assert split("valid", valid_size=0).x.shape == (0, 1, 28, 28)
    assert len(split("train", valid_size=0)) == N_TRAIN


def test_split_size_errors_state_value_and_maximum(mnist_dir):
    with pytest.raises(ConfigError, match=r"valid_size=60 .*at most 59"):
        data.get("mnist", "train", data_dir=mnist_dir, valid_size=60)
    with pytest.raises(ConfigError, match="test_size must be 0"):
        data.get("mnist", "test", data_dir=mnist_dir, valid_size=10, test_size=5)
    with pytest.raises(ConfigError, match="valid, test"):
        data.get("mnist", "validation", data_dir=mnist_dir, valid_size=10)


def test_static_binarisation_is_fixed_per_image(mnist_dir):
    def get(split, seed, binarize):
        return data.get(
            "mnist", split, data_dir=mnist_dir, valid_size=15, seed=seed, binarize=binarize
        )

    first, again = get("train", 0, "static"), get("train", 0, "static")
    assert first.binarize == "static"
    assert torch.equal(first.x, again.x)
    assert set(first.x.unique().tolist()) == {0.0, 1.0}
    # The same image gets the same pixels whatever the split seed.
    by_id = {}
    for seed in (0, 1):
        grey, binary = get("train", seed, "none"), get("train", seed, "static")
        for i, row in zip(ids(grey.x), binary.x, strict=True):
            assert torch.equal(by_id.setdefault(i, row), row)
    assert len(by_id) > 45  # the two seeds' train sets overlap only partly


def test_dynamic_binarisation_keeps_train_grey_and_evaluation_binary(mnist_dir):
    kwargs = {"data_dir": mnist_dir, "valid_size": 15}
    train = data.get("mnist", "train", binarize="dynamic", **kwargs)
    test = data.get("mnist", "test", binarize="dynamic", **kwargs)
    valid = data.get("mnist", "valid", binarize="dynamic", **kwargs)
    assert train.binarize == "dynamic"
    assert torch.equal(train.x, data.get("mnist", "train", **kwargs).x)
    assert len(train.x.unique()) > 2
    assert (test.binarize, valid.binarize) == ("static", "static")
    assert torch.equal(test.x, data.get("mnist", "test", binarize="static", **kwargs).x)
    assert set(valid.x.unique().tolist()) <= {0.0, 1.0}
    with pytest.raises(ConfigError, match="none, static, dynamic.*'stochastic'"):
        data.get("mnist", "train", binarize="stochastic", **kwargs)


def test_draw_binary_is_bernoulli_of_the_grey_levels():
    """Dynamic binarisation: each pixel is 1 with its grey level as probability (checked
    against the binomial spread), 0 and 1 stay fixed, a seed repeats the draw, and the
    draws are torch.bernoulli's."""
    p = torch.tensor([0.0, 0.1, 0.5, 0.9, 1.0]).repeat(20000, 1)
    x = data.draw_binary(p, torch.Generator().manual_seed(0))
    assert x.dtype == p.dtype and set(x.unique().tolist()) <= {0.0, 1.0}
    freq = x.mean(0)
    se = (p[0] * (1 - p[0]) / len(p)).sqrt()
    assert torch.all((freq - p[0]).abs() <= 5 * se + 1e-12), freq
    assert freq[0] == 0 and freq[-1] == 1
    again = data.draw_binary(p, torch.Generator().manual_seed(0))
    assert torch.equal(x, again)
    # the same images and generator state as torch.bernoulli: training numbers unchanged
    for grey in (torch.rand(100, 1, 28, 28), torch.rand(7, 13, dtype=torch.float64)):
        g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
        assert torch.equal(data.draw_binary(grey, g1), torch.bernoulli(grey, generator=g2))
        assert torch.equal(g1.get_state(), g2.get_state())
    assert not torch.equal(x, data.draw_binary(p, torch.Generator().manual_seed(1)))


def test_frey_carves_fixed_test_and_seeded_valid(frey_dir):
    def split(name, seed=0, test_size=10):
        return data.get(
            "frey", name, data_dir=frey_dir, valid_size=5, test_size=test_size, seed=seed
        )

    train, valid, test = split("train"), split("valid"), split("test")
    assert train.x.shape == (35, 1, 28, 20) and train.y is None
    assert 0.0 <= train.x.min() and train.x.max() <= 1.0
    assert sorted(ids(train.x) + ids(valid.x) + ids(test.x)) == list(range(N_FREY))
    assert ids(split("test", seed=7).x) == ids(test.x)  # test does not depend on seed
    assert ids(split("valid", seed=7).x) != ids(valid.x)
    assert len(split("test", test_size=0)) == 0
    with pytest.raises(ConfigError, match=r"valid_size=5 .*at most 3"):
        split("train", test_size=46)


# --- lookup, checksums, messages ------------------------------------------------------------


def test_unknown_dataset_lists_names_and_closest_match():
    with pytest.raises(ConfigError) as err:
        data.get("mnsit")
    message = str(err.value)
    assert "'mnsit'" in message and "Did you mean 'mnist'" in message
    assert all(name in message for name in ("mnist", "fashion-mnist", "frey"))


def test_status_reports_present_and_absent_files(mnist_dir):
    rows = data.status(mnist_dir)
    sources = {id(cls.source): cls.source for cls in data.DATASETS.values()}  # no duplicates
    assert len(rows) == sum(len(src.files) for src in sources.values())
    mnist = [row for row in rows if row["dataset"] == "mnist"]
    assert all(row["present"] for row in mnist)
    assert {row["path"] for row in mnist} == {mnist_dir / "mnist" / row["file"] for row in mnist}
    (frey,) = [row for row in rows if row["dataset"] == "frey"]
    assert frey == {
        "dataset": "frey",
        "file": "frey_rawface.mat",
        "size_bytes": 1100584,
        "present": False,
        "path": None,
    }


def test_data_dirs_order(tmp_path, monkeypatch, isolated):
    assert data.data_dirs() == [isolated / "autoencoders"]
    monkeypatch.setenv("AUTOENCODERS_DATA", str(tmp_path / "env"))
    assert data.data_dirs(tmp_path / "arg") == [
        tmp_path / "arg",
        tmp_path / "env",
        isolated / "autoencoders",
    ]


def test_files_are_found_flat_in_a_data_dir(mnist_dir, monkeypatch):
    for path in (mnist_dir / "mnist").iterdir():
        path.rename(mnist_dir / path.name)
    monkeypatch.setenv("AUTOENCODERS_DATA", str(mnist_dir))
    assert len(data.get("mnist", "test", download=False)) == N_TEST


def test_checksum_mismatch_names_file_md5s_and_fix(mnist_dir, monkeypatch):
    monkeypatch.setattr(MNIST, "source", OFFICIAL_MNIST)  # synthetic files do not match it
    path = mnist_dir / "mnist" / "train-images-idx3-ubyte.gz"
    with pytest.raises(DataCorruptError) as err:
        data.get("mnist", data_dir=mnist_dir, valid_size=10, download=False)
    message = str(err.value)
    assert str(path) in message and md5(path) in message
    assert "f68b3c2dcbeaaa9fbdd348bbdeb94873" in message
    assert "autoencoders data fetch mnist" in message


def test_same_named_file_of_another_dataset_is_not_reported_corrupt(mnist_dir, monkeypatch):
    for path in (mnist_dir / "mnist").iterdir():  # MNIST lying flat in the data dir
        path.rename(mnist_dir / path.name)
    monkeypatch.setattr(
        FashionMNIST, "source", dataclasses.replace(FashionMNIST.source, extra_dirs=())
    )
    with pytest.raises(DataMissingError, match="fashion-mnist data file train-images"):
        data.get("fashion-mnist", data_dir=mnist_dir, download=False)


def test_missing_file_message_without_download(tmp_path):
    with pytest.raises(DataMissingError) as err:
        data.get("frey", data_dir=tmp_path, valid_size=100, download=False)
    message = str(err.value)
    for part in (
        "frey_rawface.mat",
        f"{tmp_path}/frey/",
        f"{tmp_path}/",
        "https://cs.nyu.edu/~roweis/data/frey_rawface.mat",
        "download=False",
        "AUTOENCODERS_DATA",
    ):
        assert part in message


# --- downloads from a local server --------------------------------------------------------


def test_download_falls_back_to_mirror_and_verifies(mnist_dir, tmp_path, monkeypatch):
    with serve(mnist_dir / "mnist") as url:
        use_files(monkeypatch, MNIST, mnist_dir / "mnist", urls=(dead_url(), url))
        paths = data.fetch("mnist", data_dir=tmp_path / "fresh")
    assert paths == [tmp_path / "fresh" / "mnist" / spec.name for spec in MNIST.source.files]
    assert [md5(path) for path in paths] == [spec.md5 for spec in MNIST.source.files]
    assert len(data.get("mnist", "test", data_dir=tmp_path / "fresh", download=False)) == N_TEST


def test_download_with_wrong_checksum_leaves_nothing(mnist_dir, tmp_path, monkeypatch):
    served = tmp_path / "served"
    shutil.copytree(mnist_dir / "mnist", served)
    with open(served / "t10k-labels-idx1-ubyte.gz", "ab") as handle:
        handle.write(b"tampered")
    with serve(served) as url:
        use_files(monkeypatch, MNIST, mnist_dir / "mnist", urls=(url,))
        with pytest.raises(DataCorruptError, match="t10k-labels-idx1-ubyte.gz.*checksum"):
            data.fetch("mnist", data_dir=tmp_path / "fresh")
    assert not (tmp_path / "fresh" / "mnist" / "t10k-labels-idx1-ubyte.gz").exists()
    assert sorted(p.name for p in (tmp_path / "fresh" / "mnist").iterdir()) == [
        "t10k-images-idx3-ubyte.gz",
        "train-images-idx3-ubyte.gz",
        "train-labels-idx1-ubyte.gz",
    ]


def test_offline_download_gives_missing_message(mnist_dir, tmp_path, monkeypatch):
    url = dead_url()
    use_files(monkeypatch, MNIST, mnist_dir / "mnist", urls=(url,))
    with pytest.raises(DataMissingError) as err:
        data.get("mnist", data_dir=tmp_path / "fresh", valid_size=10)
    message = str(err.value)
    for part in (
        "train-images-idx3-ubyte.gz",
        f"{tmp_path / 'fresh' / 'mnist'}/",
        url + "train-images-idx3-ubyte.gz",
        "Download failed",
        "Also missing",
    ):
        assert part in message


# --- the real files ------------------------------------------------------------------------

needs_shared_mnist = pytest.mark.skipif(
    not (SHARED / "mnist" / "train-images-idx3-ubyte.gz").is_file(),
    reason=f"real MNIST not found in {SHARED / 'mnist'}",
)
needs_shared_frey = pytest.mark.skipif(
    not (SHARED / "frey" / "frey_rawface.mat").is_file(),
    reason=f"real Frey Face not found in {SHARED / 'frey'}",
)
needs_debian_fashion = pytest.mark.skipif(
    not (DEBIAN_FASHION / "train-images-idx3-ubyte.gz").is_file(),
    reason=f"Fashion-MNIST not in {DEBIAN_FASHION} (apt-get install dataset-fashion-mnist)",
)


@needs_shared_mnist
def test_real_mnist():
    paths = data.fetch("mnist", data_dir=SHARED)  # verifies the MD5s, downloads nothing
    assert paths == [SHARED / "mnist" / spec.name for spec in MNIST.source.files]
    train = data.get("mnist", "train", data_dir=SHARED, valid_size=0, download=False)
    test = data.get("mnist", "test", data_dir=SHARED, download=False)
    assert train.x.shape == (60000, 1, 28, 28) and test.x.shape == (10000, 1, 28, 28)
    assert train.y.unique().tolist() == list(range(10))
    assert test.y.bincount().tolist()[:2] == [980, 1135]
    assert float(train.x.min()) == 0.0 and float(train.x.max()) == 1.0


@needs_shared_frey
def test_real_frey():
    assert data.fetch("frey", data_dir=SHARED) == [SHARED / "frey" / "frey_rawface.mat"]
    faces = data.get("frey", data_dir=SHARED, valid_size=0, download=False)
    assert faces.x.shape == (1965, 1, 28, 20) and faces.y is None
    assert 0.0 < float(faces.x.min()) and float(faces.x.max()) < 1.0  # values 8..238


@needs_debian_fashion
def test_fashion_mnist_from_debian_folder(tmp_path):
    paths = data.fetch("fashion-mnist", data_dir=tmp_path)
    assert all(path.parent == DEBIAN_FASHION for path in paths)
    test = data.get("fashion-mnist", "test", data_dir=tmp_path, download=False)
    assert test.x.shape == (10000, 1, 28, 28)
    assert test.y.bincount().tolist() == [1000] * 10


@needs_shared_mnist
def test_real_download_from_local_server(tmp_path, monkeypatch):
    with serve(SHARED / "mnist") as url:
        specs = tuple(
            dataclasses.replace(spec, urls=(url + spec.name,)) for spec in MNIST.source.files
        )
        monkeypatch.setattr(MNIST, "source", dataclasses.replace(MNIST.source, files=specs))
        paths = data.fetch("mnist", data_dir=tmp_path)
    assert [md5(path) for path in paths] == [spec.md5 for spec in specs]
    assert all(path.parent == tmp_path / "mnist" for path in paths)


def test_pooled_mnist_splits_all_images_with_a_fixed_test(mnist_dir):
    """mnist-pooled (the SB-VAE authors' protocol): train and test files as one pool; test
    carved with the fixed seed (independent of split_seed), valid by split_seed."""
    def split(name, seed=0):
        return data.get("mnist-pooled", name, data_dir=mnist_dir, valid_size=10,
                        test_size=20, seed=seed)

    train, valid, test = split("train"), split("valid"), split("test")
    assert (len(train), len(valid), len(test)) == (N_TRAIN + N_TEST - 30, 10, 20)
    every = ids(train.x) + ids(valid.x) + ids(test.x)
    assert sorted(every) == list(range(N_TRAIN)) + list(range(100, 100 + N_TEST))
    assert any(i >= 100 for i in ids(train.x))  # official test images reach train too
    assert ids(split("test", seed=1).x) == ids(test.x)
    assert ids(split("valid", seed=1).x) != ids(valid.x)
    assert train.y.tolist() == [i % 10 for i in ids(train.x)]
