"""OpenMP's wait policy, chosen from the machine's load when the library is imported.

PyTorch's CPU kernels run on OpenMP threads that, between parallel regions, busy-wait
(``OMP_WAIT_POLICY=ACTIVE``, the default) for a while before sleeping. On an idle machine
that is the fast choice. Beside another busy process it is a disaster: a waiting thread
spins on a core the other process needs, gets descheduled, and the team's next barrier
waits for it; the MNIST VAE's training step with 2 threads on 2 cores fell to 6-9 % of its
idle speed beside one spinning process (docs/BENCHMARKS.md). ``PASSIVE`` (threads sleep at
once) keeps it near its idle speed there, but costs about half of the idle speed.

So the policy follows the load at start: when ``import autoencoders`` runs before PyTorch is
loaded, no ``OMP_WAIT_POLICY`` is set, and other threads are running on the machine at that
moment (``/proc/loadavg``'s count of runnable threads, a few samples), the library sets
``OMP_WAIT_POLICY=PASSIVE`` for this process (and the processes it starts). The wait policy
decides how threads wait, never what they compute: numbers are the same under both.
It is read once, when OpenMP starts; a load that appears later does not change it. Set
``OMP_WAIT_POLICY`` yourself to choose; the choice is recorded in each run's provenance.
"""

from __future__ import annotations

import os
import sys
import time

LOADAVG = "/proc/loadavg"


def others_running(samples: int = 5, pause: float = 0.001, path: str = LOADAVG) -> int:
    """The median number of runnable threads on the machine besides the caller, from
    ``samples`` reads of ``/proc/loadavg`` (its fourth field, ``running/total``, counts the
    reader too); 0 where the file does not exist (not Linux)."""
    counts = []
    for i in range(samples):
        try:
            with open(path) as f:
                running = int(f.read().split()[3].split("/")[0])
        except (OSError, ValueError, IndexError):
            return 0
        counts.append(max(0, running - 1))
        if i + 1 < samples:
            time.sleep(pause)
    return sorted(counts)[len(counts) // 2]


def adapt_wait_policy(path: str = LOADAVG) -> str | None:
    """Set ``OMP_WAIT_POLICY=PASSIVE`` if the machine is busy and nothing has chosen yet
    (see the module docstring); return the policy set, else None."""
    if "OMP_WAIT_POLICY" in os.environ or "torch" in sys.modules:
        return None
    if others_running(path=path) < 1:
        return None
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    return "PASSIVE"


def wait_policy() -> str:
    """This process's OpenMP wait policy, as provenance records it."""
    return os.environ.get("OMP_WAIT_POLICY", "default (ACTIVE)")


def flush_denormals() -> bool:
    """Flush denormal floats to zero (FTZ and DAZ) on this thread, where the CPU can; True
    if set. Call it before PyTorch's first parallel operation in the process: OpenMP's
    threads start then and inherit this thread's floating-point mode, so the whole team
    flushes (a team started earlier keeps its mode; this thread still flushes).

    Why: Adam's moment estimates of weights whose gradient is mostly zero (pixels that are
    black in nearly every image, as dSprites' background) decay geometrically into the
    denormal range (below 1.2e-38), where x86 arithmetic is many times slower: after 11,876
    steps of the FC beta-VAE, 14 % of its Adam state was denormal and the fused Adam step
    took 68 ms on one core instead of 21 (``benchmarks/denormals.py``). Flushing changes
    only values below 1.2e-38, which carry nothing at float32's precision of any weight.
    """
    import torch  # noqa: PLC0415 -- this module is imported before PyTorch on purpose

    return bool(torch.set_flush_denormal(True))
