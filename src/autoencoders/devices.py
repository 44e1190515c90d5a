"""Where tensors live and in which precision the trainer computes.

``train.device`` (``--device``): ``"auto"`` (the first CUDA device when PyTorch sees one,
else the CPU), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``. A CUDA request on a machine where
PyTorch sees no CUDA device is a :class:`~autoencoders.errors.ConfigError`, raised before
any run folder is made.

``train.precision``: ``"fp32"`` (default: the published numbers), ``"bf16"`` (matmuls under
``torch.autocast(bfloat16)``; weights, optimiser and sums stay float32), ``"fp16"`` (CUDA
only: autocast float16 with a gradient scaler) or ``"auto"``: bf16 on a CUDA device that
supports it and on CPUs with native BF16 instructions (AVX-512 BF16 or AMX), fp32
elsewhere. Without native BF16 a CPU emulates it, which is slower than fp32: an explicit
``"bf16"`` there logs one warning.

A CPU's instruction sets can be capped from the environment, as on a machine that lacks
them: ``ONEDNN_MAX_CPU_ISA`` (oneDNN: bf16 matmuls and convolutions),
``ATEN_CPU_CAPABILITY`` (PyTorch's element-wise kernels) and ``MKL_ENABLE_INSTRUCTIONS``
(MKL: fp32 matmuls). :func:`isa_limits` reads them; a oneDNN cap below AVX-512 BF16 makes
:func:`cpu_has_native_bf16` false, so ``"auto"`` picks fp32 as it would on an AVX2-only CPU.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from .errors import ConfigError
from .logs import logger as log

DEVICE_PATTERN = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")
PRECISIONS = ("fp32", "bf16", "fp16", "auto")


def check_device(spec: str) -> None:
    """Syntax of a device string (whether the device exists is checked by :func:`resolve`).

    Raises:
        ConfigError: not ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
    """
    if not isinstance(spec, str) or not DEVICE_PATTERN.match(spec):
        raise ConfigError(f"train.device = {spec!r} is not a device: expected auto, cpu, "
                          "cuda or cuda:N (e.g. --device cuda:1).")


def resolve(spec: str):
    """The ``torch.device`` that ``spec`` names on this machine.

    Under ``torchrun`` with several processes, ``"cuda"`` and ``"auto"`` give each process
    the GPU of its ``LOCAL_RANK``.

    Raises:
        ConfigError: bad syntax, CUDA asked for where PyTorch sees none, or a GPU index
            beyond the ones present.
    """
    import torch

    check_device(spec)
    has_cuda = torch.cuda.is_available()
    if spec == "cpu" or (spec == "auto" and not has_cuda):
        return torch.device("cpu")
    if not has_cuda:
        raise ConfigError(
            f"train.device = {spec!r}, but PyTorch sees no CUDA device here "
            f"(torch {torch.__version__}, built with CUDA {torch.version.cuda or 'none'}). "
            "Use --device cpu (or auto), or install a CUDA build of PyTorch on a machine "
            "with an NVIDIA GPU (see the GPU section of the README).")
    count = torch.cuda.device_count()
    if ":" in spec:
        index = int(spec.split(":")[1])
        if index >= count:
            raise ConfigError(f"train.device = {spec!r}, but this machine has {count} CUDA "
                              f"device(s): cuda:0 to cuda:{count - 1}.")
        return torch.device("cuda", index)
    local = int(os.environ.get("LOCAL_RANK", "0")) if int(os.environ.get(
        "WORLD_SIZE", "1")) > 1 else 0
    return torch.device("cuda", local % count)


ISA_LIMIT_VARIABLES = ("ONEDNN_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY", "MKL_ENABLE_INSTRUCTIONS")
# ONEDNN_MAX_CPU_ISA values at or above which oneDNN runs bf16 in hardware
_ONEDNN_BF16_ISAS = {"AVX512_CORE_BF16", "AVX512_CORE_FP16", "AVX512_CORE_AMX",
                     "AVX512_CORE_AMX_FP16", "AVX10_1_512", "AVX10_1_512_AMX",
                     "AVX10_1_512_AMX_FP16", "AVX10_2_512", "AVX10_2_512_AMX_2", "ALL",
                     "DEFAULT"}


def isa_limits() -> dict[str, str]:
    """The instruction-set caps set in the environment (:data:`ISA_LIMIT_VARIABLES`), e.g.
    ``{"ONEDNN_MAX_CPU_ISA": "AVX2"}``; empty when none is set."""
    return {k: os.environ[k] for k in ISA_LIMIT_VARIABLES if os.environ.get(k)}


def inductor_cap_mismatch() -> str:
    """``ATEN_CPU_CAPABILITY`` when it caps PyTorch's kernels below this CPU's own level
    (e.g. ``avx2`` on an AVX-512 CPU), else ``""``. ``torch.compile``'s CPU code is then
    wrong (torch 2.13: a 16-element float tensor came back with garbage in its second
    half), so ``train.compile`` trains without compiling under such a cap."""
    cap = os.environ.get("ATEN_CPU_CAPABILITY", "").strip().lower()
    flags = cpuinfo_flags() or set()
    if not cap or cap == "avx512" and "avx512f" in flags:
        return ""
    if "avx512f" in flags or ("avx2" in flags and cap != "avx2"):
        return cap
    return ""


def _onednn_cap_below_bf16() -> str:
    """``ONEDNN_MAX_CPU_ISA`` when it caps oneDNN below AVX-512 BF16, else ``""``."""
    cap = os.environ.get("ONEDNN_MAX_CPU_ISA", "").strip()
    return cap if cap and cap.upper() not in _ONEDNN_BF16_ISAS else ""


def cpuinfo_flags() -> set[str] | None:
    """The first ``flags`` line of ``/proc/cpuinfo`` (None where there is none)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return None


def cpu_has_native_bf16() -> bool:
    """Whether the CPU computes bfloat16 in hardware: the ``avx512_bf16`` or ``amx_bf16``
    flag in ``/proc/cpuinfo`` (Linux), else PyTorch's reported CPU capability; false when
    ``ONEDNN_MAX_CPU_ISA`` caps oneDNN below AVX-512 BF16."""
    if _onednn_cap_below_bf16():
        return False
    flags = cpuinfo_flags()
    if flags is not None:
        return bool(flags & {"avx512_bf16", "amx_bf16"})
    try:
        import torch

        capability = str(torch.backends.cpu.get_cpu_capability())
    except (AttributeError, RuntimeError):
        return False
    return "BF16" in capability.upper() or "AMX" in capability.upper()


def check(train_config) -> None:
    """Raise now, before any run folder is made, if ``train.device`` or
    ``train.precision`` cannot run here (the trainer resolves them again)."""
    resolve_precision(train_config.precision, resolve(train_config.device), warn=False)


def resolve_precision(precision: str, device, warn: bool = True) -> str:
    """``"fp32"``, ``"bf16"`` or ``"fp16"`` for ``precision`` on ``device``; ``warn``: log
    the warning about emulated bf16 on CPUs without native BF16.

    Raises:
        ConfigError: fp16 on a CPU (no fast float16 kernels; use bf16 or fp32).
    """
    import torch

    if precision not in PRECISIONS:
        raise ConfigError(f"train.precision = {precision!r}; valid: {', '.join(PRECISIONS)}.")
    cuda = device.type == "cuda"
    if precision == "auto":
        if cuda:
            return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
        return "bf16" if cpu_has_native_bf16() else "fp32"
    if precision == "fp16" and not cuda:
        raise ConfigError(
            'train.precision = "fp16" needs a CUDA device (autocast float16 with a gradient '
            f'scaler); this run trains on {device}. Use "bf16" (fast on CPUs with AVX-512 '
            'BF16 or AMX), "fp32", or "auto".')
    if warn and precision == "bf16" and not cuda and not cpu_has_native_bf16():
        cap = _onednn_cap_below_bf16()
        why = (f"ONEDNN_MAX_CPU_ISA={cap} caps oneDNN below AVX-512 BF16" if cap else
               "no avx512_bf16/amx_bf16 flag")
        log.warning('warning: train.precision = "bf16" on a CPU without native BF16 '
                    f"({why}): PyTorch emulates it, slower than fp32. "
                    'Use "fp32" or "auto" here.')
    return precision


def autocast_dtype(precision: str):
    """The autocast dtype of a resolved precision, or ``None`` for fp32."""
    import torch

    return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)


def describe(device) -> str:
    """The device for provenance: the GPU's name and memory, or ``"cpu"``."""
    import torch

    if device.type != "cuda":
        return "cpu"
    props = torch.cuda.get_device_properties(device)
    return (f"{device}: {props.name}, {props.total_memory / 2**30:.0f} GiB, CUDA "
            f"{torch.version.cuda}")
