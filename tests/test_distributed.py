"""Two processes under torchrun (gloo, CPU) train like one process with the same global
batch: the loss curves agree within a stated tolerance (the per-rank reparameterisation
noise differs, so they are not bit-identical)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from autoencoders.runs import Run

SETS = ["model.latent_dim=4", "model.hidden=64", "model.init_std=0.0", "train.lr=0.003",
        "data.train_size=2000", "data.valid_size=500", "train.epochs=4", "train.threads=1",
        "train.batch_size=100"]
# Relative difference allowed per epoch (train and valid loss). Measured on this config:
# changing only train.seed moves epoch 1 by ~1 % and epoch 4 by ~2.6 %, so 2 processes
# (other reparameterisation noise) must stay within the same band: 5 % in the first epoch,
# where the loss falls fastest, 3 % after.
TOLERANCE = {1: 0.05}
TOLERANCE_LATER = 0.03


def _train(tmp_path, shared_data, nproc: int, resume: str | None = None, extra=()):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
           f"--nproc_per_node={nproc}", "-m", "autoencoders", "train"]
    if resume:
        cmd += ["--resume", resume, "--no-progress"]
    else:
        cmd += ["vae-mnist", "--no-progress", "--runs-dir", str(tmp_path),
                "--data-dir", str(shared_data)]
        for s in [*SETS, *extra]:
            cmd += ["--set", s]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    return r


def test_two_process_gloo_matches_one_process(tmp_path, shared_data):
    _train(tmp_path / "one", shared_data, 1)
    _train(tmp_path / "two", shared_data, 2)
    one = Run.load(next((tmp_path / "one").glob("*/*"))).metrics()
    two_run = Run.load(next((tmp_path / "two").glob("*/*")))
    two = two_run.metrics()
    assert len(one) == len(two) == 4
    assert len(list((tmp_path / "two").glob("*/*"))) == 1  # only rank 0 made a run folder
    for a, b in zip(one, two, strict=True):
        assert a["samples"] == b["samples"] == a["epoch"] * 2000
        for key in ("train/loss", "valid/loss"):
            tol = TOLERANCE.get(a["epoch"], TOLERANCE_LATER)
            assert abs(a[key] - b[key]) / abs(a[key]) < tol, (key, a["epoch"], a[key], b[key])
    assert two[-1]["valid/loss"] < two[0]["valid/loss"] - 10  # it learns


def test_resume_with_another_number_of_processes(tmp_path, shared_data):
    from autoencoders.config import load_experiment
    from autoencoders.train import train

    cfg = load_experiment("vae-mnist", "quick", [*SETS, f'data.data_dir="{shared_data}"'])
    run = train(cfg, runs_dir=tmp_path / "r", progress=False, log_epochs=False,
                stop_after_steps=30)  # 1.5 epochs in one process ...
    _train(tmp_path, shared_data, 2, resume=str(run.path))  # ... the rest in two
    rows = Run.load(run.path).metrics()
    assert [r["epoch"] for r in rows] == [1, 2, 3, 4]
    assert rows[-1]["valid/loss"] < rows[0]["valid/loss"]


if not sys.platform.startswith("linux"):  # pragma: no cover
    pytest.skip("gloo test runs on Linux", allow_module_level=True)
