"""Configs and the command line: clear errors (exit 2, no traceback), listings, overrides."""

from __future__ import annotations

import gzip
import shutil

import pytest

from autoencoders.cli import main
from autoencoders.config import from_dict, list_experiments, load_experiment, shipped_seconds
from autoencoders.errors import ConfigError


def test_every_shipped_experiment_loads_in_both_profiles():
    names = list_experiments()
    assert {"vae-mnist", "vae-mnist-2d", "vae-frey-2d", "vae-mnist-nz-sweep",
            "vae-frey-nz-sweep"} <= set(names)
    for name in names:
        for profile in ("quick", "full"):
            cfg = load_experiment(name, profile)
            assert cfg.name == name and cfg.profile == profile
            assert from_dict(cfg.to_dict()) == cfg  # round-trips through config.json


def test_shipped_seconds_name_shipped_experiments():
    """experiments/seconds.json (the order of a fresh ``reproduce all --jobs``): every name
    is a shipped experiment, every value a positive time."""
    seconds = shipped_seconds("quick")
    assert seconds and set(seconds) <= set(list_experiments())
    assert all(v > 0 for v in seconds.values())
    assert shipped_seconds("no-such-profile") == {}


def test_profile_and_overrides_apply_with_types():
    q = load_experiment("vae-mnist", "quick")
    f = load_experiment("vae-mnist", "full")
    assert q.train.epochs < f.train.epochs
    c = load_experiment("vae-mnist", "quick", ["train.epochs=2", "train.lr=1", "model.latent_dim=3",
                                              'eval.figures=["samples"]'])
    assert (c.train.epochs, c.train.lr, c.model.latent_dim) == (2, 1.0, 3)
    assert isinstance(c.train.lr, float) and c.eval.figures == ["samples"]


@pytest.mark.parametrize("override, expected", [
    ("train.epoch=3", ["Unknown config key 'train.epoch'", "Did you mean 'train.epochs'",
                       "train.batch_size"]),
    ("model.latnet_dim=3", ["'model.latent_dim'", "Valid keys"]),
    ("trian.epochs=3", ["Unknown section 'trian'", "'train'"]),
    ("train.epochs=lots", ["train.epochs must be an integer", "'lots'"]),
    ("train.epochs=0", ["train.epochs = 0 is out of range", ">= 1"]),
    ("train.lr=-1", ["train.lr = -1.0 is out of range"]),
    ("train.optimizer=\"adamw\"", ["'adamw' is not a valid choice", "adagrad, adam, sgd"]),
    ("data.name=\"mnsit\"", ["'mnsit' is not a valid choice", "Did you mean 'mnist'"]),
    ("data.binarize=\"yes\"", ["'yes' is not a valid choice", "dynamic"]),
    ("eval.iw_samples=-5", ["eval.iw_samples = -5 is out of range"]),
    ("eval.figures=[\"manifolds\"]", ["Did you mean 'manifold'"]),
    ("model.name=\"vea\"", ["model.name = 'vea'", "Did you mean 'vae'"]),
    ("epochs=3", ["must name a section and a key"]),
    ("train.amp", ["not of the form key=value"]),
])
def test_bad_overrides_say_what_and_how(override, expected):
    with pytest.raises(ConfigError) as e:
        load_experiment("vae-mnist", "quick", [override])
    for text in expected:
        assert text in str(e.value), (text, str(e.value))


def run_cli(capsys, *args):
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.parametrize("args, expected", [
    (["train", "vae-mnst"], ["Unknown experiment 'vae-mnst'", "Did you mean 'vae-mnist'"]),
    (["train", "vae-mnist", "--set", "train.epoch=1"], ["Did you mean 'train.epochs'"]),
    (["reproduce", "vae-mnist", "--set", "model.latent_dim=0"], ["model.latent_dim = 0"]),
    (["evaluate", "/nonexistent/run"], ["is not a run folder"]),
    (["train", "--resume", "/nonexistent/run"], ["is not a run folder"]),
    (["data", "fetch", "mnits"], ["Did you mean 'mnist'"]),
])
def test_cli_errors_exit_2_without_traceback(capsys, args, expected):
    code, out, err = run_cli(capsys, *args)
    assert code == 2
    assert "Traceback" not in err and err.startswith("autoencoders: error:")
    for text in expected:
        assert text in err, (text, err)


def test_missing_data_names_file_folders_and_fix(capsys, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    code, _, err = run_cli(capsys, "train", "vae-mnist", "--data-dir", str(empty),
                           "--set", "data.download=false", "--runs-dir", str(tmp_path / "r"))
    assert code == 2 and "Traceback" not in err
    for text in ("train-images-idx3-ubyte.gz", str(empty), "http", "AUTOENCODERS_DATA"):
        assert text in err, (text, err)


def test_corrupt_file_is_named(capsys, tmp_path, shared_data):
    d = tmp_path / "data" / "mnist"
    d.mkdir(parents=True)
    for f in (shared_data / "mnist").iterdir():
        shutil.copy(f, d / f.name)
    bad = d / "train-labels-idx1-ubyte.gz"
    raw = gzip.decompress(bad.read_bytes())
    bad.write_bytes(gzip.compress(raw[: len(raw) // 2]))  # valid gzip, truncated IDX
    code, _, err = run_cli(capsys, "train", "vae-mnist", "--data-dir", str(tmp_path / "data"),
                           "--set", "data.download=false", "--runs-dir", str(tmp_path / "r"))
    assert code == 2 and "train-labels-idx1-ubyte.gz" in err and "Traceback" not in err


def test_list_shows_experiments_models_datasets(capsys):
    code, out, _ = run_cli(capsys, "list")
    assert code == 0
    for text in ("vae-mnist", "vae-frey-2d", "vae ", "mnist", "frey"):
        assert text in out


def test_python_dash_m_and_console_script_work():
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "autoencoders", "list", "models"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "vae" in r.stdout
    r = subprocess.run([sys.executable, "-m", "autoencoders", "train", "nope"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "Traceback" not in r.stderr and "Unknown experiment" in r.stderr


def test_reproduce_end_to_end_writes_report(capsys, tmp_path, shared_data):
    code, out, err = run_cli(
        capsys, "reproduce", "vae-mnist-2d", "--no-progress", "--data-dir", str(shared_data),
        "--runs-dir", str(tmp_path), "--set", "data.train_size=1000", "--set", "train.epochs=2",
        "--set", "eval.iw_samples=50", "--set", "eval.test_subset=200",
        "--set", "model.hidden=64")
    assert code == 0, err
    run_dir = next(tmp_path.glob("vae-mnist-2d/*"))
    report = (run_dir / "report.md").read_text()
    for text in ("test lower bound", "test log p(x)", "K=50", "![manifold](figures/manifold.png)",
                 "autoencoders reproduce vae-mnist-2d", "hardware", "torch"):
        assert text in report, text
    for fig in ("manifold", "curves", "samples", "reconstructions"):
        assert (run_dir / "figures" / f"{fig}.png").stat().st_size > 1000
    code, out, _ = run_cli(capsys, "evaluate", str(run_dir), "--set", "eval.iw_samples=10",
                           "--set", "eval.test_subset=50", "--no-progress")
    assert code == 0 and '"iw_samples": 10' in out
    code, _, err = run_cli(capsys, "evaluate", str(run_dir), "--set", "model.hidden=3")
    assert code == 2 and "eval.*" in err
