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
def world(tmp_path_factory, tiny_runs):
    """A real run folder to protect, damaged copies of data files, and a run folder held
    (locked) by another process for the whole module."""
    from conftest import SHARED_DATA

    root = tmp_path_factory.mktemp("world")
    runs = root / "runs"
    run = runs / "vae-mnist" / tiny_runs["done"].name
    shutil.copytree(tiny_runs["done"], run)
    partial = root / "partial" / "vae-mnist" / tiny_runs["partial"].name
    shutil.copytree(tiny_runs["partial"], partial)
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
    # a data file that is a folder (unreadable as a file)
    isdir = root / "isdir" / "mnist"
    isdir.mkdir(parents=True)
    for f in (SHARED_DATA / "mnist").iterdir():
        (isdir / f.name).symlink_to(f)
    (isdir / "train-images-idx3-ubyte.gz").unlink()
    (isdir / "train-images-idx3-ubyte.gz").mkdir()
    # CelebA: one corrupt JPEG; an attribute file that is not UTF-8
    if (SHARED_DATA / "celeba_sample").is_dir():
        for name in ("celeba-jpeg", "celeba-attr"):
            shutil.copytree(SHARED_DATA / "celeba_sample", root / name / "celeba_sample")
        jpg = root / "celeba-jpeg" / "celeba_sample" / "000007.jpg"
        jpg.write_bytes(jpg.read_bytes()[:300])
        attr = root / "celeba-attr" / "celeba_sample" / "list_attr_celeba.txt"
        attr.write_bytes(b"\xff\xfe" + attr.read_bytes())
    # a read-only place: as root chmod does not stop writes, so use a path under a file
    blocker = root / "a-file"
    blocker.write_text("not a folder")
    # a victim file outside every run: a hostile manifest names it
    victim = root / "victim.safetensors"
    victim.write_bytes(b"precious bytes")
    # a run folder held by another process
    held = root / "held" / run.name
    shutil.copytree(run, held)
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\nfrom autoencoders.runs import Run\n"
         "with Run.load(sys.argv[1]).lock():\n print('locked', flush=True)\n time.sleep(600)",
         str(held)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    yield {"data": SHARED_DATA, "root": root, "runs": runs, "run": run, "bad": bad,
           "blocker": blocker, "partial": partial, "victim": victim, "held": held,
           "holder_pid": holder.pid}
    holder.kill()
    holder.wait()


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


# --------------------------------------------------------------------------------------
# The second table: names that become paths, damaged run files, locks, bounds, the API.
# Each row prepares what it needs (a damaged copy of the run, a monkeypatched disk) and
# returns the call (CLI argv, or a function for the API) and the words the message must
# hold. The test then checks exit status 2, one paragraph, no traceback, and that every
# file that existed before the call (the world, the package's shipped models) is
# byte-identical afterwards.

ROWS: dict = {}


def row(name):
    def register(fn):
        ROWS[name] = fn
        return fn
    return register


def _copy(w, ctx, src=None) -> Path:
    dst = ctx["tmp"] / "run"
    shutil.copytree(src or w["run"], dst)
    return dst


def _manifest(run: Path) -> dict:
    return json.loads((run / "checkpoints" / "last.json").read_text())


def _write_manifest(run: Path, man) -> None:
    (run / "checkpoints" / "last.json").write_text(json.dumps(man))


def _sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def _train_args(w, ctx, *extra, experiment="vae-mnist"):
    return ["train", experiment, "--no-progress", "--data-dir", str(w["data"]),
            "--runs-dir", str(ctx["tmp"] / "scratch"), *tiny_args(*extra)]


def _sweep_args(w, ctx, *extra):
    out = ["reproduce", "vae-mnist-nz-sweep", "--no-progress", "--data-dir", str(w["data"]),
           "--runs-dir", str(ctx["tmp"] / "scratch")]
    for o in extra:
        out += ["--set", o]
    return out


# -- names that become paths ----------------------------------------------------------

@row("sweep labels repeated")
def _(w, ctx):
    return _sweep_args(w, ctx, "sweep.values=[2, 3]", 'sweep.labels=["same", "same"]'), \
        ["'same'", "used twice"]


@row("sweep labels equal but for case")
def _(w, ctx):
    return _sweep_args(w, ctx, "sweep.values=[2, 3]", 'sweep.labels=["Run", "run"]'), \
        ["used twice"]


@row("sweep label absolute path")
def _(w, ctx):
    target = str(w["runs"] / "vae-mnist")
    return _sweep_args(w, ctx, "sweep.values=[2]", f'sweep.labels=["{target}"]'), \
        ["sweep label", "path separator"]


@row("sweep label ../")
def _(w, ctx):
    return _sweep_args(w, ctx, "sweep.values=[2]", 'sweep.labels=["../../escape"]'), \
        ["sweep label", "path separator"]


@row("sweep label ..")
def _(w, ctx):
    return _sweep_args(w, ctx, "sweep.values=[2]", 'sweep.labels=[".."]'), ["starts with '.'"]


@row("sweep label with a pipe")
def _(w, ctx):
    return _sweep_args(w, ctx, "sweep.values=[2]", 'sweep.labels=["a|b"]'), ["'|'"]


@row("sweep label with a slash")
def _(w, ctx):
    return _sweep_args(w, ctx, "sweep.values=[2]", 'sweep.labels=["k/10"]'), ["path separator"]


@row("sweep label empty")
def _(w, ctx):
    return _sweep_args(w, ctx, "sweep.values=[2]", 'sweep.labels=[""]'), ["is empty"]


@row("sweep labels fewer than values")
def _(w, ctx):
    return _sweep_args(w, ctx, "sweep.values=[2, 3]", 'sweep.labels=["a"]'), \
        ["one label per value"]


@row("sweep of tables without labels")
def _(w, ctx):
    return _sweep_args(w, ctx, 'sweep.key="model"', "sweep.labels=[]",
                       'sweep.values=[{name="vae", latent_dim=2, hidden=16}]'), \
        ["[sweep] labels"]


@row("experiment name ../../x")
def _(w, ctx):
    return _train_args(w, ctx, 'experiment.name="../../x"'), ["experiment name", "separator"]


@row("experiment name absolute")
def _(w, ctx):
    return _train_args(w, ctx, f'experiment.name="{w["root"]}"'), ["experiment name"]


@row("experiment name hidden")
def _(w, ctx):
    return _train_args(w, ctx, 'experiment.name=".hidden"'), ["starts with '.'"]


@row("experiment name not a string")
def _(w, ctx):
    return _train_args(w, ctx, "experiment.name=3"), ["experiment.name must be a string"]


@row("experiment file naming a path")
def _(w, ctx):
    toml = ctx["tmp"] / "mine.toml"
    toml.write_text('[experiment]\nname = "a/b"\n[model]\nname = "vae"\n')
    return ["train", str(toml), "--runs-dir", str(ctx["tmp"] / "scratch")], ["'a/b'"]


@row("export name ../")
def _(w, ctx):
    return ["export", str(w["run"]), "../../vae-mnist-2d"], ["export name", "path separator"]


@row("export name absolute")
def _(w, ctx):
    return ["export", str(w["run"]), str(w["root"] / "x")], ["export name"]


@row("export name empty")
def _(w, ctx):
    return ["export", str(w["run"]), ""], ["export name", "empty"]


@row("export name with a pipe")
def _(w, ctx):
    return ["export", str(w["run"]), "a|b"], ["'|'"]


@row("export into the package")
def _(w, ctx):
    from autoencoders.pretrained import pretrained_dir

    return ["export", str(w["run"]), "x", "--out-dir", str(pretrained_dir())], \
        ["Refusing", "shipped models"]


@row("export over an existing file")
def _(w, ctx):
    run = _copy(w, ctx)
    (run / "export").mkdir()
    (run / "export" / "mine.safetensors").write_bytes(b"an earlier export")
    return ["export", str(run), "mine"], ["already exists", "--force"]


@row("export under a file")
def _(w, ctx):
    return ["export", str(w["run"]), "x", "--out-dir", str(w["blocker"] / "out")], \
        ["Could not write", "Nothing was replaced"]


@row("export disk full")
def _(w, ctx):
    pre = sys.modules["autoencoders.pretrained"]  # the package exports a function of that name

    def full(*a, **k):
        raise OSError(28, "No space left on device")
    ctx["mp"].setattr(pre, "save_file", full)
    return ["export", str(w["run"]), "x", "--out-dir", str(ctx["tmp"] / "out")], \
        ["No space left on device", "Nothing was replaced"]


# -- the checkpoint manifest ----------------------------------------------------------

@row("manifest names an absolute path")
def _(w, ctx):
    run = _copy(w, ctx)
    man = _manifest(run)
    man["sha256"][str(w["victim"])] = _sha(w["victim"])
    man["model"] = str(w["victim"])
    _write_manifest(run, man)
    return ["train", "--resume", str(run), "--no-progress"], ["last.json", "path separator"]


@row("manifest names ../")
def _(w, ctx):
    run = _copy(w, ctx)
    man = _manifest(run)
    man["state"] = "../../victim.safetensors"
    _write_manifest(run, man)
    return ["evaluate", str(run)], ["path separator"]


@row("manifest names another file")
def _(w, ctx):
    run = _copy(w, ctx)
    man = _manifest(run)
    man["model"] = "config.json"
    _write_manifest(run, man)
    return ["evaluate", str(run)], ["not one of this folder's checkpoint files"]


@row("manifest without sha256")
def _(w, ctx):
    run = _copy(w, ctx)
    man = _manifest(run)
    del man["sha256"]
    _write_manifest(run, man)
    return ["train", "--resume", str(run)], ["'sha256' is missing"]


@row("manifest without model")
def _(w, ctx):
    run = _copy(w, ctx)
    man = _manifest(run)
    del man["model"]
    _write_manifest(run, man)
    return ["plot", str(run)], ["'model' is missing"]


@row("manifest is a list")
def _(w, ctx):
    run = _copy(w, ctx)
    _write_manifest(run, [1, 2])
    return ["report", str(run)], ["not a JSON object"]


@row("manifest not JSON")
def _(w, ctx):
    run = _copy(w, ctx)
    (run / "checkpoints" / "last.json").write_text("{")
    return ["evaluate", str(run)], ["not JSON"]


@row("manifest epoch a string")
def _(w, ctx):
    run = _copy(w, ctx)
    man = _manifest(run)
    man["epoch"] = "1"
    _write_manifest(run, man)
    return ["train", "--resume", str(run)], ["'epoch' is missing or not an integer"]


@row("checkpoint file missing")
def _(w, ctx):
    run = _copy(w, ctx)
    (run / "checkpoints" / _manifest(run)["model"]).unlink()
    return ["evaluate", str(run)], ["is missing"]


@row("state file of random bytes")
def _(w, ctx):
    run = _copy(w, ctx)
    man = _manifest(run)
    p = run / "checkpoints" / man["state"]
    p.write_bytes(os.urandom(4096))
    man["sha256"][man["state"]] = _sha(p)
    _write_manifest(run, man)
    return ["train", "--resume", str(run)], ["not a training state", "damaged or replaced"]


@row("state file lacks keys")
def _(w, ctx):
    run = _copy(w, ctx)
    man = _manifest(run)
    p = run / "checkpoints" / man["state"]
    torch.save({"epoch": 1}, p)
    man["sha256"][man["state"]] = _sha(p)
    _write_manifest(run, man)
    return ["train", "--resume", str(run)], ["lacks optimizer"]


@row("state file is a list")
def _(w, ctx):
    run = _copy(w, ctx)
    man = _manifest(run)
    p = run / "checkpoints" / man["state"]
    torch.save([1, 2, 3], p)
    man["sha256"][man["state"]] = _sha(p)
    _write_manifest(run, man)
    return ["train", "--resume", str(run)], ["not a training state"]


@row("weights file of random bytes")
def _(w, ctx):
    run = _copy(w, ctx)
    man = _manifest(run)
    p = run / "checkpoints" / man["model"]
    p.write_bytes(os.urandom(256))
    man["sha256"][man["model"]] = _sha(p)
    _write_manifest(run, man)
    return ["evaluate", str(run), "--set", 'eval.checkpoint="last"'], ["cannot be read"]


# -- other damaged run files ------------------------------------------------------------

@row("metrics line in the middle not JSON")
def _(w, ctx):
    run = _copy(w, ctx, w["partial"])
    m = run / "metrics.jsonl"
    m.write_text("garbage\n" + m.read_text())
    return ["train", "--resume", str(run), "--no-progress"], ["line 1", "not JSON",
                                                               "nothing was changed"]


@row("metrics line not an object")
def _(w, ctx):
    run = _copy(w, ctx)
    (run / "metrics.jsonl").write_text("[1, 2]\n")
    return ["report", str(run)], ["line 1", "not a JSON object"]


@row("metrics row without samples")
def _(w, ctx):
    run = _copy(w, ctx)
    m = run / "metrics.jsonl"
    rows = [json.loads(x) for x in m.read_text().splitlines()]
    del rows[0]["samples"]
    m.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return ["report", str(run)], ["lacks 'samples'"]


@row("metrics not UTF-8")
def _(w, ctx):
    run = _copy(w, ctx)
    (run / "metrics.jsonl").write_bytes(b"\xff\xfe{}\n")
    return ["report", str(run)], ["not UTF-8"]


@row("config.json is a list")
def _(w, ctx):
    run = _copy(w, ctx)
    (run / "config.json").write_text("[]")
    return ["evaluate", str(run)], ["config.json", "table of sections"]


@row("config.json experiment is a list")
def _(w, ctx):
    run = _copy(w, ctx)
    cfg = json.loads((run / "config.json").read_text())
    cfg["experiment"] = []
    (run / "config.json").write_text(json.dumps(cfg))
    return ["plot", str(run)], ["[experiment] must be a table"]


@row("eval.json is a list")
def _(w, ctx):
    run = _copy(w, ctx)
    (run / "eval.json").write_text("[]")
    return ["report", str(run)], ["eval.json", "autoencoders evaluate"]


@row("commands.log is a folder")
def _(w, ctx):
    run = _copy(w, ctx)
    (run / "commands.log").unlink(missing_ok=True)
    (run / "commands.log").mkdir()
    return ["evaluate", str(run)], ["commands.log"]


@row("report.md is a folder")
def _(w, ctx):
    run = _copy(w, ctx)
    (run / "report.md").unlink(missing_ok=True)
    (run / "report.md").mkdir()
    return ["report", str(run)], ["Could not write", "report.md", "Nothing was lost"]


@row(".lock is a folder")
def _(w, ctx):
    run = _copy(w, ctx)
    (run / ".lock").unlink(missing_ok=True)
    (run / ".lock").mkdir()
    return ["evaluate", str(run)], ["Cannot open", ".lock"]


@row("config.json is a folder")
def _(w, ctx):
    run = _copy(w, ctx)
    (run / "config.json").unlink()
    (run / "config.json").mkdir()
    return ["evaluate", str(run)], ["not a run folder"]


@row("best weights are junk")
def _(w, ctx):
    run = _copy(w, ctx)
    (run / "checkpoints" / "best.safetensors").write_bytes(b"junk")
    return ["evaluate", str(run)], ["best.safetensors", "cannot be read"]


@row("plot a run without checkpoint")
def _(w, ctx):
    from autoencoders.config import load_experiment
    from autoencoders.runs import Run

    run = Run.create(load_experiment("vae-mnist", "quick", TINY), path=ctx["tmp"] / "fresh")
    return ["plot", str(run.path)], ["no checkpoint yet"]


@row("resume a sweep's folder")
def _(w, ctx):
    from autoencoders.config import load_experiment
    from autoencoders.runs import Run

    run = Run.create(load_experiment("vae-mnist-nz-sweep"), path=ctx["tmp"] / "sweep")
    ctx["untouched"] = [run.path]  # not even a line in its commands.log
    return ["train", "--resume", str(run.path)], ["folder of a sweep", "resume one of its runs"]


@row("resume with an experiment")
def _(w, ctx):
    return ["train", "vae-mnist", "--resume", str(w["run"])], ["experiment 'vae-mnist'",
                                                                "cannot apply"]


@row("resume with --profile")
def _(w, ctx):
    return ["train", "--resume", str(w["run"]), "--profile", "full"], ["--profile full"]


@row("resume with --data-dir")
def _(w, ctx):
    return ["train", "--resume", str(w["run"]), "--data-dir", str(w["data"])], ["--data-dir"]


# -- locks ----------------------------------------------------------------------------

@row("resume a run in use")
def _(w, ctx):
    return ["train", "--resume", str(w["held"]), "--no-progress"], \
        [f"in use by PID {w['holder_pid']}"]


@row("evaluate a run in use")
def _(w, ctx):
    return ["evaluate", str(w["held"])], [f"in use by PID {w['holder_pid']}"]


@row("plot a run in use")
def _(w, ctx):
    return ["plot", str(w["held"])], ["in use by PID"]


@row("report a run in use")
def _(w, ctx):
    return ["report", str(w["held"])], ["in use by PID"]


@row("export a run in use")
def _(w, ctx):
    return ["export", str(w["held"]), "x"], ["in use by PID"]


# -- bounds ---------------------------------------------------------------------------

@row("latent_dim too large for memory")
def _(w, ctx):
    return _train_args(w, ctx, "model.latent_dim=100000000"), ["GiB", "is available"]


@row("hidden as a float")
def _(w, ctx):
    return _train_args(w, ctx, "model.hidden=1e12"), ["must be an integer", "exponent"]


@row("hidden too large for memory")
def _(w, ctx):
    return _train_args(w, ctx, "model.hidden=1000000000"), ["parameters", "GiB"]


@row("threads 5000")
def _(w, ctx):
    return _train_args(w, ctx, "train.threads=5000"), ["train.threads = 5000", "cores"]


@row("threads negative")
def _(w, ctx):
    return _train_args(w, ctx, "train.threads=-1"), ["train.threads = -1"]


@row("lr inf")
def _(w, ctx):
    return _train_args(w, ctx, "train.lr=inf"), ["train.lr", "finite number, got inf"]


@row("lr nan")
def _(w, ctx):
    return _train_args(w, ctx, "train.lr=nan"), ["train.lr must be a finite number, got nan"]


@row("weight decay inf")
def _(w, ctx):
    return _train_args(w, ctx, "train.weight_decay=inf"), ["train.weight_decay"]


@row("seed beyond 64 bits")
def _(w, ctx):
    return _train_args(w, ctx, "train.seed=99999999999999999999"), ["train.seed", "0 to"]


@row("split seed negative")
def _(w, ctx):
    return _train_args(w, ctx, "data.split_seed=-1"), ["data.split_seed = -1"]


@row("logreg C infinite")
def _(w, ctx):
    return _train_args(w, ctx, "eval.logreg_C=[1.0, inf]"), ["eval.logreg_C", "finite"]


@row("model float nan")
def _(w, ctx):
    return _train_args(w, ctx, "model.init_std=nan"), ["model.init_std", "finite"]


@row("diverges before any checkpoint")
def _(w, ctx):
    ctx["forbid"] = ["--resume"]  # there is nothing to resume: never suggest it
    return _train_args(w, ctx, "train.lr=1e30", "train.optimizer=\"sgd\""), \
        ["diverged", "no checkpoint had been written"]


@row("evaluate checkpoint choice")
def _(w, ctx):
    return ["evaluate", str(w["run"]), "--set", 'eval.checkpoint="newest"'], ["best", "last"]


@row("runs of a missing folder")
def _(w, ctx):
    return ["runs", str(ctx["tmp"] / "nothing")], ["not a folder"]


# -- data -----------------------------------------------------------------------------

@row("data file is a folder")
def _(w, ctx):
    return ["train", "vae-mnist", "--no-progress", "--data-dir", str(w["root"] / "isdir"),
            "--set", "data.download=false", "--runs-dir", str(ctx["tmp"] / "scratch"),
            *tiny_args()], ["train-images-idx3-ubyte.gz"]


@row("data file unreadable")
def _(w, ctx):
    from autoencoders.data import download

    def denied(path, *a):
        raise PermissionError(13, "Permission denied", path)
    ctx["mp"].setattr(download, "_digest", denied)
    ctx["mp"].setattr(download, "_raw_digest", denied)
    return _train_args(w, ctx), ["Permission denied", "idx", "--data-dir"]


@row("celeba corrupt jpeg")
def _(w, ctx):
    if not (w["root"] / "celeba-jpeg").is_dir():
        pytest.skip("the CelebA sample is not present")
    return ["train", "betavae-celeba", "--no-progress", "--data-dir",
            str(w["root"] / "celeba-jpeg"), "--set", "data.download=false",
            "--runs-dir", str(ctx["tmp"] / "scratch")], ["000007.jpg", "cannot be decoded"]


@row("celeba attributes not UTF-8")
def _(w, ctx):
    if not (w["root"] / "celeba-attr").is_dir():
        pytest.skip("the CelebA sample is not present")
    return ["train", "betavae-celeba", "--no-progress", "--data-dir",
            str(w["root"] / "celeba-attr"), "--set", "data.download=false",
            "--runs-dir", str(ctx["tmp"] / "scratch")], ["list_attr_celeba.txt", "UTF-8"]


@row("data dir not UTF-8")
def _(w, ctx):
    d = os.fsdecode(os.fsencode(str(ctx["tmp"])) + b"/no-\xff-data")
    return ["train", "vae-mnist", "--no-progress", "--data-dir", d, "--set",
            "data.download=false", "--runs-dir", str(ctx["tmp"] / "scratch")], \
        ["train-images-idx3-ubyte.gz", "was not found"]


@row("checkpoint write fails in torch")
def _(w, ctx):
    def broken(*a, **k):
        raise RuntimeError("[enforce fail at inline_container.cc:595] . PytorchStreamWriter "
                           "failed writing file data/0: file write failed")
    ctx["mp"].setattr(torch, "save", broken)
    return _train_args(w, ctx), ["Could not write a checkpoint", "file write failed"]


@row("best weights write fails")
def _(w, ctx):
    from autoencoders import runs as runs_mod

    def full(*a, **k):
        raise OSError(28, "No space left on device")
    ctx["mp"].setattr(runs_mod, "save_file", full)
    return _train_args(w, ctx, "train.early_stopping=1"), ["best.safetensors",
                                                          "No space left on device"]


# -- the Python API -------------------------------------------------------------------

@row("api overrides of the wrong type")
def _(w, ctx):
    import autoencoders as ae
    return lambda: ae.load_experiment("vae-mnist", overrides=5), ["overrides must be a list"]


@row("api load_model nonsense")
def _(w, ctx):
    import autoencoders as ae
    return lambda: ae.load_run(w["run"]).load_model("nonsense"), ["'nonsense'", "best, last"]


@row("api pretrained ../ name")
def _(w, ctx):
    import autoencoders as ae
    return lambda: ae.pretrained("../pretrained/vae-mnist-2d"), ["must name a .safetensors"]


@row("api pretrained dotted name")
def _(w, ctx):
    import autoencoders as ae
    return lambda: ae.pretrained(".vae-mnist-2d"), ["No pretrained model", "Shipped"]


@row("api pretrained missing file")
def _(w, ctx):
    import autoencoders as ae
    return lambda: ae.pretrained(str(ctx["tmp"] / "none.safetensors")), ["no such file"]


@row("api pretrained a checkpoint file")
def _(w, ctx):
    import autoencoders as ae
    p = w["run"] / "checkpoints" / _manifest(w["run"])["model"]
    return lambda: ae.pretrained(p), ["cannot be read", "autoencoders export"]


@row("api image shape with a zero")
def _(w, ctx):
    import autoencoders as ae
    return lambda: ae.models.get("vae")(image_shape=(1, 0, 28)), ["image_shape = (1, 0, 28)"]


@row("api image shape of two numbers")
def _(w, ctx):
    import autoencoders as ae
    return lambda: ae.models.get("vae")(image_shape=(28, 28)), ["(C, H, W)"]


@row("api model too large")
def _(w, ctx):
    import autoencoders as ae
    return lambda: ae.models.get("vae")(latent_dim=10**9), ["GiB"]


@row("api evaluate a number")
def _(w, ctx):
    import autoencoders as ae
    return lambda: ae.evaluate(123), ["takes a run", "ae.load_run"]


@row("api train an experiment name")
def _(w, ctx):
    import autoencoders as ae
    return lambda: ae.train("vae-mnist"), ["ExperimentConfig", "load_experiment"]


@row("api reproduce an experiment name")
def _(w, ctx):
    import autoencoders as ae
    return lambda: ae.reproduce("vae-mnist"), ["ExperimentConfig"]


@row("api load_experiment None")
def _(w, ctx):
    import autoencoders as ae
    return lambda: ae.load_experiment(None), ["a name", ".toml path", "NoneType"]


@row("api run folder exists")
def _(w, ctx):
    from autoencoders.config import load_experiment
    from autoencoders.runs import Run
    return lambda: Run.create(load_experiment("vae-mnist"), path=w["run"]), ["already exists"]


@row("api resume without a run")
def _(w, ctx):
    import autoencoders as ae
    return lambda: ae.train(ae.load_experiment("vae-mnist"), resume=True), \
        ["needs the run folder"]


def protected(w) -> dict[str, str]:
    from autoencoders.pretrained import pretrained_dir

    out = {f"w/{k}": v for k, v in snapshot(w["root"]).items()}
    out.update({f"pkg/{k}": v for k, v in snapshot(pretrained_dir()).items()})
    return out


@pytest.mark.parametrize("name", sorted(ROWS))
def test_bad_input_row(world, capsys, monkeypatch, tmp_path, name):
    ctx = {"tmp": world["root"] / "rows" / name.replace(" ", "_").replace("/", "_"),
           "mp": monkeypatch}
    if ctx["tmp"].exists():
        shutil.rmtree(ctx["tmp"])
    ctx["tmp"].mkdir(parents=True)
    call, expected = ROWS[name](world, ctx)
    before = protected(world)
    if callable(call):
        with pytest.raises(UserError) as e:
            call()
        err = f"autoencoders: error: {e.value}\n"
    else:
        code = main(call)
        err = capsys.readouterr().err
        assert code == 2, (name, err)
    monkeypatch.undo()
    assert "Traceback" not in err and "error:" in err, err
    assert "\n\n" not in err, "one paragraph"
    assert "weights_only=False" not in err
    for text in expected:
        assert text in err, (name, text, err)
    for text in ctx.get("forbid", []):
        assert text not in err, (name, text, err)
    after = protected(world)
    changed = [k for k, v in before.items() if after.get(k) != v]
    assert not changed, f"pre-existing files changed: {changed}"
    for folder in [world["run"], *ctx.get("untouched", [])]:
        prefix = f"w/{folder.relative_to(world['root'])}/"
        assert {k for k in after if k.startswith(prefix)} == \
            {k for k in before if k.startswith(prefix)}, f"files appeared in {folder}"


def test_the_tables_hold_at_least_70_rows():
    assert len(CASE_NAMES) + len(ROWS) >= 70
