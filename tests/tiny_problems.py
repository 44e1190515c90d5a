"""Tiny problems shared by the model tests: 6x6 binary images of 4 patterns, a fit loop."""

from __future__ import annotations

import pytest
import torch

SHAPE = (1, 6, 6)


@pytest.fixture
def one_thread():
    """Tiny tensors: one thread avoids OpenMP spin-waiting on a loaded, shared CPU."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def blobs(n: int = 256, seed: int = 0) -> torch.Tensor:
    """Tiny binary images: each lights one of 4 fixed 6x6 patterns with a few flips."""
    g = torch.Generator().manual_seed(seed)
    patterns = (torch.rand(4, *SHAPE, generator=g) < 0.4).float()
    x = patterns[torch.randint(0, 4, (n,), generator=g)]
    flips = torch.rand(x.shape, generator=g) < 0.05
    return torch.where(flips, 1 - x, x)


def fit(model, x, steps: int = 300, lr: float = 0.01) -> tuple[float, float]:
    torch.manual_seed(0)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.eval()
    with torch.no_grad():
        before = float(model.loss(x).total)
    model.train()
    for _ in range(steps):
        opt.zero_grad()
        model.loss(x).total.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        return before, float(model.loss(x).total)
