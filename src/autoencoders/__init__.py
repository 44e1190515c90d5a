"""autoencoders: correct, fast, reproducible implementations of classic autoencoders.

Example:
    >>> import autoencoders as ae
    >>> cfg = ae.load_experiment("vae-mnist", profile="quick")   # doctest: +SKIP
    >>> run = ae.train(cfg)                                      # doctest: +SKIP
    >>> ae.evaluate(run)["test/log_px"]                          # doctest: +SKIP

The names below are imported on first use (PEP 562), so ``import autoencoders`` and the
``autoencoders --help`` command start without loading PyTorch.
"""

from __future__ import annotations

import importlib
import sys
import types

__version__ = "0.1.0"

# before anything loads PyTorch: OpenMP threads sleep rather than spin on a busy machine
from .openmp import adapt_wait_policy  # noqa: E402

adapt_wait_policy()

# freed tensors stay in glibc's heap: no page faults for each step's fresh buffers
from .allocator import keep_freed_memory  # noqa: E402

keep_freed_memory()

# public name -> (module, attribute); None: the module itself
_LAZY = {
    "datasets": ("data", None),
    "models": ("models", None),
    "ExperimentConfig": ("config", "ExperimentConfig"),
    "list_experiments": ("config", "list_experiments"),
    "load_experiment": ("config", "load_experiment"),
    "UserError": ("errors", "UserError"),
    "evaluate": ("pipeline", "evaluate"),
    "plot": ("pipeline", "plot"),
    "reproduce": ("pipeline", "reproduce"),
    "pretrained": ("pretrained", "pretrained"),
    "pretrained_names": ("pretrained", "pretrained_names"),
    "MODELS": ("registry", "MODELS"),
    "register_model": ("registry", "register_model"),
    "Run": ("runs", "Run"),
    # as the CLI trains: in the model's stages (the stacked DAE pre-trains layer by layer)
    "train": ("pipeline", "train"),
}


# functions named like their module: ``ae.train`` is the function, as it always was, even
# after ``import autoencoders.train`` (which would otherwise bind the submodule here)
_SHADOWED = ("train", "pretrained")


class _Package(types.ModuleType):
    def __setattr__(self, name, value):
        if name in _SHADOWED and isinstance(value, types.ModuleType):
            return  # the submodule stays in sys.modules
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module 'autoencoders' has no attribute {name!r}")
    module, attr = _LAZY[name]
    obj = importlib.import_module(f".{module}", __name__)
    value = obj if attr is None else getattr(obj, attr)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])


def load_run(path):
    """Open a run folder: ``ae.load_run("runs/vae-mnist/2026...").load_model()``."""
    return __getattr__("Run").load(path)


__all__ = [
    "ExperimentConfig", "MODELS", "Run", "UserError", "datasets", "evaluate",
    "list_experiments", "load_experiment", "load_run", "models", "plot", "pretrained",
    "pretrained_names", "register_model", "reproduce", "train",
]
