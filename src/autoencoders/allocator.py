"""glibc's malloc, set when the library is imported so that freed tensors stay in the heap.

By default glibc serves each allocation above a (dynamically raised) threshold with its own
``mmap`` and hands it back to the kernel on ``free``. PyTorch on a CPU allocates such
buffers every step (autocast's bfloat16 copies of the weights, gradients, activations of a
wide layer), so each step faults in and zeroes fresh pages: the FC beta-VAE's bf16 step
took ~10,000-13,000 page faults and 13-20 ms of kernel time out of ~110 ms on one core
(``benchmarks/allocator.py``). With the mmap threshold fixed at 32 MiB (glibc's largest)
and trimming off, freed buffers are reused from the heap: no faults, no kernel time. The
cost is that the process keeps its peak heap until it exits.

Skipped where it cannot apply or someone chose already: not glibc (``gnu_get_libc_version``
missing: macOS, musl), or the environment sets glibc's malloc tunables (``MALLOC_*_``,
``GLIBC_TUNABLES``) or preloads another allocator (``LD_PRELOAD``). The allocator decides
where memory comes from, never what is computed: numbers are the same either way.
"""

from __future__ import annotations

import ctypes
import os

M_TRIM_THRESHOLD = -1  # glibc's mallopt parameters (malloc.h)
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 << 20  # glibc's maximum on 64-bit (HEAP_MAX_SIZE / 2)
TRIM_THRESHOLD = (1 << 31) - 1  # an int: in effect never give the heap's top back

_state = {"setting": "unchanged (not applied yet)"}


def _glibc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # noqa: B018 -- only glibc has it
        return libc
    except (OSError, AttributeError):
        return None


def user_choices(environ: dict[str, str]) -> list[str]:
    """The variables of ``environ`` by which someone chose the allocator already: glibc's
    malloc tunables (``MALLOC_*_``, ``GLIBC_TUNABLES``) and a preloaded allocator
    (``LD_PRELOAD``); :func:`keep_freed_memory` leaves malloc alone when there is one."""
    return sorted(k for k, v in environ.items()
                  if (k.startswith("MALLOC_") and k.endswith("_"))
                  or k == "GLIBC_TUNABLES" or (k == "LD_PRELOAD" and v))


def keep_freed_memory(environ: dict[str, str] | None = None) -> str:
    """Fix glibc's mmap threshold at 32 MiB and turn trimming off (see the module
    docstring), unless it does not apply; return what was done, as provenance records it."""
    chosen = user_choices(os.environ if environ is None else environ)
    if chosen:
        return _remember(f"unchanged ({', '.join(chosen)} set)")
    libc = _glibc()
    if libc is None:
        return _remember("unchanged (not glibc)")
    if not (libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)
            and libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)):
        return _remember("unchanged (mallopt refused)")
    return _remember("glibc: mmap threshold 32 MiB, trim off")


def _remember(setting: str) -> str:
    _state["setting"] = setting
    return setting


def malloc_setting() -> str:
    """What :func:`keep_freed_memory` did in this process, as provenance records it."""
    return _state["setting"]
