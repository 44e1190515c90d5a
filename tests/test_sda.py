"""models/sda.py: the stacked DAE's stages, fine-tuning from the pre-trained weights, the
fine-tuned classifier against the random-init baseline."""

from __future__ import annotations

import pytest
import torch
from tiny_problems import SHAPE, one_thread  # noqa: F401

pytestmark = pytest.mark.usefixtures("one_thread")


def _sda_experiment(tmp_path, pretrain: bool = True, epochs: int = 1):
    """A tiny SdA-2 on 64 synthetic 6x6 images (4 classes), through the real trainer."""
    from autoencoders.config import from_dict

    return from_dict({
        "experiment": {"name": "sda-tiny"},
        "model": {"name": "sda", "hidden": [12, 8], "noise": [0.25, 0.1], "num_classes": 4,
                  "pretrain": pretrain, "pretrain_epochs": 2, "pretrain_lr": 0.01},
        "data": {"name": "tiny-blobs", "valid_size": 16},
        "train": {"epochs": epochs, "batch_size": 16, "lr": 0.01, "optimizer": "adam"},
        "eval": {"iw_samples": 0, "figures": []},
    })


@pytest.fixture
def tiny_blobs_dataset(monkeypatch):
    """Register a 4-class synthetic dataset served by the data layer's ``get``."""
    import importlib

    from autoencoders import data
    from autoencoders.data import ImageData

    load_mod = importlib.import_module("autoencoders.data.load")

    class TinyBlobs:
        name = "tiny-blobs"
        image_shape = SHAPE
        num_classes = 4

    g = torch.Generator().manual_seed(0)
    patterns = (torch.rand(4, *SHAPE, generator=g) < 0.4).float()
    y_all = torch.randint(0, 4, (96,), generator=g)
    x_all = patterns[y_all]

    def fake_get(name, split="train", *, valid_size=0, **kw):
        rows = {"train": slice(0, 64), "valid": slice(64, 80), "test": slice(80, 96)}[split]
        return ImageData(name, split, x_all[rows].clone(), y_all[rows].clone(), "none")

    monkeypatch.setitem(data.DATASETS, "tiny-blobs", TinyBlobs)
    monkeypatch.setattr(load_mod, "get", fake_get)
    return x_all, y_all


def test_sda_stages_plan_pretraining_then_finetuning():
    from autoencoders.models.sda import StackedDAE, StackedDAEConfig

    cfg = StackedDAEConfig(hidden=[5, 4, 3], noise=[0.1, 0.2, 0.3], pretrain_epochs=7)
    plan = StackedDAE.stages(cfg)
    assert [label for label, _ in plan] == ["pretrain-1", "pretrain-2", "pretrain-3",
                                            "finetune"]
    assert plan[1][1]["model.stage"] == 2 and plan[1][1]["train.epochs"] == 7
    assert plan[-1][1] == {"model.stage": 0}
    cfg.pretrain = False
    assert StackedDAE.stages(cfg) == [("finetune", {"model.stage": 0})]


def test_sda_finetuning_starts_from_the_pretrained_weights(tmp_path, tiny_blobs_dataset):
    """Greedy pre-training changes only its own layer, and stage 0 starts from its result."""
    from safetensors.torch import load_file

    from autoencoders.pipeline import train_stages
    from autoencoders.runs import Run
    from autoencoders.train import init_weights_

    cfg = _sda_experiment(tmp_path)
    run = train_stages(cfg, Run.create(cfg, tmp_path / "runs"), progress=False)
    p1, p2 = Run.load(run.path / "pretrain-1"), Run.load(run.path / "pretrain-2")
    w1, _ = p1.load_checkpoint()
    w2, _ = p2.load_checkpoint()
    assert run.config.train.init_from == str(p2.path) and run.config.model.stage == 0
    assert p2.config.train.init_from == str(p1.path)
    # stage 2 kept layer 1 exactly as stage 1 left it, and trained layer 2
    assert torch.equal(w1["layers.0.weight"], w2["layers.0.weight"])
    assert not torch.equal(w1["layers.1.weight"], w2["layers.1.weight"])

    # the fine-tuning stage begins with exactly the pre-trained weights
    from autoencoders.registry import build_model

    fresh = build_model(run.config.model, SHAPE)
    assert not torch.equal(fresh.layers[0].weight, w2["layers.0.weight"])
    copied = init_weights_(fresh, str(p2.path))
    assert "layers.0.weight" in copied and "layers.1.weight" in copied
    assert torch.equal(fresh.layers[1].weight, w2["layers.1.weight"])
    # ...and one fine-tuning step with a tiny learning rate stays next to them
    raw = run.config.to_dict()
    raw["train"].update(lr=1e-9, optimizer="sgd", epochs=1)
    from autoencoders.config import from_dict
    from autoencoders.train import train

    one = train(from_dict(raw), runs_dir=str(tmp_path / "one"), progress=False,
                log_epochs=False, stop_after_steps=1)
    w_one = load_file(str(next((one.path / "checkpoints").glob("model-*.safetensors"))))
    for name in ("layers.0.weight", "layers.1.weight"):
        assert torch.allclose(w_one[name], w2[name], atol=1e-6)


def test_sda_finetuned_net_classifies_and_baseline_is_random_init(tmp_path,
                                                                  tiny_blobs_dataset):
    from autoencoders.pipeline import evaluate, train_stages
    from autoencoders.runs import Run

    cfg = _sda_experiment(tmp_path, epochs=15)
    run = train_stages(cfg, Run.create(cfg, tmp_path / "runs"), progress=False)
    assert evaluate(run, progress=False)["test/error"] < 20.0  # 4 classes: chance is 75 %
    base = _sda_experiment(tmp_path, pretrain=False)
    brun = train_stages(base, Run.create(base, tmp_path / "base"), progress=False)
    assert brun.config.train.init_from == ""
    assert not (brun.path / "pretrain-1").exists()


def _selection_raw(**selection):
    arm = {"name": "sda", "hidden": [12, 8], "noise": [0.0, 0.0], "num_classes": 4,
           "pretrain_epochs": 1, "pretrain_lr": 0.01}
    return {
        "experiment": {"name": "sda-select"},
        "model": dict(arm),
        "data": {"name": "tiny-blobs", "valid_size": 16},
        "train": {"epochs": 2, "batch_size": 16, "lr": 0.01, "optimizer": "adam"},
        "eval": {"iw_samples": 0, "figures": []},
        "sweep": {"key": "model", "labels": ["nu=0%", "nu=40%", "random init"],
                  "values": [arm, {**arm, "noise": [0.4, 0.4]}, {**arm, "pretrain": False}]},
        "selection": selection,
        "reference": {"SdA": {"test/error": {"value": 2.8, "source": "Table 1"}}},
    }


def test_selection_config_is_checked(tiny_blobs_dataset):
    from autoencoders.config import SelectionConfig, from_dict
    from autoencoders.errors import ConfigError

    ok = dict(key="valid/error", among=["nu=0%", "nu=40%"], label="SdA")
    assert from_dict(_selection_raw(**ok)).selection.among == ["nu=0%", "nu=40%"]
    for bad, message in ((dict(ok, key="test/error"), "valid/"),
                         (dict(ok, among=["nu=0%", "nu=99%"]), "not labels"),
                         (dict(ok, label="nu=0%"), "sweep label already"),
                         (dict(ok, among=["nu=0%"]), "at least two")):
        with pytest.raises(ConfigError, match=message):
            from_dict(_selection_raw(**bad))
    sel = SelectionConfig(among=["a", "b", "c"], label="x")
    assert sel.choose({"a": 3.0, "b": 1.0, "c": 1.0}) == "b"  # ties: the first
    # 71 errors in 2,000 validation images, averaged over batches in float32 for two arms
    assert sel.choose({"a": 4.0, "b": 3.5500001907348633, "c": 3.549999952316284}) == "b"
    assert sel.choose({"a": 4.0, "b": 3.5500001907348633, "c": 3.5}) == "c"
    sel.better = "higher"
    assert sel.choose({"a": 3.0, "b": 1.0, "c": 1.0}) == "a"
    assert sel.choose({"a": 1.0, "b": 3.0, "c": 3.0000001}) == "b"


def test_selection_reports_the_arm_with_the_best_validation_number(tmp_path,
                                                                   tiny_blobs_dataset):
    """A sweep with [selection]: every arm is evaluated on valid and test; the selection's
    label gets the numbers of the arm with the lowest valid/error, in results and report."""
    from autoencoders.config import from_dict
    from autoencoders.pipeline import reproduce
    from autoencoders.results import collect, markdown

    cfg = from_dict(_selection_raw(key="valid/error", among=["nu=0%", "nu=40%"], label="SdA"))
    run = reproduce(cfg, runs_dir=str(tmp_path / "runs"), progress=False)
    rep = collect(run.path)
    arms = {r.label: r for r in rep.records}
    assert set(arms) == {"SdA", "nu=0%", "nu=40%", "random init"}
    assert all("valid/error" in r.eval and "test/error" in r.eval for r in rep.records)
    best = min(["nu=0%", "nu=40%"], key=lambda a: arms[a].eval["valid/error"])
    assert arms["SdA"].chosen == best and arms["SdA"].eval == arms[best].eval
    assert arms["SdA"].reference["test/error"]["value"] == 2.8
    assert rep.records[0].label == "SdA"  # the chosen arm is the first row
    table = markdown(rep)
    assert f"| SdA = {best} (chosen on validation classification error, %) |" in table
    assert "validation classification error, %" in table
    report = (run.path / "report.md").read_text()
    assert f"**SdA** = {best}, the arm with the lower `valid/error`" in report
