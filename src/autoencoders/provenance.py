"""Where a result came from: the machine, the library versions and the source commit.

Written into every report (:mod:`autoencoders.report`), every reproduction's
``provenance.json`` (:func:`write_provenance`) and every exported model
(:mod:`autoencoders.pretrained`).
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy
import torch

from .allocator import malloc_setting
from .devices import cpuinfo_flags, describe, isa_limits, resolve, resolve_precision
from .errors import ConfigError
from .openmp import wait_policy
from .runs import Run, atomic_write_text


def package_version() -> str:
    """The installed version of this package."""
    try:
        return version("autoencoders")
    except PackageNotFoundError:
        return "0+unknown"


def hardware() -> str:
    """One line: CPU model, cores, torch threads, memory, and the CUDA GPUs PyTorch sees."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f", {kb / 2**20:.0f} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    gpus = ""
    if torch.cuda.is_available():
        gpus = "; GPU " + "; ".join(describe(torch.device("cuda", i))
                                     for i in range(torch.cuda.device_count()))
    return (f"{cpu}, {os.cpu_count()} cores, torch threads {torch.get_num_threads()}{mem}"
            f"{gpus}")


def cpu_features() -> str:
    """The CPU features that decide our speed: AVX2, AVX-512, AVX-512 BF16, AMX (Linux),
    followed by the instruction-set caps set in the environment (:func:`isa_limits`), e.g.
    ``AVX2 AVX-512 AVX-512 BF16 AMX, limited by ONEDNN_MAX_CPU_ISA=AVX2``."""
    flags = cpuinfo_flags() or set()
    names = [("avx2", "AVX2"), ("avx512f", "AVX-512"), ("avx512_bf16", "AVX-512 BF16"),
             ("amx_bf16", "AMX")]
    text = " ".join(label for flag, label in names if flag in flags)
    limits = isa_limits()
    if limits:
        text += ", limited by " + " ".join(f"{k}={v}" for k, v in limits.items())
    return text


def versions() -> str:
    """One line: this package's version (and git commit), Python, torch, numpy."""
    commit = git_commit()
    return (f"autoencoders {package_version()}{f' (git {commit})' if commit else ''}, "
            f"Python {sys.version.split()[0]}, torch {torch.__version__}, "
            f"numpy {numpy.__version__}")


def git_commit() -> str:
    """The short commit of the source tree this package runs from ("" outside git)."""
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, timeout=5, cwd=Path(__file__).parent)
        return out.stdout.strip() if out.returncode == 0 else ""
    except (OSError, subprocess.SubprocessError):
        return ""


def commit_and_state() -> str:
    """The commit, with "+modified" when tracked files differ from it (numbers from a
    modified tree are not reproducible from the commit alone)."""
    commit = git_commit()
    if not commit:
        return ""
    try:
        out = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                             capture_output=True, text=True, timeout=10,
                             cwd=Path(__file__).parent)
    except (OSError, subprocess.SubprocessError):
        return commit
    return commit + ("+modified" if out.returncode == 0 and out.stdout.strip() else "")


def training_precision(train_config) -> str:
    """``train.precision`` as the trainer resolves it here: ``"fp32"``, ``"bf16"``, or for
    ``"auto"`` what it became on this machine (``"auto: bf16"`` on a CPU with native BF16,
    ``"auto: fp32"`` elsewhere)."""
    spec = train_config.precision
    if spec != "auto":
        return spec
    try:
        return "auto: " + resolve_precision(spec, resolve(train_config.device), warn=False)
    except ConfigError:
        return spec


def write_provenance(run: Run, command: str, wall_seconds: float, kind: str,
                     children: list[str] | None = None) -> Path:
    """``<run>/provenance.json``: what made the run's numbers, for ``autoencoders results``:
    the command, the commit, hardware, versions, wall time and the machine's load average
    (a busy machine inflates wall times), the training precision (``"auto"`` resolved),
    OpenMP's wait policy (:mod:`autoencoders.openmp`),
    glibc's malloc setting (:mod:`autoencoders.allocator`), and for a sweep or a seed group
    its children."""
    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        load = []
    info = {
        "kind": kind, "command": command, "commit": commit_and_state(),
        "hardware": hardware(),
        "cpu_features": cpu_features(), "versions": versions(),
        "wall_seconds": round(wall_seconds, 1), "load_average": load,
        "precision": training_precision(run.config.train),
        "omp_wait_policy": wait_policy(), "malloc": malloc_setting(),
        "finished": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    if children is not None:
        info["children"] = children
    path = run.path / "provenance.json"
    atomic_write_text(path, json.dumps(info, indent=2))
    return path
