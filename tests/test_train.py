"""The trainer: determinism, bit-identical resume (also after SIGKILL), NaN guard."""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from autoencoders import devices
from autoencoders.config import load_experiment
from autoencoders.errors import TrainingDiverged
from autoencoders.runs import Run
from autoencoders.train import CompiledLoss, train

TINY = [
    "model.latent_dim=4", "model.hidden=32", "model.init_std=0.0",
    "data.train_size=600", "data.valid_size=200", "train.epochs=3", "train.threads=1",
    "train.lr=0.003",
]


def tiny_config(shared_data, *extra):
    return load_experiment("vae-mnist", "quick",
                           [*TINY, f'data.data_dir="{shared_data}"', *extra])


def weights(run: Run) -> dict[str, torch.Tensor]:
    return run.load_checkpoint()[0]


def assert_same_weights(a: dict, b: dict):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), f"{k} differs"


def test_same_seed_same_numbers(shared_data, tmp_path):
    cfg = tiny_config(shared_data)
    a = train(cfg, runs_dir=tmp_path / "a", progress=False)
    b = train(cfg, runs_dir=tmp_path / "b", progress=False)
    assert [r["epoch"] for r in a.metrics()] == [1, 2, 3]
    strip = [{k: v for k, v in r.items() if k != "time"} for r in a.metrics()]
    assert strip == [{k: v for k, v in r.items() if k != "time"} for r in b.metrics()]
    assert_same_weights(weights(a), weights(b))
    c = train(tiny_config(shared_data, "train.seed=1"), runs_dir=tmp_path / "c", progress=False)
    assert not torch.equal(weights(a)["encoder.0.weight"], weights(c)["encoder.0.weight"])


def test_metrics_have_every_term_and_improve(shared_data, tmp_path):
    run = train(tiny_config(shared_data), runs_dir=tmp_path, progress=False)
    rows = run.metrics()
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    for key in ("train/loss", "train/rec", "train/kl", "valid/loss", "valid/rec", "valid/kl",
                "samples", "time"):
        assert key in rows[0]
    assert rows[-1]["valid/loss"] < rows[0]["valid/loss"]
    assert abs(rows[0]["train/loss"] - rows[0]["train/rec"] - rows[0]["train/kl"]) < 1e-3
    assert rows[-1]["samples"] == 3 * 600


@pytest.mark.parametrize("stop_after", [1, 6, 8, 13])
def test_resume_is_bit_identical(shared_data, tmp_path, stop_after):
    cfg = tiny_config(shared_data, "data.binarize=\"dynamic\"")
    ref = train(cfg, runs_dir=tmp_path / "ref", progress=False)
    run = train(cfg, runs_dir=tmp_path / "cut", progress=False, stop_after_steps=stop_after)
    assert json.loads((run.ckpt_dir / "last.json").read_text())["step"] == stop_after
    train(cfg, run, resume=True, progress=False)
    assert_same_weights(weights(ref), weights(run))
    strip = [{k: v for k, v in r.items() if k != "time"} for r in ref.metrics()]
    assert strip == [{k: v for k, v in r.items() if k != "time"} for r in run.metrics()]


@pytest.mark.parametrize("stop_after", [2, 3, 5])
def test_resume_is_bit_identical_without_the_real_data(synthetic_mnist, tmp_path,
                                                        stop_after):
    """The same property on synthetic data (3 steps per epoch), so the core suite checks
    resume without ../shared/data: mid-epoch, at an epoch's end, in the last epoch."""
    cfg = load_experiment("vae-mnist", "quick", [
        "model.latent_dim=3", "model.hidden=16", "train.epochs=2", "train.batch_size=32",
        "train.threads=1", "data.valid_size=32", "data.binarize=\"dynamic\""])
    ref = train(cfg, runs_dir=tmp_path / "ref", progress=False, log_epochs=False)
    run = train(cfg, runs_dir=tmp_path / "cut", progress=False, log_epochs=False,
                stop_after_steps=stop_after)
    assert json.loads((run.ckpt_dir / "last.json").read_text())["step"] == stop_after
    train(cfg, run, resume=True, progress=False, log_epochs=False)
    assert_same_weights(weights(ref), weights(run))
    strip = [{k: v for k, v in r.items() if k != "time"} for r in ref.metrics()]
    assert len(strip) == 2
    assert strip == [{k: v for k, v in r.items() if k != "time"} for r in run.metrics()]


KILL_EXTRA = ["train.epochs=30", "train.checkpoint_every=1"]


@pytest.fixture(scope="module")
def uninterrupted(shared_data, tmp_path_factory):
    cfg = tiny_config(shared_data, *KILL_EXTRA)
    return train(cfg, runs_dir=tmp_path_factory.mktemp("ref"), progress=False, log_epochs=False)


@pytest.mark.parametrize("kill_after_step", [3, 17, 42, 88, 131])
def test_resume_after_sigkill_is_bit_identical(shared_data, tmp_path, uninterrupted,
                                               kill_after_step):
    """A real ``kill -9`` of a training process that checkpoints every step, so the kill
    often lands inside a checkpoint write; five different points of the run."""
    run_dir = tmp_path / "killed"
    args = [sys.executable, "-m", "autoencoders", "train", "vae-mnist", "--no-progress",
            "--runs-dir", str(run_dir)]
    for o in [*TINY, *KILL_EXTRA]:
        args += ["--set", o]
    args += ["--data-dir", str(shared_data)]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    killed_at = None
    while time.time() < deadline and proc.poll() is None:
        manifests = list(run_dir.glob("*/*/checkpoints/last.json"))
        if manifests:
            try:
                step = json.loads(manifests[0].read_text())["step"]
            except (json.JSONDecodeError, OSError):
                step = 0
            if step >= kill_after_step:
                os.kill(proc.pid, signal.SIGKILL)
                killed_at = step
                break
        time.sleep(0.002)
    proc.wait(timeout=30)
    assert killed_at is not None, f"process ended before the kill: {proc.stderr.read()!r}"
    run = Run.load(next(run_dir.glob("*/*")))
    train(run.config, run, resume=True, progress=False, log_epochs=False)
    assert_same_weights(weights(uninterrupted), weights(run))
    assert len(run.metrics()) == 30


def test_nan_stops_with_message_and_keeps_checkpoint(shared_data, tmp_path, monkeypatch):
    from autoencoders.models.vae import VAE

    real_loss = VAE.loss
    calls = {"n": 0}

    def flaky(self, x):
        out = real_loss(self, x)
        if self.training:
            calls["n"] += 1
            if calls["n"] == 9:  # epoch 2, step 3 (6 steps per epoch)
                out.total = out.total * float("nan")
        return out

    monkeypatch.setattr(VAE, "loss", flaky)
    cfg = tiny_config(shared_data)
    with pytest.raises(TrainingDiverged) as e:
        train(cfg, runs_dir=tmp_path, progress=False)
    msg = str(e.value)
    assert "epoch 2, step 3" in msg and "loss=nan" in msg and "train.lr" in msg
    run = Run.load(next(Path(tmp_path).glob("*/*")))
    man = json.loads((run.ckpt_dir / "last.json").read_text())
    assert man["step"] == 6 and man["epoch"] == 1
    w, _ = run.load_checkpoint()
    assert all(torch.isfinite(t).all() for t in w.values())


def test_tampered_checkpoint_is_refused(shared_data, tmp_path):
    from autoencoders.errors import CheckpointError

    run = train(tiny_config(shared_data, "train.epochs=1"), runs_dir=tmp_path, progress=False)
    man = json.loads((run.ckpt_dir / "last.json").read_text())
    p = run.ckpt_dir / man["model"]
    data = bytearray(p.read_bytes())
    data[-10] ^= 0xFF
    p.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="SHA-256"):
        run.load_checkpoint()
    p.write_bytes(bytes(data[: len(data) // 2]))
    with pytest.raises(CheckpointError, match=str(p.name)):
        run.load_checkpoint()


def test_bf16_training_tracks_fp32(shared_data, tmp_path):
    """Opt-in bf16 autocast: matmuls in bfloat16, weights and loss sums in float32."""
    fp32 = train(tiny_config(shared_data), runs_dir=tmp_path / "a", progress=False)
    bf16 = train(tiny_config(shared_data, 'train.precision="bf16"'), runs_dir=tmp_path / "b",
                 progress=False)
    a, b = fp32.metrics()[-1], bf16.metrics()[-1]
    assert abs(a["valid/loss"] - b["valid/loss"]) / a["valid/loss"] < 0.03, (a, b)
    assert all(t.dtype == torch.float32 for t in weights(bf16).values())


def test_train_state_round_trips_every_field_whole():
    """What a checkpoint writes is every field of TrainState, and resume reads every one
    back: a field cannot be added on one side only."""
    from dataclasses import fields

    from autoencoders.train import TrainState

    def fresh():
        model = torch.nn.Linear(3, 2)
        return TrainState(model, torch.optim.Adam(model.parameters()), torch.Generator())

    a = fresh()
    a.model(torch.ones(4, 3)).sum().backward()
    a.optimizer.step()
    a.data_gen.manual_seed(5)
    a.epoch, a.step_in_epoch, a.global_step, a.samples = 3, 2, 17, 1700
    a.elapsed, a.best, a.bad_epochs, a.finished = 1.5, 0.25, 1, True
    a.perm, a.acc = torch.randperm(10), torch.arange(3.0)
    saved = a.to_checkpoint()
    plain = {f.name for f in fields(TrainState)} - set(TrainState._OBJECTS)
    assert set(saved) == plain | {"optimizer", "rng"}
    from autoencoders.runs import STATE_KEYS  # what loading checks a state file holds

    assert set(STATE_KEYS) <= set(saved)
    b = fresh()
    b.load_checkpoint(saved)
    for name in plain:
        va, vb = getattr(a, name), getattr(b, name)
        assert torch.equal(va, vb) if isinstance(va, torch.Tensor) else va == vb, name
    assert torch.equal(a.data_gen.get_state(), b.data_gen.get_state())
    assert str(a.optimizer.state_dict()) == str(b.optimizer.state_dict())


def test_a_models_data_statistics_are_set_once_and_resume_with_it(synthetic_mnist, tmp_path):
    """The ``data_init`` hook (the centred k-sparse AE's mean image) runs before the first
    step of a new run, is saved with the weights, and a resumed run keeps it: resume is
    still bit-identical."""
    cfg = load_experiment("ksparse-classify", "quick", [
        "model.hidden=32", "model.k=4", "model.k_start=8", "model.center=true",
        "train.epochs=2", "train.batch_size=32", "train.threads=1", "data.valid_size=32",
        "eval.metrics=[]"])
    ref = train(cfg, runs_dir=tmp_path / "ref", progress=False, log_epochs=False)
    mean = weights(ref)["input_mean"]
    assert mean.abs().sum() > 0
    run = train(cfg, runs_dir=tmp_path / "cut", progress=False, log_epochs=False,
                stop_after_steps=3)
    train(cfg, run, resume=True, progress=False, log_epochs=False)
    assert_same_weights(weights(ref), weights(run))


def test_compiled_loss_trains_like_eager(synthetic_mnist, tmp_path, caplog):
    """``train.compile`` (torch.compile of the loss, forward and backward) reaches the
    weights of eager training within float32 rounding on the SB-VAE, the model it is
    for (sampling, KL table), including the last, smaller batch of each epoch."""
    if shutil.which("g++") is None and shutil.which("c++") is None:
        pytest.skip("Inductor on the CPU needs a C++ compiler")
    base = ["model.truncation=6", "model.hidden=16", "train.epochs=2", "train.batch_size=40",
            "train.threads=1", "data.valid_size=32"]
    cfg = load_experiment("sbvae-mnist", "quick", base)
    eager = train(cfg, runs_dir=tmp_path / "eager", progress=False, log_epochs=False)
    with caplog.at_level(logging.WARNING, logger="autoencoders"):
        fused = train(load_experiment("sbvae-mnist", "quick", [*base, "train.compile=true"]),
                      runs_dir=tmp_path / "compiled", progress=False, log_epochs=False)
    assert not [r for r in caplog.records if "train.compile" in r.getMessage()]  # compiled
    a, b = weights(eager), weights(fused)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.allclose(a[k], b[k], rtol=1e-3, atol=1e-4), k
    losses = [[r["train/loss"] for r in run.metrics()] for run in (eager, fused)]
    assert losses[0] == pytest.approx(losses[1], rel=1e-4)


def test_compile_failure_falls_back_to_eager_with_one_warning(monkeypatch, caplog):
    """Where torch.compile cannot work (no C++ compiler), the first call says so once and
    every call returns the eager loss; an error eager mode raises too still propagates."""
    def broken_compile(fn, **_):
        def call(*args):
            raise RuntimeError("InvalidCxxCompiler: No working C++ compiler found")
        return call

    monkeypatch.setattr(torch, "compile", broken_compile)
    calls = []

    def loss(x):
        calls.append(x)
        if x is None:
            raise ValueError("bad batch")
        return x * 2

    wrapped = CompiledLoss(loss)
    with caplog.at_level(logging.WARNING, logger="autoencoders"):
        assert wrapped(3) == 6 and wrapped(4) == 8
    warnings = [r for r in caplog.records if "train.compile" in r.getMessage()]
    assert len(warnings) == 1 and "No working C++ compiler" in warnings[0].getMessage()
    assert calls == [3, 4]
    with pytest.raises(ValueError, match="bad batch"):
        wrapped(None)
    # a model error under a working compiler: raised as eager raises it, compile kept
    monkeypatch.setattr(torch, "compile", lambda fn, **_: fn)
    caplog.clear()
    working = CompiledLoss(loss)
    with caplog.at_level(logging.WARNING, logger="autoencoders"), \
            pytest.raises(ValueError, match="bad batch"):
        working(None)
    assert working.compiled is not None and not caplog.records
    assert working(5) == 10


def test_compile_is_skipped_under_an_aten_capability_cap_below_the_cpu(monkeypatch, caplog):
    """torch.compile's CPU code computed garbage under ATEN_CPU_CAPABILITY=avx2 on an
    AVX-512 CPU (torch 2.13), so train.compile trains eagerly there, saying why once."""
    monkeypatch.setattr(devices, "cpuinfo_flags", lambda: {"avx2", "avx512f"})
    monkeypatch.setenv("ATEN_CPU_CAPABILITY", "avx2")
    assert devices.inductor_cap_mismatch() == "avx2"
    with caplog.at_level(logging.WARNING, logger="autoencoders"):
        wrapped = CompiledLoss(lambda x: x * 2)
        assert wrapped.compiled is None and wrapped(3) == 6
    (warning,) = [r.getMessage() for r in caplog.records if "train.compile" in r.getMessage()]
    assert "ATEN_CPU_CAPABILITY=avx2" in warning and "Unset" in warning
    monkeypatch.setenv("ATEN_CPU_CAPABILITY", "avx512")
    assert devices.inductor_cap_mismatch() == ""
    monkeypatch.setattr(devices, "cpuinfo_flags", lambda: {"avx2"})
    monkeypatch.setenv("ATEN_CPU_CAPABILITY", "avx2")
    assert devices.inductor_cap_mismatch() == ""  # an AVX2 CPU at its own level
    monkeypatch.delenv("ATEN_CPU_CAPABILITY")
    assert devices.inductor_cap_mismatch() == ""
