"""Nothing lost, nothing overwritten: locks, atomic run folders, the checkpoint manifest,
metrics repair, exports, stopped runs, failed-run status, safe names."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import autoencoders as ae
from autoencoders.cli import main
from autoencoders.config import list_experiments, load_experiment
from autoencoders.errors import ConfigError, RunInUseError, UserError
from autoencoders.names import safe_name, unique_names
from autoencoders.pretrained import pretrained_dir
from autoencoders.runs import Run, find_runs, run_status

SRC = Path(__file__).resolve().parents[1] / "src"


def copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


# -- names ----------------------------------------------------------------------------

def test_every_shipped_sweep_label_and_name_is_a_safe_name():
    for name in list_experiments():
        cfg = load_experiment(name)
        safe_name(cfg.name, "experiment name")
        if cfg.sweep is not None:
            unique_names([cfg.sweep.label(i) for i in range(len(cfg.sweep.values))], "label")


@pytest.mark.parametrize("bad", ["", " x", "x ", ".", "..", "../x", "/abs", "a/b", "a\\b",
                                 "-x", ".hidden", "a|b", "a\nb", "a\0b", "[x](y)", "<b>",
                                 "x" * 101])
def test_safe_name_rejects(bad):
    with pytest.raises(ConfigError, match="plain name"):
        safe_name(bad, "label")


@pytest.mark.parametrize("good", ["noise=25%", "k 10", "bg-img (generated)", "N_z=200",
                                  "MLP-3 random init", "β=4", "run.v2"])
def test_safe_name_accepts(good):
    assert safe_name(good, "label") == good


def test_unique_names_compares_case_insensitively():
    assert unique_names(["a", "b"], "label") == ["a", "b"]
    with pytest.raises(ConfigError, match="used twice"):
        unique_names(["Run", "run"], "label")


# -- run folders: atomic creation, locks, temp files ------------------------------------

def test_runs_started_in_the_same_second_get_their_own_folders(tmp_path, monkeypatch):
    import autoencoders.runs as runs_mod

    monkeypatch.setattr(runs_mod.time, "strftime", lambda fmt: "20260101-000000")
    cfg = load_experiment("vae-mnist")
    paths = [Run.create(cfg, tmp_path).path for _ in range(3)]
    assert [p.name for p in paths] == ["20260101-000000", "20260101-000000-2",
                                       "20260101-000000-3"]


def test_lock_is_reentrant_and_leaves_an_empty_lock_file(tiny_runs, tmp_path):
    run = Run.load(copy(tiny_runs["done"], tmp_path / "run"))
    with run.lock():
        assert (run.path / ".lock").read_text().strip() == str(os.getpid())
        with run.lock():  # the same process may nest (reproduce -> train -> evaluate)
            pass
        assert run.in_use_by() == os.getpid()
    assert (run.path / ".lock").read_bytes() == b""
    assert run.in_use_by() is None


def test_two_resumes_of_one_run_at_once(tiny_runs, tmp_path):
    """Two processes resume the same run: one trains, the other is refused with the PID;
    every epoch's metrics row is written once."""
    run = copy(tiny_runs["partial"], tmp_path / "run")
    cfg = json.loads((run / "config.json").read_text())
    cfg["train"]["epochs"] = 150  # long enough for the two processes to overlap
    (run / "config.json").write_text(json.dumps(cfg))
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    cmd = [sys.executable, "-m", "autoencoders", "train", "--resume", str(run), "--no-progress"]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=env) for _ in range(2)]
    results = [(p.wait(timeout=600), p.communicate()) for p in procs]
    codes = sorted(code for code, _ in results)
    assert codes == [0, 2], results
    refused = next(err for code, (_, err) in results if code == 2)
    winner = next(p for p, (code, _) in zip(procs, results, strict=True) if code == 0)
    assert f"in use by PID {winner.pid}" in refused and "Traceback" not in refused
    epochs = [r["epoch"] for r in Run.load(run).metrics()]
    assert epochs == list(range(1, 151))


def test_temp_files_of_a_killed_process_are_removed_by_the_next(tiny_runs, tmp_path):
    run = Run.load(copy(tiny_runs["done"], tmp_path / "run"))
    debris = [run.ckpt_dir / ".model-000000009.safetensors.tmp-99999",
              run.path / ".eval.json.tmp-99999"]
    for p in debris:
        p.write_bytes(b"half a file")
    assert main(["report", str(run.path)]) == 0
    assert not any(p.exists() for p in debris)


# -- the checkpoint manifest ----------------------------------------------------------

def test_old_checkpoint_files_are_found_by_pattern_not_by_the_manifest(tiny_runs, tmp_path):
    run = Run.load(copy(tiny_runs["partial"], tmp_path / "run"))
    stale = run.ckpt_dir / "model-000000001.safetensors"  # from a kill -9 long ago
    stale.write_bytes(b"old")
    mine = run.ckpt_dir / "notes.txt"
    mine.write_text("the user's file")
    outside = tmp_path / "victim.pt"
    outside.write_bytes(b"precious")
    ae.train(run.config, run, resume=True, progress=False, log_epochs=False)
    names = sorted(p.name for p in run.ckpt_dir.iterdir())
    man = json.loads((run.ckpt_dir / "last.json").read_text())
    assert names == sorted(["last.json", man["model"], man["state"], "notes.txt"])
    assert outside.read_bytes() == b"precious" and mine.read_text() == "the user's file"
    assert man["finished"] is True and man["epoch"] == 3


def test_a_manifest_naming_a_file_outside_the_run_deletes_nothing(tiny_runs, tmp_path):
    run = copy(tiny_runs["partial"], tmp_path / "run")
    victim = tmp_path / "victim.safetensors"
    victim.write_bytes(b"precious")
    last = run / "checkpoints" / "last.json"
    man = json.loads(last.read_text())
    man["model"] = str(victim)
    man["sha256"][str(victim)] = hashlib.sha256(b"precious").hexdigest()
    last.write_text(json.dumps(man))
    before = digest(run)
    assert main(["train", "--resume", str(run), "--no-progress"]) == 2
    assert victim.read_bytes() == b"precious"
    after = digest(run)
    assert all(after[k] == v for k, v in before.items())


# -- metrics repair -------------------------------------------------------------------

def test_resume_drops_only_a_torn_last_line(tiny_runs, tmp_path):
    run = Run.load(copy(tiny_runs["partial"], tmp_path / "run"))
    m = run.metrics_path
    good = m.read_text()
    m.write_text(good + '{"epoch": 2, "step": 6, "sam')  # a kill during the append
    assert len(run.metrics()) == 1
    ae.train(run.config, run, resume=True, progress=False, log_epochs=False)
    assert [r["epoch"] for r in run.metrics()] == [1, 2, 3]
    assert m.read_text().startswith(good) and m.read_text().endswith("}\n")


def test_a_damaged_middle_line_stops_resume_and_keeps_the_file(tiny_runs, tmp_path):
    run = Run.load(copy(tiny_runs["partial"], tmp_path / "run"))
    text = "not json\n" + run.metrics_path.read_text()
    run.metrics_path.write_text(text)
    with pytest.raises(UserError, match="line 1, is not JSON"):
        ae.train(run.config, run, resume=True, progress=False, log_epochs=False)
    assert run.metrics_path.read_text() == text


# -- runs stopped mid-training ----------------------------------------------------------

def test_evaluate_report_export_of_a_stopped_run_say_so(tiny_runs, tmp_path, capsys):
    run = copy(tiny_runs["partial"], tmp_path / "run")
    assert main(["evaluate", str(run)]) == 0
    err = capsys.readouterr().err
    assert "stopped during epoch 2 of 3" in err and "evaluating its last checkpoint" in err
    ev = json.loads((run / "eval.json").read_text())
    assert (ev["trained_epochs"], ev["epochs"], ev["finished"]) == (1, 3, False)
    assert ev["trained_steps_into_next_epoch"] == 1 and ev["checkpoint_epoch"] == 1
    assert main(["report", str(run)]) == 0
    report = (run / "report.md").read_text()
    assert "- 1 epoch, " in report and "1 epochs" not in report
    assert "training did not finish" in report and "stopped during epoch 2 of 3" in report
    assert main(["export", str(run), "early"]) == 0
    assert "exporting its last checkpoint" in capsys.readouterr().err
    info = ae.pretrained(run / "export" / "early.safetensors").pretrained_info
    assert info["eval"]["finished"] is False


def test_a_finished_run_gets_no_note(tiny_runs, tmp_path, capsys):
    run = copy(tiny_runs["done"], tmp_path / "run")
    assert main(["evaluate", str(run)]) == 0
    assert "note" not in capsys.readouterr().err
    assert json.loads((run / "eval.json").read_text())["finished"] is True
    assert ae.evaluate(str(run), progress=False)["finished"] is True  # a path works too


# -- export ---------------------------------------------------------------------------

def test_export_writes_into_the_run_never_the_package(tiny_runs, tmp_path, capsys):
    shipped = digest(pretrained_dir())
    run = copy(tiny_runs["done"], tmp_path / "run")
    assert main(["export", str(run), "vae-mnist-2d"]) == 0
    out = run / "export" / "vae-mnist-2d.safetensors"
    assert capsys.readouterr().out.strip() == str(out)
    assert digest(pretrained_dir()) == shipped
    assert ae.pretrained("vae-mnist-2d").pretrained_info["config"].train.epochs > 1
    model = ae.pretrained(out)
    assert ae.pretrained(str(out)).pretrained_info["source_run"] == model.pretrained_info[
        "source_run"]
    reference = Run.load(run).load_model()
    for k, v in reference.state_dict().items():
        torch.testing.assert_close(model.state_dict()[k], v.half().float())
    # no machine paths in the metadata
    from safetensors import safe_open

    with safe_open(str(out), framework="pt") as f:
        meta = f.metadata()
    assert str(tmp_path) not in json.dumps(meta)
    assert model.pretrained_info["config"].data.data_dir is None
    assert model.pretrained_info["source_run"] == f"{tmp_path.name}/run"
    # never overwritten without --force; with it, replaced
    before = out.read_bytes()
    assert main(["export", str(run), "vae-mnist-2d"]) == 2
    assert out.read_bytes() == before
    assert main(["export", str(run), "vae-mnist-2d", "--force"]) == 0
    assert main(["export", str(run), "elsewhere", "--out-dir", str(tmp_path / "out")]) == 0
    assert ae.pretrained(tmp_path / "out" / "elsewhere.safetensors") is not None


def test_export_disk_full_leaves_no_temp_file(tiny_runs, tmp_path, monkeypatch):
    from safetensors import SafetensorError

    pre = sys.modules["autoencoders.pretrained"]
    run = Run.load(copy(tiny_runs["done"], tmp_path / "run"))

    def full(tensors, path, metadata=None):
        Path(path).write_bytes(b"half")
        raise SafetensorError("Error while serializing: IoError(No space left on device)")

    monkeypatch.setattr(pre, "save_file", full)
    with pytest.raises(UserError, match="Nothing was replaced"):
        pre.export(run, "x")
    assert list((run.path / "export").iterdir()) == []


# -- failed runs and `autoencoders runs` -------------------------------------------------

def test_failed_training_marks_its_folder_and_runs_lists_every_status(tiny_runs, tmp_path,
                                                                      capsys):
    root = tmp_path / "runs"
    copy(tiny_runs["done"], root / "vae-mnist" / "a-done")
    copy(tiny_runs["partial"], root / "vae-mnist" / "b-partial")
    code = main(["train", "vae-mnist", "--runs-dir", str(root), "--data-dir",
                 str(tmp_path / "nodata"), "--set", "data.download=false", "--no-progress",
                 "--set", "train.threads=1"])
    assert code == 2
    failed = [p for p in (root / "vae-mnist").iterdir() if p.name[0].isdigit()]
    assert len(failed) == 1
    status = json.loads((failed[0] / "status.json").read_text())
    assert status["status"] == "failed" and "not found" in status["reason"]
    capsys.readouterr()
    assert main(["runs", str(root)]) == 0
    lines = {Path(line.split("  ", 1)[0]).name: line.split("  ", 1)[1]
             for line in capsys.readouterr().out.splitlines()}
    assert len(lines) == 3
    assert lines["a-done"] == "done (1 of 1 epochs)"
    assert lines["b-partial"].startswith("interrupted: stopped during epoch 2 of 3")
    assert lines[failed[0].name].startswith(
        "failed: mnist data file train-images-idx3-ubyte.gz was not found")
    assert [type(r) for r in find_runs(root)] == [Run, Run, Run]


def test_a_successful_resume_clears_the_failed_mark(tiny_runs, tmp_path):
    run = Run.load(copy(tiny_runs["partial"], tmp_path / "run"))
    run.mark_failed("disk full")
    assert run_status(run) == "failed: disk full"
    ae.train(run.config, run, resume=True, progress=False, log_epochs=False)
    assert run_status(run) == "done (3 of 3 epochs)"


def test_runs_shows_a_run_in_use(tiny_runs, tmp_path):
    run = Run.load(copy(tiny_runs["done"], tmp_path / "run"))
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\nfrom autoencoders.runs import Run\n"
         "with Run.load(sys.argv[1]).lock():\n print('locked', flush=True)\n time.sleep(600)",
         str(run.path)], stdout=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(SRC)})
    try:
        assert holder.stdout.readline().strip() == "locked"
        assert run_status(run) == f"in use by PID {holder.pid}"
        with pytest.raises(RunInUseError, match=f"in use by PID {holder.pid}"):
            ae.evaluate(run)
    finally:
        holder.kill()
        holder.wait()


# -- paths that are not UTF-8, text in reports -------------------------------------------

def test_runs_dir_that_is_not_utf8(shared_data, tmp_path):
    runs = os.fsdecode(os.fsencode(str(tmp_path)) + b"/r\xffns")
    code = main(["train", "vae-mnist", "--no-progress", "--runs-dir", runs, "--data-dir",
                 str(shared_data), "--set", "train.epochs=1", "--set", "data.train_size=200",
                 "--set", "data.valid_size=100", "--set", "model.hidden=8", "--set",
                 "train.threads=1"])
    assert code == 0
    run = next(Path(runs).glob("vae-mnist/*"))
    assert "--runs-dir" in (run / "commands.log").read_text(errors="replace")
    assert main(["report", str(run)]) == 0


def test_user_text_is_escaped_in_the_report(tiny_runs, tmp_path):
    run = copy(tiny_runs["done"], tmp_path / "run")
    cfg = json.loads((run / "config.json").read_text())
    cfg["experiment"]["description"] = "a | b <script>alert(1)</script> [x](http://y)"
    cfg["experiment"]["paper"] = "P | Q"
    (run / "config.json").write_text(json.dumps(cfg))
    assert main(["report", str(run)]) == 0
    text = (run / "report.md").read_text()
    assert "<script>" not in text and "[x](" not in text  # no HTML, no link
    assert "a \\| b &lt;script&gt;" in text and "\\[x\\](http" in text and "P \\| Q" in text


def test_runs_lists_damaged_folders_and_sweeps(tiny_runs, tmp_path, capsys):
    root = tmp_path / "runs"
    bad_manifest = copy(tiny_runs["done"], root / "x" / "bad-manifest")
    (bad_manifest / "checkpoints" / "last.json").write_text("[]")
    bad_config = copy(tiny_runs["done"], root / "x" / "bad-config")
    (bad_config / "config.json").write_text("{")
    Run.create(load_experiment("vae-mnist-nz-sweep"), path=root / "x" / "sweep")
    before = digest(root)
    assert main(["runs", str(root)]) == 0
    lines = {Path(line.split("  ", 1)[0]).name: line.split("  ", 1)[1]
             for line in capsys.readouterr().out.splitlines()}
    assert lines["bad-manifest"].startswith("damaged: Checkpoint manifest")
    assert lines["bad-config"].startswith("damaged:") and "not valid JSON" in lines["bad-config"]
    assert lines["sweep"] == "sweep of 5 runs"
    assert digest(root) == before  # listing changes nothing


def test_a_stopped_run_with_early_stopping_names_its_best_epoch(tiny_runs, tmp_path, capsys):
    cfg = load_experiment("vae-mnist", "quick", [
        "model.latent_dim=2", "model.hidden=16", "data.train_size=300", "data.valid_size=100",
        "train.epochs=5", "train.early_stopping=3", "eval.iw_samples=0", "train.threads=1",
        f'data.data_dir="{Run.load(tiny_runs["done"]).config.data.data_dir}"'])
    run = ae.train(cfg, runs_dir=tmp_path, progress=False, log_epochs=False,
                   stop_after_steps=7)  # two epochs and one step
    assert run.best_epoch() == 2
    ev = ae.evaluate(run, progress=False)
    assert (ev["checkpoint_epoch"], ev["trained_epochs"], ev["finished"]) == (2, 2, False)
    assert "evaluating its best checkpoint (epoch 2)" in capsys.readouterr().err
