"""TensorBoard mirror of a run: scalars equal metrics.jsonl, resume purges, figures, and
the one-paragraph error when the package is absent."""

from __future__ import annotations

import json
import shutil
import sys

import numpy as np
import pytest

from autoencoders import cli, tensorboard_log
from autoencoders.config import load_experiment
from autoencoders.errors import UserError
from autoencoders.runs import Run
from autoencoders.train import train

TINY = [
    "model.latent_dim=4", "model.hidden=32", "model.init_std=0.0",
    "data.train_size=600", "data.valid_size=200", "train.epochs=3", "train.threads=1",
    "train.lr=0.003",
]


def events(folder):
    event_accumulator = pytest.importorskip(
        "tensorboard.backend.event_processing.event_accumulator")
    acc = event_accumulator.EventAccumulator(str(folder),
                                             size_guidance={"scalars": 0, "images": 0})
    acc.Reload()
    return acc


def assert_scalars_equal_metrics(run: Run):
    rows = run.metrics()
    acc = events(run.path / "tensorboard")
    expected_tags = {k for r in rows for k in r if k != "step"}
    assert set(acc.Tags()["scalars"]) == expected_tags
    for tag in expected_tags:
        got = acc.Scalars(tag)
        assert [e.step for e in got] == [r["step"] for r in rows], tag
        # TensorBoard stores float32: the very numbers of metrics.jsonl, rounded once
        assert [e.value for e in got] == [float(np.float32(r[tag])) for r in rows], tag


def test_cli_train_tensorboard_scalars_equal_metrics(shared_data, tmp_path, capsys):
    pytest.importorskip("tensorboard")
    args = ["train", "vae-mnist", "--tensorboard", "--no-progress", "--runs-dir",
            str(tmp_path), "--data-dir", str(shared_data)]
    for o in TINY:
        args += ["--set", o]
    assert cli.main(args) == 0
    run = Run.load(next(tmp_path.glob("*/*")))
    assert run.config.train.tensorboard is True
    assert [r["epoch"] for r in run.metrics()] == [1, 2, 3]
    assert_scalars_equal_metrics(run)
    assert {"train/loss", "train/rec", "train/kl", "valid/loss"} <= set(
        events(run.path / "tensorboard").Tags()["scalars"])
    # figures drawn from Python (as ae.reproduce does) are mirrored too, at the last step
    from autoencoders.pipeline import plot

    run.config.eval.figures = ["samples", "reconstructions"]
    assert len(plot(run)) == 2
    acc = events(run.path / "tensorboard")
    assert sorted(acc.Tags()["images"]) == ["figures/reconstructions", "figures/samples"]
    assert [e.step for e in acc.Images("figures/samples")] == [run.metrics()[-1]["step"]]


def test_resume_purges_events_after_the_checkpoint(shared_data, tmp_path):
    """A crash after epoch rows were logged, resumed from an older checkpoint: the rows
    (and the TensorBoard points) after that checkpoint are written once, not twice."""
    pytest.importorskip("tensorboard")
    cfg = load_experiment("vae-mnist", "quick", [*TINY, f'data.data_dir="{shared_data}"',
                                                 "train.tensorboard=true"])
    run = train(cfg, runs_dir=tmp_path, progress=False, log_epochs=False,
                stop_after_steps=8)  # 6 steps per epoch: epoch 1 logged, then 2 steps
    saved = tmp_path / "ckpt-at-8"
    shutil.copytree(run.ckpt_dir, saved)
    train(cfg, run, resume=True, progress=False, log_epochs=False)  # logs steps 12, 18
    shutil.rmtree(run.ckpt_dir)
    shutil.copytree(saved, run.ckpt_dir)  # as if the process died right after step 8
    shutil.rmtree(saved)
    train(cfg, run, resume=True, progress=False, log_epochs=False)
    assert [r["step"] for r in run.metrics()] == [6, 12, 18]
    assert_scalars_equal_metrics(run)


def test_figures_become_images_at_the_last_step(tmp_path):
    pytest.importorskip("tensorboard")
    from PIL import Image

    for folder in (tmp_path, tmp_path / "child"):  # a sweep: parent and child runs
        (folder / "figures").mkdir(parents=True)
        Image.new("RGBA", (30, 20), (10, 200, 30, 255)).save(folder / "figures" / "grid.png")
    (tmp_path / "child" / "metrics.jsonl").write_text(
        json.dumps({"epoch": 1, "step": 7}) + "\n" + json.dumps({"epoch": 2, "step": 14}) + "\n")
    written = tensorboard_log.log_figures(tmp_path, recursive=True)
    assert len(written) == 2
    for folder, step in ((tmp_path, 0), (tmp_path / "child", 14)):
        images = events(folder / "tensorboard").Images("figures/grid")
        assert [(e.step, e.width, e.height) for e in images] == [(step, 30, 20)]


@pytest.fixture
def no_tensorboard(monkeypatch):
    """Make ``import tensorboard`` fail, as on a machine without the package."""
    for name in list(sys.modules):
        if name == "tensorboard" or name.startswith(("tensorboard.", "torch.utils.tensorboard")):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "tensorboard", None)
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)


def test_missing_tensorboard_is_one_paragraph_and_exit_2(no_tensorboard, shared_data,
                                                          tmp_path, capsys):
    args = ["train", "vae-mnist", "--tensorboard", "--runs-dir", str(tmp_path / "runs"),
            "--data-dir", str(shared_data)]
    assert cli.main(args) == 2
    err = capsys.readouterr().err
    assert "pip install autoencoders[tensorboard]" in err
    assert "Traceback" not in err and err.count("\n") == 1
    assert not (tmp_path / "runs").exists()  # failed before making a run folder
    assert cli.main(["reproduce", "vae-mnist", "--tensorboard", "--runs-dir",
                     str(tmp_path / "runs")]) == 2
    assert "pip install autoencoders[tensorboard]" in capsys.readouterr().err
    cfg = load_experiment("vae-mnist", "quick", ["train.tensorboard=true"])
    with pytest.raises(UserError, match=r"autoencoders\[tensorboard\]"):
        train(cfg, runs_dir=tmp_path / "runs", progress=False)
    assert not (tmp_path / "runs").exists()


def test_off_by_default_and_no_folder(shared_data, tmp_path):
    cfg = load_experiment("vae-mnist", "quick", [*TINY, "train.epochs=1",
                                                 f'data.data_dir="{shared_data}"'])
    assert cfg.train.tensorboard is False
    run = train(cfg, runs_dir=tmp_path, progress=False, log_epochs=False)
    assert not (run.path / "tensorboard").exists()
