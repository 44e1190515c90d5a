"""The README's "Your data" and "GPU" commands run as printed; the packaging files exist
and agree with the code."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]


def bash_block(section: str) -> str:
    """The first ```bash block under the README heading ``## <section>``."""
    text = (REPO / "README.md").read_text()
    body = text.split(f"\n## {section}\n", 1)[1].split("\n## ", 1)[0]
    return re.search(r"```bash\n(.*?)```", body, flags=re.S).group(1)


def shell(tmp_path: Path, script: str, cwd: Path) -> subprocess.CompletedProcess:
    """Run ``script`` with ``python`` and ``autoencoders`` meaning this checkout."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for name, cmd in (("python", f'exec {sys.executable} "$@"'),
                      ("autoencoders", f'exec {sys.executable} -m autoencoders "$@"')):
        (bin_dir / name).write_text(f"#!/bin/sh\n{cmd}\n")
        (bin_dir / name).chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}",
           "PYTHONPATH": str(REPO / "src"), "OMP_NUM_THREADS": "1"}
    return subprocess.run(["bash", "-e", "-c", script], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)


def test_readme_your_data_commands_work(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    done = shell(tmp_path, bash_block("Your data"), work)
    assert done.returncode == 0, done.stderr[-2000:]
    assert len(list((work / "my_images").rglob("*.png"))) == 64
    runs = work / "runs"
    reproduced = next((runs / "vae-mnist-2d").iterdir())
    assert (reproduced / "report.md").is_file()
    assert (reproduced / "figures" / "manifold.png").is_file()
    assert next((runs / "vae-mnist").iterdir()).joinpath("metrics.jsonl").is_file()


def test_readme_gpu_commands(tmp_path):
    lines = [line.split("#")[0].strip() for line in bash_block("GPU").splitlines()]
    lines = [line for line in lines if line]
    assert any("--device cuda" in line for line in lines)
    check = next(line for line in lines if line.startswith("python benchmarks/gpu_check.py"))
    done = shell(tmp_path, check, REPO)
    assert done.returncode == 0, done.stderr[-2000:]
    if not torch.cuda.is_available():
        assert done.stdout.strip() == "no CUDA device: nothing to check"
        first = next(line for line in lines if line.startswith("autoencoders train"))
        done = shell(tmp_path, first + f" --runs-dir {tmp_path / 'runs'}", tmp_path)
        assert done.returncode == 2 and "no CUDA device" in done.stderr
        assert "Traceback" not in done.stderr


def test_packaging_files():
    from autoencoders.config import tomllib  # tomli on Python 3.10

    meta = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert (REPO / "LICENSE").read_text().startswith("MIT License")
    assert "cff-version" in (REPO / "CITATION.cff").read_text()
    # requires-python is true: below 3.11 the TOML parser comes from tomli
    assert meta["requires-python"] == ">=3.10"
    assert any(d.startswith("tomli") and "python_version < '3.11'" in d
               for d in meta["dependencies"])
    # every runtime dependency has an upper bound, and constraints.txt pins it exactly
    pins = dict(line.split("==") for line in (REPO / "constraints.txt").read_text().splitlines()
                if "==" in line and not line.startswith("#"))
    pins = {k.lower(): v for k, v in pins.items()}
    for dep in meta["dependencies"]:
        name = re.split(r"[<>=;]", dep)[0].strip().lower()
        if "python_version" in dep:
            continue
        assert "<" in dep, f"{dep} has no upper bound"
        assert name in pins, f"{name} is not in constraints.txt"
    import autoencoders

    assert meta["version"] == autoencoders.__version__
    assert "all" in meta["optional-dependencies"]



def test_data_guide_worked_example_runs(tmp_path):
    """docs/DATA.md: the folder example, the array example and the in-memory Python
    example run as printed."""
    text = (REPO / "docs" / "DATA.md").read_text()
    bash = re.findall(r"```bash\n(.*?)```", text, flags=re.S)
    python = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    work = tmp_path / "work"
    work.mkdir()
    for script in bash[:2]:
        done = shell(tmp_path, script, work)
        assert done.returncode == 0, done.stderr[-2000:]
    (work / "example.py").write_text(python[0])
    done = shell(tmp_path, "python example.py", work)
    assert done.returncode == 0, done.stderr[-2000:]
    assert float(done.stdout.strip().splitlines()[-1]) < 0  # an ELBO, in nats
    assert (work / "images.npz").is_file()
    assert len(list((work / "runs" / "vae-mnist-2d").iterdir())) == 1
    assert len(list((work / "runs" / "vae-mnist").iterdir())) == 2  # CLI + Python
