"""autoencoders: correct, fast, reproducible implementations of classic autoencoders.

Example:
    >>> import autoencoders as ae
    >>> cfg = ae.load_experiment("vae-mnist", profile="quick")   # doctest: +SKIP
    >>> run = ae.train(cfg)                                      # doctest: +SKIP
    >>> ae.evaluate(run)["test/log_px"]                          # doctest: +SKIP
"""

__version__ = "0.1.0"

from . import data as datasets  # noqa: E402
from . import models  # noqa: E402
from .config import ExperimentConfig, list_experiments, load_experiment  # noqa: E402
from .errors import UserError  # noqa: E402
from .pipeline import evaluate, plot, reproduce, train  # noqa: E402
from .pretrained import pretrained, pretrained_names  # noqa: E402
from .registry import MODELS, register_model  # noqa: E402
from .runs import Run  # noqa: E402


def load_run(path) -> Run:
    """Open a run folder: ``ae.load_run("runs/vae-mnist/2026...").load_model()``."""
    return Run.load(path)


__all__ = [
    "ExperimentConfig", "MODELS", "Run", "UserError", "datasets", "evaluate",
    "list_experiments", "load_experiment", "load_run", "models", "plot", "pretrained",
    "pretrained_names", "register_model", "reproduce", "train",
]
