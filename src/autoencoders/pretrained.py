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
import os
from importlib import resources
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from .config import _closest, from_dict
from .data import image_shape
from .errors import CheckpointError, UserError
from .models import build_model
from .names import safe_name
from .pipeline import stopped_notice
from .provenance import git_commit
from .runs import _fsync_path, remove_quietly


def pretrained_dir() -> Path:
    return Path(str(resources.files("autoencoders") / "pretrained"))


def pretrained_names() -> list[str]:
    """Names of the shipped pretrained models, sorted."""
    return sorted(p.stem for p in pretrained_dir().glob("*.safetensors"))


def pretrained(name: str | Path, dtype: torch.dtype = torch.float32):
    """A trained model in eval mode, with ``model.pretrained_info`` (config, numbers,
    command, commit, config object).

    Args:
        name: a shipped name (:func:`pretrained_names`), or the path of a ``.safetensors``
            file written by :func:`export` (``autoencoders export RUN NAME``).

    Raises:
        UserError: unknown name (lists the shipped ones), or a path that does not exist or
            does not end in ``.safetensors``.
    """
    text = str(name)
    if isinstance(name, Path) or text.endswith(".safetensors") or "/" in text or "\\" in text:
        path = Path(name)
        if path.suffix != ".safetensors":
            raise UserError(f"ae.pretrained({text!r}): a path must name a .safetensors file "
                            "written by `autoencoders export`; a plain name is one of the "
                            f"shipped models: {', '.join(pretrained_names()) or 'none'}.")
        if not path.is_file():
            raise UserError(f"ae.pretrained({text!r}): no such file. Export one with "
                            "`autoencoders export RUN NAME`, which prints the file's path.")
        return load_file_model(path, dtype)
    names = pretrained_names()
    try:
        safe_name(text, "pretrained model name", error=UserError)
    except UserError:
        raise UserError(f"No pretrained model {text!r}. Shipped: {', '.join(names) or 'none'}; "
                        "a file you exported is loaded by its path (ending in "
                        ".safetensors).") from None
    path = pretrained_dir() / f"{text}.safetensors"
    if not path.is_file():
        raise UserError(f"No pretrained model {text!r}.{_closest(text, names)} Shipped: "
                        f"{', '.join(names) or 'none'}; a file you exported is loaded by its "
                        "path (ending in .safetensors).")
    return load_file_model(path, dtype)


def load_file_model(path: str | Path, dtype: torch.dtype = torch.float32):
    """Build the model a pretrained file describes and load its weights."""
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k).to(dtype) for k in f.keys()}  # noqa: SIM118
        config = from_dict(json.loads(meta["config"]))
    except (OSError, KeyError, ValueError, SafetensorError, json.JSONDecodeError,
            UserError) as e:
        what = f"no {e} in its metadata" if isinstance(e, KeyError) else str(e)
        raise CheckpointError(f"Pretrained file {path} cannot be read ({what}); it is not a "
                              "file written by `autoencoders export`, or it is damaged.") from None
    model = build_model(config.model, image_shape(config.data))
    try:
        model.load_state_dict(tensors)
    except RuntimeError as e:
        raise CheckpointError(f"The weights in {path} do not fit the model its metadata "
                              f"describes ({str(e).splitlines()[-1].strip()}); the file is "
                              "damaged.") from None
    model.to(dtype).eval()
    try:
        evals = json.loads(meta.get("eval", "{}"))
    except ValueError:
        evals = {}
    model.pretrained_info = {
        "config": config,
        "eval": evals,
        "command": meta.get("command", ""),
        "commit": meta.get("commit", ""),
        "source_run": meta.get("source_run", ""),
    }
    return model


def export(run, name: str, out_dir: str | Path | None = None, command: str = "",
           force: bool = False) -> Path:
    """Write a run's model as ``<out_dir>/<name>.safetensors`` (float16) with its provenance.

    Args:
        run: the :class:`~autoencoders.runs.Run` to export (its lock is held meanwhile).
        name: a plain file name (see :mod:`autoencoders.names`), without ``.safetensors``.
        out_dir: where to write; default ``<run>/export``. Never the package's own folder
            of shipped models.
        command: the command that trained the run; by default the first line of the run's
            ``commands.log``.
        force: replace an existing file of that name.

    The metadata holds no machine paths: ``data.data_dir`` and ``train.init_from`` are
    dropped, ``source_run`` is the run's ``<experiment>/<timestamp>``.

    Raises:
        UserError: bad name, the target exists (without ``force``), the target is inside
            the package, or the file cannot be written (the old file, if any, is intact).
    """
    safe_name(name, "export name", error=UserError)
    out = Path(out_dir) if out_dir is not None else run.path / "export"
    if _inside(out, pretrained_dir()):
        raise UserError(f"Refusing to export into {out}: it is the package's folder of shipped "
                        "models, which an export must never replace. Leave out --out-dir "
                        f"(default: {run.path / 'export'}) or choose another folder.")
    path = out / f"{name}.safetensors"
    if path.exists() and not force:
        raise UserError(f"{path} already exists; nothing was written. Pass --force "
                        "(export(..., force=True)) to replace it, or choose another name.")
    with run.lock():
        return _export(run, path, command)


def _export(run, path: Path, command: str) -> Path:
    model = run.load_model(run.config.eval.checkpoint)
    trained = stopped_notice(run, "exporting")
    tensors = {k: v.detach().to(torch.float16).contiguous()
               for k, v in model.state_dict().items()}
    history = run.commands()
    config = run.config.to_dict()
    config["data"]["data_dir"] = None  # machine paths stay on the machine
    config["train"]["init_from"] = ""
    evals = {**run.eval_results(), **trained}
    meta: dict[str, Any] = {
        "config": json.dumps(config),
        "eval": json.dumps(evals),
        "command": command or (history[0].split("  ", 1)[-1] if history else ""),
        "commit": git_commit(),
        "source_run": "/".join(run.path.parts[-2:]),
    }
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        save_file(tensors, str(tmp), metadata=meta)
        _fsync_path(tmp)
        os.replace(tmp, path)
    except (OSError, SafetensorError) as e:
        remove_quietly(tmp)
        raise UserError(f"Could not write {path}: {getattr(e, 'strerror', None) or e}. "
                        "Nothing was replaced; free disk space or choose a writable "
                        "--out-dir.") from None
    return path


def _inside(folder: Path, parent: Path) -> bool:
    try:
        return folder.resolve().is_relative_to(parent.resolve())
    except OSError:
        return False
