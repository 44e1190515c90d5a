"""The command line as a new user meets it: help, version, lazy start, listings, logging
flags, devices and precisions, and resuming or skipping reproductions."""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import autoencoders as ae
from autoencoders import __version__, cli, devices
from autoencoders.config import load_experiment
from autoencoders.errors import ConfigError
from autoencoders.pipeline import finished_run, reproduce_all, resume_reproduction
from autoencoders.train import train

REPO = Path(__file__).resolve().parents[1]
FAST = ["train.epochs=2", "train.threads=1", "train.batch_size=16", "eval.iw_samples=5",
        "model.hidden=16", "model.latent_dim=2"]


def run_cli(*args, env_extra=None):
    import os

    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), **(env_extra or {})}
    return subprocess.run([sys.executable, "-m", "autoencoders", *args], capture_output=True,
                          text=True, env=env, timeout=120)


def test_no_arguments_prints_help_and_exits_0(capsys):
    assert cli.main([]) == 0
    out = capsys.readouterr().out
    assert "usage: autoencoders" in out and "reproduce" in out and "examples:" in out


def test_version(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out.strip() == f"autoencoders {__version__}"


def _actions(parser: argparse.ArgumentParser):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from _actions(sub)
        else:
            yield parser.prog, action


def test_every_option_and_argument_has_help():
    missing = [f"{prog}: {action.dest}" for prog, action in _actions(cli._parser())
               if not action.help]
    assert not missing


def test_evaluate_help_suggests_a_key_evaluate_accepts(capsys):
    with pytest.raises(SystemExit):
        cli.main(["evaluate", "--help"])
    out = capsys.readouterr().out
    assert "eval.iw_samples=1000" in out and "train.epochs" not in out


def test_help_does_not_import_torch():
    """``--help`` stays fast because nothing heavy is imported before parsing."""
    code = ("import sys\nimport autoencoders.cli as c\n"
            "for argv in ([], ['train', '--help'], ['reproduce', '--help']):\n"
            "    try:\n        c.main(argv)\n    except SystemExit:\n        pass\n"
            "print('TORCH' if 'torch' in sys.modules else 'NO TORCH')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={"PYTHONPATH": str(REPO / "src"), "PATH": "/usr/bin:/bin"},
                         timeout=60).stdout
    assert out.strip().endswith("NO TORCH")


def test_list_wraps_at_word_boundaries_within_the_terminal(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "70")
    assert cli.main(["list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert max(len(line) for line in lines) <= 70
    text = " ".join(line.strip() for line in lines)
    # every word of a description survives (nothing cut mid-word)
    desc = load_experiment("vae-mnist").description
    first = cli._first_sentence(desc)
    assert " ".join(first.split()) in text


def test_data_list_covers_every_dataset_with_readable_sizes(capsys):
    from autoencoders.data import DATASETS

    assert cli.main(["data", "list"]) == 0
    out = capsys.readouterr().out
    listed = {line.split()[0] for line in out.splitlines()[2:]}
    assert set(DATASETS) <= listed
    assert "0.0 MB" not in out and "28.9 KB" in out  # MNIST's train labels
    assert "generated from mnist" in out and "data.path" in out


def test_quiet_and_verbose_set_the_log_level(tmp_path, capsys):
    np.savez(tmp_path / "d.npz", x=np.zeros((20, 8, 8), np.uint8))
    base = ["train", "vae-mnist", "--set", "data.name=array", "--set",
            f"data.path={tmp_path / 'd.npz'}", "--runs-dir", str(tmp_path / "runs"),
            "--set", "train.epochs=1", "--set", "train.threads=1", "--set", "model.hidden=8"]
    assert cli.main([*base, "-q"]) == 0
    assert "run folder" not in capsys.readouterr().err
    assert logging.getLogger("autoencoders").level == logging.WARNING
    assert cli.main([*base, "--no-progress"]) == 0
    assert "run folder:" in capsys.readouterr().err
    run = sorted((tmp_path / "runs" / "vae-mnist").iterdir())[-1]
    assert cli.main(["train", "--resume", str(run), "--device", "cpu", "-q"]) == 0
    assert cli.main(["train", "--resume", str(run), "--device", "tpu"]) == 2
    assert "not a device" in capsys.readouterr().err
    assert cli.main(["-v", "list", "models"]) == 0
    assert logging.getLogger("autoencoders").level == logging.DEBUG


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on CPU machines")
def test_cuda_request_without_cuda_is_one_paragraph_exit_2(tmp_path, capsys):
    np.savez(tmp_path / "d.npz", x=np.zeros((20, 8, 8), np.uint8))
    code = cli.main(["train", "vae-mnist", "--device", "cuda", "--set", "data.name=array",
                     "--set", f"data.path={tmp_path / 'd.npz'}", "--runs-dir",
                     str(tmp_path / "runs")])
    err = capsys.readouterr().err
    assert code == 2 and "no CUDA device" in err and "--device cpu" in err
    assert err.count("\n") == 1 and not (tmp_path / "runs").exists()  # before any folder
    assert devices.resolve("auto") == torch.device("cpu")
    with pytest.raises(ConfigError, match="not a device"):
        load_experiment("vae-mnist", overrides=["train.device=gpu"])
    for command in ("train", "reproduce"):  # fp16 on a CPU: refused before any folder
        code = cli.main([command, "vae-mnist", "--device", "cpu", "--set",
                         "train.precision=fp16", "--set", "data.name=array", "--set",
                         f"data.path={tmp_path / 'd.npz'}", "--runs-dir", str(tmp_path / "r")])
        assert code == 2 and "needs a CUDA device" in capsys.readouterr().err
        assert not (tmp_path / "r").exists()


def test_precision_rules(monkeypatch, capsys):
    cpu = torch.device("cpu")
    with pytest.raises(ConfigError, match="needs a CUDA device"):
        devices.resolve_precision("fp16", cpu)
    assert devices.resolve_precision("fp32", cpu) == "fp32"
    monkeypatch.setattr(devices, "cpu_has_native_bf16", lambda: False)
    assert devices.resolve_precision("auto", cpu) == "fp32"
    capsys.readouterr()
    assert devices.resolve_precision("bf16", cpu) == "bf16"
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "slower than fp32" in err  # one warning line
    monkeypatch.setattr(devices, "cpu_has_native_bf16", lambda: True)
    assert devices.resolve_precision("auto", cpu) == "bf16"
    assert load_experiment("vae-mnist").train.precision == "fp32"  # numbers unchanged


def test_auto_precisions_resolve_per_machine_and_are_recorded(synthetic_mnist, monkeypatch,
                                                              tmp_path):
    """train.precision and eval.iw_precision = "auto" become bf16 only on a CPU with native
    BF16; eval.json, provenance.json and the report say what they became."""
    from autoencoders.pipeline import evaluate
    from autoencoders.provenance import training_precision, write_provenance
    from autoencoders.report import write_report

    cfg = load_experiment("vae-mnist", "quick", [*FAST, 'train.precision="auto"',
                                                  'eval.iw_precision="auto"'])
    monkeypatch.setattr(devices, "cpu_has_native_bf16", lambda: False)
    run = train(cfg, runs_dir=tmp_path, progress=False, log_epochs=False)
    assert training_precision(cfg.train) == "auto: fp32"
    assert evaluate(run, progress=False, device="cpu")["iw_precision"] == "fp32"
    write_provenance(run, "cmd", 1.0, "single")
    assert json.loads((run.path / "provenance.json").read_text())["precision"] == "auto: fp32"
    monkeypatch.setattr(devices, "cpu_has_native_bf16", lambda: True)
    assert training_precision(cfg.train) == "auto: bf16"
    assert evaluate(run, progress=False, device="cpu")["iw_precision"] == "bf16"
    assert json.loads((run.path / "eval.json").read_text())["iw_precision"] == "bf16"
    write_report(run)
    assert "- training precision: auto: bf16" in (run.path / "report.md").read_text()
    assert training_precision(load_experiment("vae-mnist").train) == "fp32"


def test_cpu_bf16_detection_reads_cpu_flags(monkeypatch, tmp_path):
    real = Path.read_text

    def fake(flags):
        def read_text(self, *a, **k):
            if str(self) == "/proc/cpuinfo":
                return f"processor\t: 0\nflags\t\t: fpu sse2 avx2 {flags}\n"
            return real(self, *a, **k)
        return read_text

    monkeypatch.setattr(Path, "read_text", fake("avx512f avx512_bf16"))
    assert devices.cpu_has_native_bf16()
    monkeypatch.setattr(Path, "read_text", fake("avx512f amx_tile amx_bf16"))
    assert devices.cpu_has_native_bf16()
    monkeypatch.setattr(Path, "read_text", fake("avx512f"))
    assert not devices.cpu_has_native_bf16()


def test_an_isa_cap_in_the_environment_turns_native_bf16_off(monkeypatch, capsys):
    """ONEDNN_MAX_CPU_ISA below AVX-512 BF16 (as `make bench-avx2` sets) makes the CPU count
    as one without BF16: "auto" picks fp32, and the provenance's features name the cap."""
    from autoencoders.provenance import cpu_features

    for k in devices.ISA_LIMIT_VARIABLES:
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setattr(devices, "cpuinfo_flags", lambda: {"avx2", "avx512f", "avx512_bf16"})
    assert devices.cpu_has_native_bf16() and devices.isa_limits() == {}
    assert devices.resolve_precision("auto", torch.device("cpu")) == "bf16"
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    assert not devices.cpu_has_native_bf16()
    assert devices.resolve_precision("auto", torch.device("cpu")) == "fp32"
    assert devices.isa_limits() == {"ONEDNN_MAX_CPU_ISA": "AVX2"}
    assert cpu_features().endswith("limited by ONEDNN_MAX_CPU_ISA=AVX2")
    capsys.readouterr()
    assert devices.resolve_precision("bf16", torch.device("cpu")) == "bf16"
    assert "ONEDNN_MAX_CPU_ISA=AVX2 caps oneDNN" in capsys.readouterr().err
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "avx512_core_amx")  # at or above BF16: native
    assert devices.cpu_has_native_bf16()


def _folder(root: Path, n: int = 40) -> Path:
    rng = np.random.default_rng(1)
    root.mkdir(parents=True)
    for i in range(n):
        Image.fromarray((rng.random((12, 12)) * 255).astype(np.uint8)).save(root / f"{i}.png")
    return root


def test_reproduce_resume_finishes_training_then_the_missing_steps(tmp_path, capsys):
    path = _folder(tmp_path / "imgs")
    cfg = load_experiment("vae-mnist", overrides=["data.name=folder", f"data.path={path}",
                                                  *FAST, "eval.figures=[\"samples\"]"])
    run = ae.Run.create(cfg, tmp_path / "runs")
    train(cfg, run, progress=False, stop_after_steps=3)  # "interrupted" in epoch 2
    assert len(run.metrics()) == 1 and not (run.path / "eval.json").exists()
    assert cli.main(["reproduce", "--resume", str(run.path), "--no-progress"]) == 0
    assert [row["epoch"] for row in run.metrics()] == [1, 2]
    assert (run.path / "eval.json").is_file() and (run.path / "report.md").is_file()
    assert (run.path / "figures" / "samples.png").is_file()
    assert cli.main(["evaluate", str(run.path), "--device", "cpu", "--no-progress",
                     "--set", "eval.iw_samples=3"]) == 0
    assert json.loads((run.path / "eval.json").read_text())["iw_samples"] == 3
    assert cli.main(["reproduce", "--resume", str(run.path), "--device", "cpu",
                     "--no-progress"]) == 0  # already complete: nothing is retrained
    assert [row["epoch"] for row in run.metrics()] == [1, 2]
    # resuming a finished reproduction changes nothing but the report
    before = (run.path / "eval.json").read_text()
    assert resume_reproduction(run.path, progress=False) is not None
    assert (run.path / "eval.json").read_text() == before
    assert cli.main(["reproduce", "vae-mnist", "--resume", str(run.path)]) == 2


def test_reproduce_all_only_and_skip_done(tmp_path, monkeypatch, capsys):
    path = _folder(tmp_path / "imgs")
    runs = tmp_path / "runs"
    overrides = ["data.name=folder", f"data.path={path}", *FAST, "eval.figures=[]"]
    done = ae.reproduce(load_experiment("vae-mnist", "quick", overrides), runs_dir=str(runs),
                        progress=False)
    assert finished_run(runs, "vae-mnist", "quick").path == done.path
    assert finished_run(runs, "vae-mnist", "full") is None
    with pytest.raises(ConfigError, match="unknown experiment"):
        reproduce_all(runs_dir=str(runs), only=["vae-mnits"])
    index = reproduce_all("quick", str(runs), progress=False, only=["vae-mnist"],
                          skip_done=True)
    assert sorted(p.name for p in (runs / "vae-mnist").iterdir()) == [done.path.name]
    text = index.read_text()
    assert "vae-mnist" in text and "vae-frey-2d" not in text  # --only
    assert "1 of 1 experiments ran" in text
    assert cli.main(["reproduce", "vae-mnist", "--skip-done"]) == 2
    assert "apply to `reproduce all`" in capsys.readouterr().err
    assert json.loads((done.path / "eval.json").read_text())["n_test"] == 4


def test_reproduce_all_runs_experiments_in_parallel_jobs(tmp_path, monkeypatch):
    """--jobs 2: two worker processes, each experiment's run folder and numbers as when run
    alone (same seed, same tiny data), and one index over both."""
    from autoencoders import config as configs

    path = _folder(tmp_path / "imgs")
    shipped = configs.load_experiment
    tiny = ["data.name=folder", f"data.path={path}", *FAST, "eval.figures=[]"]

    def load_tiny(name, profile="quick", overrides=()):
        return shipped(name, profile, [*tiny, *overrides])

    monkeypatch.setattr(configs, "load_experiment", load_tiny)
    runs = tmp_path / "runs"
    index = reproduce_all("quick", str(runs), progress=False, only=["vae-mnist", "vae-mnist-2d"],
                          jobs=2)
    text = index.read_text()
    assert "2 of 2 experiments ran" in text
    alone = ae.reproduce(load_tiny("vae-mnist"), runs_dir=str(tmp_path / "alone"),
                         progress=False)
    parallel = finished_run(runs, "vae-mnist", "quick")
    numbers = [{k: v for k, v in json.loads((r.path / "eval.json").read_text()).items()
                if k.startswith("test/")} for r in (parallel, alone)]
    assert numbers[0] and numbers[0].keys() == numbers[1].keys()
    for key in numbers[0]:  # one thread in both; the same seed gives the same numbers
        assert numbers[0][key] == pytest.approx(numbers[1][key], rel=1e-5), key
    assert finished_run(runs, "vae-mnist-2d", "quick") is not None
    from autoencoders.pipeline import _last_seconds  # the next --jobs run starts longest first
    assert 0 < _last_seconds(str(runs), "vae-mnist", "quick") < float("inf")
    # no run here: the shipped seconds decide (a fresh machine starts the longest first)
    assert _last_seconds(str(runs), "dae-filters", "quick") == pytest.approx(
        configs.shipped_seconds("quick")["dae-filters"])
    assert _last_seconds(str(runs), "dae-filters", "no-such-profile") == float("inf")
    with pytest.raises(ConfigError, match="jobs = 0"):
        reproduce_all("quick", str(runs), jobs=0)
    assert cli.main(["reproduce", "vae-mnist", "--jobs", "2"]) == 2
    assert cli.main(["reproduce", "all", "--jobs", "two"]) == 2


def test_reproduce_resume_completes_a_sweep(tmp_path):
    """A sweep interrupted after its first value: the finished child is kept, the missing
    steps and children are done, then the sweep's figures and report."""
    import shutil

    path = _folder(tmp_path / "imgs", n=30)
    cfg = load_experiment("dae-filters", overrides=[
        "data.name=folder", f"data.path={path}", "train.epochs=1", "train.threads=1",
        "model.hidden=8", "train.batch_size=10"])
    parent = ae.reproduce(cfg, runs_dir=str(tmp_path / "runs"), progress=False)
    labels = sorted(p.name for p in parent.path.iterdir() if (p / "config.json").is_file())
    assert len(labels) == len(cfg.sweep.values) >= 2
    kept = parent.path / labels[0]
    kept_eval = (kept / "eval.json").read_text()
    shutil.rmtree(parent.path / labels[-1])              # never started
    (parent.path / labels[0] / "eval.json").unlink()      # trained, not evaluated
    (parent.path / "report.md").unlink()
    kept_weights = (kept / "checkpoints" / "last.json").read_text()
    resume_reproduction(parent.path, progress=False)
    assert (kept / "checkpoints" / "last.json").read_text() == kept_weights  # not retrained
    numbers = [{k: v for k, v in json.loads(text).items() if k.startswith("test/")}
               for text in ((kept / "eval.json").read_text(), kept_eval)]
    assert numbers[0] == numbers[1] and numbers[0]  # evaluated again: the same numbers
    assert (parent.path / labels[-1] / "eval.json").is_file()
    assert (parent.path / "report.md").is_file()


def test_reproduce_resume_completes_a_seed_group(tmp_path):
    path = _folder(tmp_path / "imgs", n=30)
    cfg = load_experiment("vae-mnist", overrides=["data.name=folder", f"data.path={path}",
                                                  *FAST, "eval.figures=[]"])
    parent = ae.reproduce(cfg, runs_dir=str(tmp_path / "runs"), progress=False, seeds=2)
    (parent.path / "seed1" / "eval.json").unlink()
    (parent.path / "report.md").unlink()
    assert cli.main(["reproduce", "--resume", str(parent.path), "--no-progress"]) == 0
    assert (parent.path / "seed1" / "eval.json").is_file()
    assert (parent.path / "report.md").is_file()
    assert cli.main(["reproduce", "--resume", str(parent.path), "--seeds", "3"]) == 2


def test_reproduce_resume_starts_the_seeds_never_started(tmp_path):
    """Interrupted during its first seed, a --seeds group resumes into all of its seeds."""
    import shutil

    path = _folder(tmp_path / "imgs", n=30)
    cfg = load_experiment("vae-mnist", overrides=["data.name=folder", f"data.path={path}",
                                                  *FAST, "eval.figures=[]"])
    parent = ae.reproduce(cfg, runs_dir=str(tmp_path / "runs"), progress=False, seeds=3)
    done = json.loads((parent.path / "seed0" / "eval.json").read_text())
    for label in ("seed1", "seed2"):
        shutil.rmtree(parent.path / label)
    (parent.path / "report.md").unlink()
    assert cli.main(["reproduce", "--resume", str(parent.path), "--no-progress"]) == 0
    assert [p.name for p in ae.runs.seed_folders(parent.path, "eval.json")] == [
        "seed0", "seed1", "seed2"]
    assert json.loads((parent.path / "seed0" / "eval.json").read_text()) == done
    assert json.loads((parent.path / "seed2" / "config.json").read_text()
                      )["train"]["seed"] == 2
    report = (parent.path / "report.md").read_text()
    assert "seed2" in report and "Wall time:" in report
    assert "finished ?" not in report  # the group's provenance is written before its report


def test_resume_of_a_sweep_plots_only_the_figures_its_model_has(tmp_path):
    """A sweep child whose own config.json lists a figure its model lacks (written before
    sweeps left such figures out) resumes with the sweep's plan, not with an error."""
    path = _folder(tmp_path / "imgs", n=30)
    cfg = load_experiment("sbvae-mnist", overrides=[
        "data.name=folder", f"data.path={path}", "train.epochs=1", "train.threads=1",
        "train.batch_size=10", "eval.iw_samples=0", "eval.metrics=[]",
        'eval.figures=["samples", "sticks"]'])
    parent = ae.reproduce(cfg, runs_dir=str(tmp_path / "runs"), progress=False)
    gauss = [p for p in parent.path.iterdir() if (p / "config.json").is_file()
             and json.loads((p / "config.json").read_text())["model"]["name"] == "vae"]
    assert gauss, "the sweep should hold a Gaussian VAE beside the SB-VAE"
    child = gauss[0]
    raw = json.loads((child / "config.json").read_text())
    assert "sticks" not in raw["eval"]["figures"]
    raw["eval"]["figures"].append("sticks")  # as an older version of the sweep wrote it
    (child / "config.json").write_text(json.dumps(raw))
    (child / "figures" / "samples.png").unlink()
    (parent.path / "report.md").unlink()
    assert cli.main(["reproduce", "--resume", str(parent.path), "--no-progress"]) == 0
    assert (child / "figures" / "samples.png").is_file()
    assert not (child / "figures" / "sticks.png").exists()
    assert (parent.path / "report.md").is_file()


def test_train_of_a_sweep_experiment_makes_one_resumable_run(tmp_path, caplog):
    """`train` of an experiment with a [sweep] trains its base [model] once: it says so,
    writes a config without the sweep, and `train --resume` continues that folder."""
    path = _folder(tmp_path / "imgs", n=30)
    runs = tmp_path / "runs"
    args = ["train", "dae-filters", "--runs-dir", str(runs), "--no-progress",
            "--set", "data.name=folder", "--set", f"data.path={path}",
            "--set", "train.epochs=1", "--set", "train.threads=1",
            "--set", "model.hidden=8", "--set", "train.batch_size=10"]
    with caplog.at_level(logging.INFO, logger="autoencoders"):
        assert cli.main(args) == 0
    assert "is a sweep over" in caplog.text and "reproduce dae-filters" in caplog.text
    (run,) = (runs / "dae-filters").iterdir()
    config = json.loads((run / "config.json").read_text())
    assert config.get("sweep") is None and config.get("selection") is None
    assert cli.main(["train", "--resume", str(run), "--no-progress"]) == 0
