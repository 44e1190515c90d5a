"""OpenMP's wait policy follows the machine's load at import (autoencoders.openmp), and
never changes a number."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from autoencoders.openmp import adapt_wait_policy, others_running

SRC = str(Path(__file__).resolve().parents[1] / "src")


def _loadavg(tmp_path, running: int) -> str:
    path = tmp_path / f"loadavg{running}"
    path.write_text(f"0.52 0.58 0.59 {running}/467 1234\n")
    return str(path)


def test_others_running_counts_runnable_threads_besides_the_reader(tmp_path):
    assert others_running(path=_loadavg(tmp_path, 1)) == 0  # only the reader
    assert others_running(path=_loadavg(tmp_path, 3)) == 2
    assert others_running(path=str(tmp_path / "missing")) == 0  # not Linux: assume idle


def _child(code: str, env: dict) -> str:
    env = {k: v for k, v in {**os.environ, "PYTHONPATH": SRC, **env}.items() if v is not None}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, timeout=120, check=True).stdout.strip()


@pytest.mark.parametrize("running, expected", [(1, "None unset"), (2, "PASSIVE PASSIVE")])
def test_passive_only_when_busy_and_before_torch(tmp_path, running, expected):
    code = ("import os, autoencoders.openmp as o\n"
            "os.environ.pop('OMP_WAIT_POLICY', None)\n"  # whatever the real load chose
            f"r = o.adapt_wait_policy(path={_loadavg(tmp_path, running)!r})\n"
            "print(r, os.environ.get('OMP_WAIT_POLICY', 'unset'))")
    assert _child(code, {"OMP_WAIT_POLICY": None}) == expected


def test_a_users_choice_and_a_loaded_torch_are_left_alone(tmp_path):
    busy = _loadavg(tmp_path, 4)
    code = f"import autoencoders.openmp as o; print(o.adapt_wait_policy(path={busy!r}))"
    assert _child(code, {"OMP_WAIT_POLICY": "ACTIVE"}) == "None"
    assert adapt_wait_policy(path=busy) is None  # this process has imported torch


STEP = r"""
import json, torch
from autoencoders.models.vae import VAE, VAEConfig
torch.set_num_threads(2)
torch.manual_seed(0)
model = VAE(VAEConfig(latent_dim=8, hidden=64), (1, 28, 28))
opt = torch.optim.Adam(model.parameters(), lr=1e-3)
x = (torch.rand(200, 1, 28, 28) < 0.3).float()
for i in range(5):
    opt.zero_grad()
    loss = model.loss(x[40 * i:40 * i + 40]).total
    loss.backward()
    opt.step()
print(json.dumps([loss.item(), float(sum(p.double().sum() for p in model.parameters()))]))
"""


def test_the_wait_policy_changes_no_number():
    # MKL's own run-to-run variation is pinned (MKL_CBWR: the same kernel path whatever the
    # data's alignment; MKL_DYNAMIC: the thread count asked for, not one MKL picks from the
    # moment's load), else two runs of one policy can already differ in the last bits
    pinned = {"MKL_CBWR": "AUTO,STRICT", "MKL_DYNAMIC": "FALSE"}
    out = {p: json.loads(_child(STEP, {"OMP_WAIT_POLICY": p, **pinned}))
           for p in ("ACTIVE", "PASSIVE")}
    assert out["ACTIVE"] == out["PASSIVE"]


DENORMALS = """
import json, sys, torch
from autoencoders.openmp import flush_denormals
flushed = flush_denormals() if sys.argv[1] == "flush" else False
torch.set_num_threads(2)
x = torch.full((1 << 22,), 1e-40)  # denormal in float32; 4M elements: split among threads
y = x * 1.0
print(json.dumps({"flushed": flushed, "zeros": (y == 0).float().mean().item(),
                  "threads": torch.get_num_threads()}))
"""


@pytest.mark.parametrize("mode", ["flush", "default"])
def test_denormals_flush_on_every_thread_of_the_team(mode):
    """``flush_denormals`` before the first parallel op: every OpenMP thread of the team
    treats a denormal input as zero (the whole product is 0), not only the calling one;
    without it the product keeps the denormal value 1e-40 everywhere."""
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    out = subprocess.run([sys.executable, "-c", DENORMALS, mode], env=env, check=True,
                         capture_output=True, text=True).stdout
    r = json.loads(out.strip().splitlines()[-1])
    if mode == "flush":
        if not r["flushed"]:
            pytest.skip("this CPU cannot flush denormals (no SSE3 DAZ)")
        assert r["zeros"] == 1.0
    else:
        assert r["zeros"] == 0.0
