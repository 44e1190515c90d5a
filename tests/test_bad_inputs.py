"""Bad input never crashes and never damages a run: a table of cases through the CLI and
the Python API. Each must end with exit status 2 and a one-paragraph message (no traceback)
that contains the expected words, and every existing run folder must be left byte-identical.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from autoencoders.cli import main
from autoencoders.errors import UserError

TINY = ["model.latent_dim=2", "model.hidden=16", "data.train_size=300", "data.valid_size=100",
        "train.epochs=1", "eval.iw_samples=5", "eval.test_subset=20"]


def tiny_args(*extra: str) -> list[str]:
    out = []
    for o in [*TINY, *extra]:
        out += ["--set", o]
    return out


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A real run folder to protect, plus copies of the data to damage."""
    from conftest import SHARED_DATA

    if not (SHARED_DATA / "mnist" / "train-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"real MNIST not found in {SHARED_DATA}")
    root = tmp_path_factory.mktemp("world")
    runs = root / "runs"
    code = main(["train", "vae-mnist", "--no-progress", "--data-dir", str(SHARED_DATA),
                 "--runs-dir", str(runs), *tiny_args()])
    assert code == 0
    run = next(runs.glob("vae-mnist/*"))
    # damaged copies of real files
    bad = root / "bad"
    for sub in ("mnist", "frey"):
        shutil.copytree(SHARED_DATA / sub, bad / sub)
    for p in bad.rglob("*"):
        p.chmod(0o644)
    gz = bad / "mnist" / "t10k-images-idx3-ubyte.gz"
    gz.write_bytes(gz.read_bytes()[:5000])  # truncated gzip
    mat = bad / "frey" / "frey_rawface.mat"
    mat.write_bytes(b"MATLAB 5.0 MAT-file" + b"\0" * 200)
    # a read-only place: as root chmod does not stop writes, so use a path under a file
    blocker = root / "a-file"
    blocker.write_text("not a folder")
    return {"data": SHARED_DATA, "root": root, "runs": runs, "run": run, "bad": bad,
            "blocker": blocker}


def snapshot(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def copy_run(world, name: str) -> Path:
    dst = world["root"] / "copies" / name
    if dst.exists():
        shutil.rmtree(dst)
    shutil.copytree(world["run"], dst)
    return dst


def _cases(w):
    d, bad, run = str(w["data"]), str(w["bad"]), str(w["run"])
    rd = ["--runs-dir", str(w["root"] / "scratch")]
    base = ["train", "vae-mnist", "--no-progress", "--data-dir", d, *rd]
    return {
        "unknown experiment": (["train", "vae-mnst"], ["Unknown experiment", "vae-mnist"]),
        "experiment file missing": (["train", "/no/such.toml"], ["does not exist"]),
        "misspelt key": ([*base, "--set", "train.epoch=2"], ["Did you mean 'train.epochs'"]),
        "unknown section": ([*base, "--set", "trian.epochs=2"], ["Unknown section"]),
        "key without section": ([*base, "--set", "epochs=2"], ["section and a key"]),
        "override without =": ([*base, "--set", "train.epochs"], ["key=value"]),
        "wrong type int": ([*base, "--set", "train.epochs=2.5"], ["must be an integer"]),
        "wrong type bool": ([*base, "--set", "data.download=3"], ["true or false"]),
        "wrong type str": ([*base, "--set", "data.name=3"], ["must be a string"]),
        "negative lr": ([*base, "--set", "train.lr=-0.1"], ["train.lr", "out of range"]),
        "zero epochs": ([*base, "--set", "train.epochs=0"], ["train.epochs = 0"]),
        "zero batch": ([*base, "--set", "train.batch_size=0"], ["train.batch_size = 0"]),
        "negative K": ([*base, "--set", "eval.iw_samples=-1"], ["eval.iw_samples = -1"]),
        "zero latent": ([*base, "--set", "model.latent_dim=0"], ["model.latent_dim = 0"]),
        "bad activation": ([*base, "--set", "model.activation=\"relu6\""], ["relu6", "tanh"]),
        "bad likelihood": ([*base, "--set", "model.likelihood=\"poisson\""], ["bernoulli"]),
        "bad optimizer": ([*base, "--set", "train.optimizer=\"lbfgs\""], ["adagrad"]),
        "bad dataset": ([*base, "--set", "data.name=\"cifar\""], ["'cifar'", "mnist"]),
        "bad binarize": ([*base, "--set", "data.binarize=\"maybe\""], ["dynamic"]),
        "bad figure": ([*base, "--set", "eval.figures=[\"filterz\"]"], ["filterz"]),
        "valid too large": ([*base, "--set", "data.valid_size=60000"], ["valid_size"]),
        "test_size for mnist": ([*base, "--set", "data.test_size=5"], ["test_size"]),
        "missing data": (["train", "vae-mnist", "--data-dir", str(w["root"] / "nodata"),
                          "--set", "data.download=false", *rd],
                         ["train-images-idx3-ubyte.gz", "nodata", "http"]),
        "corrupt gz": (["train", "vae-mnist", "--data-dir", bad, "--set", "data.download=false",
                        "--no-progress", *tiny_args(), *rd],
                       ["t10k-images-idx3-ubyte.gz"]),
        "corrupt mat": (["train", "vae-frey-2d", "--data-dir", bad, "--set",
                         "data.download=false", *rd], ["frey_rawface.mat"]),
        "unknown dataset fetch": (["data", "fetch", "mnits"], ["mnist"]),
        "evaluate non-run": (["evaluate", d], ["not a run folder"]),
        "resume non-run": (["train", "--resume", str(w["root"])], ["not a run folder"]),
        "resume with --set": (["train", "--resume", run, "--set", "train.epochs=3"],
                              ["cannot change a run being resumed"]),
        "evaluate model override": (["evaluate", run, "--set", "model.hidden=3"], ["eval.*"]),
        "runs dir under a file": ([*base, *tiny_args(), "--runs-dir",
                                   str(w["blocker"] / "runs")], ["Cannot create the run folder"]),
        "train without experiment": (["train"], ["EXPERIMENT"]),
    }


CASE_NAMES = [
    "unknown experiment", "experiment file missing", "misspelt key", "unknown section",
    "key without section", "override without =", "wrong type int", "wrong type bool",
    "wrong type str", "negative lr", "zero epochs", "zero batch", "negative K", "zero latent",
    "bad activation", "bad likelihood", "bad optimizer", "bad dataset", "bad binarize",
    "bad figure", "valid too large", "test_size for mnist", "missing data", "corrupt gz",
    "corrupt mat", "unknown dataset fetch", "evaluate non-run", "resume non-run",
    "resume with --set", "evaluate model override", "runs dir under a file",
    "train without experiment",
]


@pytest.mark.parametrize("name", CASE_NAMES)
def test_cli_bad_input(world, capsys, name):
    args, expected = _cases(world)[name]
    before = snapshot(world["runs"])
    code = main(args)
    err = capsys.readouterr().err
    assert code == 2, (name, err)
    assert "Traceback" not in err and err.startswith("autoencoders: error:"), err
    assert err.count("\n\n") == 0, "one paragraph"
    for text in expected:
        assert text in err, (name, text, err)
    assert snapshot(world["runs"]) == before, "an existing run folder changed"


def test_tampered_checkpoint_via_cli(world, capsys):
    run = copy_run(world, "tampered")
    man = json.loads((run / "checkpoints" / "last.json").read_text())
    p = run / "checkpoints" / man["state"]
    p.write_bytes(p.read_bytes()[:100])
    code = main(["train", "--resume", str(run), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and man["state"] in err and "SHA-256" in err


def test_truncated_weights_via_cli(world, capsys):
    run = copy_run(world, "truncated")
    (run / "checkpoints" / "last.json").unlink()  # no manifest: evaluate reads best/last
    code = main(["evaluate", str(run)])
    err = capsys.readouterr().err
    assert code == 2 and "no checkpoint" in err


def test_damaged_config_json(world, capsys):
    run = copy_run(world, "badconfig")
    (run / "config.json").write_text("{ not json")
    code = main(["evaluate", str(run)])
    err = capsys.readouterr().err
    assert code == 2 and "config.json" in err and "not valid JSON" in err


def test_checkpoint_from_another_config(world, capsys):
    run = copy_run(world, "otherconfig")
    cfg = json.loads((run / "config.json").read_text())
    cfg["model"]["hidden"] = 32  # the weights were trained with 16 hidden units
    (run / "config.json").write_text(json.dumps(cfg))
    code = main(["evaluate", str(run)])
    err = capsys.readouterr().err
    assert code == 2 and "belongs to another config" in err


def test_run_folder_from_another_model(world, capsys):
    run = copy_run(world, "othermodel")
    cfg = json.loads((run / "config.json").read_text())
    cfg["model"] = {"name": "vae", "latent_dim": 7, "hidden": 16}
    (run / "config.json").write_text(json.dumps(cfg))
    code = main(["train", "--resume", str(run), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and "another config" in err


def test_api_errors_are_user_errors(world):
    import autoencoders as ae
    from autoencoders.evaluation.likelihood import iw_log_likelihood

    with pytest.raises(UserError, match="vae-mnist"):
        ae.load_experiment("vae_mnistt")
    with pytest.raises(UserError, match="n_samples"):
        model = ae.load_run(world["run"]).load_model()
        iw_log_likelihood(model, torch.zeros(2, 1, 28, 28), n_samples=0)
    with pytest.raises(UserError, match="Valid keys"):
        ae.load_experiment("vae-mnist", overrides={"eval.iw_sample": 3})


def test_disk_full_while_checkpointing_keeps_the_old_checkpoint(world, monkeypatch, tmp_path):
    from autoencoders import runs as runs_mod
    from autoencoders.config import load_experiment
    from autoencoders.train import train

    cfg = load_experiment("vae-mnist", "quick", [*TINY, "train.epochs=3",
                                                f'data.data_dir="{world["data"]}"'])
    real_save = runs_mod.save_file
    calls = {"n": 0}

    def full_on_second_write(tensors, path, metadata=None):
        calls["n"] += 1
        real_save(tensors, path, metadata=metadata)
        if calls["n"] == 2:  # the epoch-2 checkpoint: the disk fills mid-write
            raise OSError(28, "No space left on device")

    monkeypatch.setattr(runs_mod, "save_file", full_on_second_write)
    with pytest.raises(UserError, match="No space left on device") as e:
        train(cfg, runs_dir=tmp_path, progress=False, log_epochs=False)
    assert "resume" in str(e.value)
    run = runs_mod.Run.load(next(tmp_path.glob("*/*")))
    man = json.loads((run.ckpt_dir / "last.json").read_text())
    assert man["epoch"] == 1  # the old checkpoint is still the current one ...
    run.load_checkpoint()  # ... and verifies
    assert not [p for p in run.ckpt_dir.iterdir() if ".tmp-" in p.name]  # no debris
    monkeypatch.setattr(runs_mod, "save_file", real_save)
    train(cfg, run, resume=True, progress=False, log_epochs=False)  # space again: resume
    assert len(run.metrics()) == 3


def test_ctrl_c_checkpoints_and_says_how_to_resume(world, tmp_path):
    args = [sys.executable, "-m", "autoencoders", "train", "vae-mnist", "--no-progress",
            "--data-dir", str(world["data"]), "--runs-dir", str(tmp_path),
            *tiny_args("train.epochs=500")]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and not list(tmp_path.glob("*/*/checkpoints/last.json")):
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 2, err
    assert "Traceback" not in err and "Interrupted" in err and "--resume" in err
    run = next(tmp_path.glob("*/*"))
    assert (run / "checkpoints" / "last.json").is_file()


def test_corrupt_gzip_names_the_file_in_api(world):
    from autoencoders.data import read_idx
    from autoencoders.errors import DataCorruptError

    p = world["bad"] / "mnist" / "t10k-images-idx3-ubyte.gz"
    with pytest.raises(DataCorruptError, match="t10k-images-idx3-ubyte.gz"):
        read_idx(p)
