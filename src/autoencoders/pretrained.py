"""Small trained models shipped inside the package, loaded without training or data.

Each is one safetensors file in ``autoencoders/pretrained/`` whose metadata holds the
resolved config (JSON), the numbers the run reached (``eval.json``), the command that
trained it and the git commit. Weights are stored in float16 to keep the package small
and are loaded as float32. Nothing is unpickled.

Example:
    >>> import autoencoders as ae
    >>> ae.pretrained_names()                    # doctest: +SKIP
    ['vae-frey-2d', 'vae-mnist-2d', 'vae-mnist-20d']
    >>> model = ae.pretrained("vae-mnist-2d")    # doctest: +SKIP
    >>> model.pretrained_info["eval"]["test/elbo"]   # doctest: +SKIP
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from .config import _closest, from_dict
from .data import DATASETS
from .errors import CheckpointError, UserError
from .models import build_model
from .provenance import git_commit


def pretrained_dir() -> Path:
    return Path(str(resources.files("autoencoders") / "pretrained"))


def pretrained_names() -> list[str]:
    """Names of the shipped pretrained models, sorted."""
    return sorted(p.stem for p in pretrained_dir().glob("*.safetensors"))


def pretrained(name: str, dtype: torch.dtype = torch.float32):
    """A shipped trained model in eval mode, with ``model.pretrained_info`` (config, numbers,
    command, commit, config object).

    Raises:
        UserError: unknown name (lists the shipped ones).
    """
    path = pretrained_dir() / f"{name}.safetensors"
    if not path.is_file():
        names = pretrained_names()
        raise UserError(f"No pretrained model {name!r}.{_closest(name, names)} Shipped: "
                        f"{', '.join(names) or 'none'}.")
    return load_file_model(path, dtype)


def load_file_model(path: str | Path, dtype: torch.dtype = torch.float32):
    """Build the model a pretrained file describes and load its weights."""
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k).to(dtype) for k in f.keys()}  # noqa: SIM118
        config = from_dict(json.loads(meta["config"]))
    except (OSError, KeyError, ValueError, json.JSONDecodeError) as e:
        raise CheckpointError(f"Pretrained file {path} cannot be read ({e}).") from None
    model = build_model(config.model, DATASETS[config.data.name].image_shape)
    model.load_state_dict(tensors)
    model.to(dtype).eval()
    model.pretrained_info = {
        "config": config,
        "eval": json.loads(meta.get("eval", "{}")),
        "command": meta.get("command", ""),
        "commit": meta.get("commit", ""),
        "source_run": meta.get("source_run", ""),
    }
    return model


def export(run, name: str, out_dir: str | Path | None = None, command: str = "") -> Path:
    """Write a run's model as ``<out_dir>/<name>.safetensors`` (float16) with its provenance.

    ``command`` should be the command that trained the run; by default the first line of
    the run's ``commands.log``.
    """
    model = run.load_model(run.config.eval.checkpoint)
    tensors = {k: v.detach().to(torch.float16).contiguous()
               for k, v in model.state_dict().items()}
    history = run.commands()
    meta: dict[str, Any] = {
        "config": json.dumps(run.config.to_dict()),
        "eval": json.dumps(run.eval_results()),
        "command": command or (history[0].split("  ", 1)[-1] if history else ""),
        "commit": git_commit(),
        "source_run": str(run.path),
    }
    out = Path(out_dir) if out_dir else pretrained_dir()
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}.safetensors"
    save_file(tensors, str(path), metadata=meta)
    return path
