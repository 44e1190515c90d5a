"""The documented Python API exists, is documented, and the examples run."""

from __future__ import annotations

import importlib
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def documented_names() -> list[str]:
    text = (REPO / "docs" / "API.md").read_text()
    return re.findall(r"^\| `((?:ae|autoencoders)\.[\w.]+)` \|", text, flags=re.M)


def resolve(dotted: str):
    parts = dotted.replace("ae.", "autoencoders.", 1).split(".")
    obj = importlib.import_module(parts[0])
    for i, part in enumerate(parts[1:], start=1):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            obj = importlib.import_module(".".join(parts[: i + 1]))
    return obj


def test_api_doc_lists_many_names():
    assert len(documented_names()) >= 25


@pytest.mark.parametrize("name", documented_names())
def test_every_documented_name_exists_and_has_a_docstring(name):
    obj = resolve(name)
    if callable(obj) or isinstance(obj, type):
        assert (obj.__doc__ or "").strip(), f"{name} has no docstring"


def test_models_get_builds_and_checks_keys():
    import autoencoders as ae

    model = ae.models.get("vae")(latent_dim=3, hidden=8)
    assert model.sample(2).shape == (2, 1, 28, 28)
    with pytest.raises(ae.UserError, match="latent_dim"):
        ae.models.get("vae")(latent_dimm=3)


def test_custom_model_example_trains_one_epoch(tmp_path, shared_data):
    r = subprocess.run([sys.executable, str(REPO / "examples" / "custom_model.py"),
                        "--data-dir", str(shared_data), "--runs-dir", str(tmp_path),
                        "--train-size", "2000"],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "test reconstruction" in r.stdout
    assert len((REPO / "examples" / "custom_model.py").read_text().splitlines()) < 60


def test_explore_latent_space_runs_without_data(tmp_path):
    import autoencoders as ae

    if "vae-mnist-2d" not in ae.pretrained_names():
        pytest.skip("no pretrained vae-mnist-2d shipped yet")
    r = subprocess.run([sys.executable, str(REPO / "examples" / "explore_latent_space.py"),
                        "--out", str(tmp_path)], capture_output=True, text=True, timeout=300,
                       env={"PATH": "/usr/bin:/bin", "AUTOENCODERS_DATA": str(tmp_path / "none"),
                            "HOME": str(tmp_path)})
    assert r.returncode == 0, r.stderr[-2000:]
    assert (tmp_path / "manifold.png").stat().st_size > 1000
    assert (tmp_path / "interpolation.png").stat().st_size > 1000


def test_every_pretrained_model_loads_and_runs_within_the_size_budget():
    import torch

    import autoencoders as ae
    from autoencoders.pretrained import pretrained_dir

    names = ae.pretrained_names()
    total = sum(p.stat().st_size for p in pretrained_dir().glob("*.safetensors"))
    assert total <= 10 * 2**20, f"pretrained files take {total / 2**20:.1f} MiB (budget 10)"
    for name in names:
        model = ae.pretrained(name)
        info = model.pretrained_info
        assert info["command"].startswith("autoencoders ") and info["eval"], name
        x = torch.rand(4, *model.image_shape)
        assert torch.isfinite(model.reconstruct(x)).all(), name
    with pytest.raises(ae.UserError, match="Shipped"):
        ae.pretrained("vae-mnist-3d")


def test_denoise_example_runs_without_data(tmp_path):
    import autoencoders as ae

    if not {"vae-mnist-20d", "dae-mnist-25"} <= set(ae.pretrained_names()):
        pytest.skip("pretrained vae-mnist-20d / dae-mnist-25 not shipped")
    r = subprocess.run([sys.executable, str(REPO / "examples" / "denoise.py"), "--out",
                        str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert (tmp_path / "denoise.png").stat().st_size > 1000
    assert "masking 50%" in r.stdout


def test_traverse_example_runs_without_data(tmp_path):
    import autoencoders as ae

    if "vae-mnist-20d" not in ae.pretrained_names():
        pytest.skip("pretrained vae-mnist-20d not shipped")
    r = subprocess.run([sys.executable, str(REPO / "examples" / "traverse.py"), "--out",
                        str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert (tmp_path / "traversals.png").stat().st_size > 1000
