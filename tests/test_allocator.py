"""glibc's malloc setting (autoencoders.allocator): freed tensors stay in the heap."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from autoencoders.allocator import _glibc, keep_freed_memory, user_choices

PROBE = """
import json, resource
import autoencoders, torch
from autoencoders.allocator import malloc_setting
torch.set_num_threads(1)

def step():  # three fresh 4 MiB buffers, freed at the end, as a training step's temporaries
    a = torch.empty(1 << 20).fill_(1.0)
    b = torch.empty(1 << 20).fill_(2.0)
    return (a + b).sum()

def minor_faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt

for _ in range(3):
    step()
per_step = []
for _ in range(21):
    before = minor_faults()
    step()
    per_step.append(minor_faults() - before)
# the median step: a one-off event of the process (the heap's top growing once, a shared
# library's page touched for the first time) does not count, a fault on every step does
print(json.dumps({"setting": malloc_setting(), "faults": sorted(per_step)[10]}))
"""


def probe(extra_env: dict[str, str]) -> dict:
    chosen = user_choices(os.environ)
    env = {k: v for k, v in os.environ.items() if k not in chosen}
    out = subprocess.run([sys.executable, "-c", PROBE], env={**env, **extra_env},
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


@pytest.mark.skipif(_glibc() is None, reason="glibc's mallopt only")
def test_freed_buffers_are_reused_without_page_faults():
    """After ``import autoencoders`` a step's freed 4 MiB buffers come back from the heap
    (no page faults in the median step); with each of them mmapped (the user's
    MALLOC_MMAP_THRESHOLD_, which the library respects) every step faults in its 3 x 1,024
    pages again."""
    ours = probe({})
    assert ours["setting"] == "glibc: mmap threshold 32 MiB, trim off"
    theirs = probe({"MALLOC_MMAP_THRESHOLD_": "131072"})
    assert theirs["setting"] == "unchanged (MALLOC_MMAP_THRESHOLD_ set)"
    assert theirs["faults"] > 2500
    assert ours["faults"] < theirs["faults"] / 20, (ours, theirs)


def test_a_users_allocator_choice_is_left_alone():
    assert keep_freed_memory({"GLIBC_TUNABLES": "glibc.malloc.trim_threshold=0"}) == \
        "unchanged (GLIBC_TUNABLES set)"
    assert keep_freed_memory({"MALLOC_TRIM_THRESHOLD_": "0", "MALLOC_ARENA_MAX": "2"}) == \
        "unchanged (MALLOC_TRIM_THRESHOLD_ set)"
    assert keep_freed_memory({"LD_PRELOAD": "/usr/lib/libjemalloc.so.2"}) == \
        "unchanged (LD_PRELOAD set)"
