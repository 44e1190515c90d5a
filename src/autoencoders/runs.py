"""A run is a folder: ``runs/<experiment>/<timestamp>/``.

Layout::

    config.json          resolved ExperimentConfig (config.from_dict rebuilds it)
    metrics.jsonl        one JSON line per epoch: every loss term, train and valid
    checkpoints/
      last.json          manifest of the newest checkpoint (written last, atomically)
      model-<step>.safetensors   weights
      state-<step>.pt    optimiser, RNG states, counters (torch.load(weights_only=True))
      best.safetensors   weights at the best validation loss (early stopping)
    eval.json            numbers from ``autoencoders evaluate``
    figures/*.png        from ``autoencoders plot``
    report.md            from ``autoencoders report``

Every file that matters is written atomically (temp file, fsync, rename), so a run killed
at any moment keeps its last complete checkpoint. Nothing is ever unpickled: weights are
safetensors, the rest JSON or ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .config import ExperimentConfig, from_dict
from .data import DATASETS
from .errors import CheckpointError, ConfigError, UserError
from .models import build_model


def headline(row: dict[str, Any]) -> dict[str, Any]:
    """The ``train/<term>`` and ``valid/<term>`` numbers of a metrics row, without the
    per-latent diagnostics (``valid/kl_dim/<d>``): what the epoch line and the report show."""
    return {k: v for k, v in row.items()
            if k.startswith(("train/", "valid/")) and k.count("/") == 1}


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new, never half."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise UserError(
            f"Could not write {path}: {e.strerror or e}. Nothing was lost: the previous "
            "version of this file (if any) is intact. Free disk space or choose a writable "
            "--runs-dir, then resume."
        ) from None
    _fsync_dir(path.parent)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class Run:
    """A run folder: its config, metrics, checkpoints, figures and report.

    Example:
        >>> run = Run.load("runs/vae-mnist/20261125-101500")   # doctest: +SKIP
        >>> run.metrics()[-1]["valid/loss"]                     # doctest: +SKIP
    """

    def __init__(self, path: str | Path, config: ExperimentConfig):
        self.path = Path(path)
        self.config = config

    # -- creation and loading ------------------------------------------------------------

    @classmethod
    def create(cls, config: ExperimentConfig, runs_dir: str | Path = "runs",
               path: str | Path | None = None) -> Run:
        """Make a new run folder ``<runs_dir>/<experiment>/<timestamp>`` (or ``path``)."""
        if path is None:
            base = Path(runs_dir) / config.name / time.strftime("%Y%m%d-%H%M%S")
            path, i = base, 1
            while path.exists():
                i += 1
                path = base.with_name(f"{base.name}-{i}")
        path = Path(path)
        try:
            (path / "checkpoints").mkdir(parents=True, exist_ok=True)
            (path / "figures").mkdir(exist_ok=True)
        except OSError as e:
            raise UserError(
                f"Cannot create the run folder {path}: {e.strerror or e}. Choose a writable "
                "folder with --runs-dir."
            ) from None
        run = cls(path, config)
        atomic_write_text(path / "config.json", json.dumps(config.to_dict(), indent=2))
        return run

    @classmethod
    def load(cls, path: str | Path) -> Run:
        """Open an existing run folder (its ``config.json`` is validated again)."""
        path = Path(path)
        cfg_path = path / "config.json"
        if not cfg_path.is_file():
            hint = ""
            if path.is_dir():
                subs = sorted(p for p in path.iterdir() if (p / "config.json").is_file())
                if subs:
                    hint = f" It contains runs, e.g. {subs[-1]}."
            raise CheckpointError(
                f"{path} is not a run folder (no config.json).{hint} A run folder looks like "
                "runs/<experiment>/<timestamp>/."
            )
        try:
            raw = json.loads(cfg_path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise CheckpointError(f"{cfg_path} is not valid JSON ({e}); the run's config "
                                  "is damaged.") from None
        try:
            config = from_dict(raw)
        except ConfigError as e:
            raise CheckpointError(f"{cfg_path} does not hold a valid config: {e}") from None
        return cls(path, config)

    def log_command(self, command: str) -> None:
        """Append a command that acted on this run to ``commands.log`` (for the report)."""
        if command:
            with open(self.path / "commands.log", "a") as f:
                f.write(time.strftime("%Y-%m-%d %H:%M:%S") + "  " + command + "\n")

    def commands(self) -> list[str]:
        p = self.path / "commands.log"
        return p.read_text().splitlines() if p.is_file() else []

    # -- metrics ------------------------------------------------------------------------

    @property
    def metrics_path(self) -> Path:
        return self.path / "metrics.jsonl"

    def metrics(self) -> list[dict[str, Any]]:
        """Every metrics line (one per epoch), oldest first."""
        if not self.metrics_path.is_file():
            return []
        rows = []
        for line in self.metrics_path.read_text().splitlines():
            line = line.strip()
            if line:
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError:
                    continue  # a torn last line from a kill; the checkpoint rules
        return rows

    def append_metrics(self, row: dict[str, Any]) -> None:
        with open(self.metrics_path, "a") as f:
            f.write(json.dumps(row) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def truncate_metrics(self, max_epoch: int) -> None:
        """Drop lines after ``max_epoch`` (written after the checkpoint we resume from)."""
        rows = [r for r in self.metrics() if r.get("epoch", 0) <= max_epoch]
        atomic_write_text(self.metrics_path, "".join(json.dumps(r) + "\n" for r in rows))

    def eval_results(self) -> dict[str, Any]:
        p = self.path / "eval.json"
        return json.loads(p.read_text()) if p.is_file() else {}

    # -- checkpoints --------------------------------------------------------------------

    @property
    def ckpt_dir(self) -> Path:
        return self.path / "checkpoints"

    def save_checkpoint(self, model: torch.nn.Module, state: dict[str, Any], step: int) -> None:
        """Write weights + training state, then the manifest that points at them."""
        d = self.ckpt_dir
        d.mkdir(parents=True, exist_ok=True)
        model_name, state_name = f"model-{step:09d}.safetensors", f"state-{step:09d}.pt"
        meta = {"model": self.config.model_name, "step": str(step)}
        tensors = {k: v.detach().contiguous().clone() for k, v in model.state_dict().items()}
        tmp = d / f".{model_name}.tmp-{os.getpid()}"
        try:
            save_file(tensors, str(tmp), metadata=meta)
            _fsync_path(tmp)
            os.replace(tmp, d / model_name)
            tmp = d / f".{state_name}.tmp-{os.getpid()}"
            torch.save(state, tmp)
            _fsync_path(tmp)
            os.replace(tmp, d / state_name)
        except OSError as e:
            tmp.unlink(missing_ok=True)
            raise UserError(
                f"Could not write a checkpoint in {d}: {e.strerror or e}. The previous "
                "checkpoint is intact; free disk space and resume with "
                f"`autoencoders train --resume {self.path}`."
            ) from None
        manifest = {
            "step": step,
            "epoch": state["epoch"],
            "model": model_name,
            "state": state_name,
            "sha256": {model_name: sha256_file(d / model_name),
                       state_name: sha256_file(d / state_name)},
        }
        old = self._manifest(optional=True)
        atomic_write_text(d / "last.json", json.dumps(manifest, indent=1))
        if old:  # the manifest now points at the new files: drop the old ones
            for name in (old["model"], old["state"]):
                if name not in (model_name, state_name):
                    (d / name).unlink(missing_ok=True)

    def save_best(self, model: torch.nn.Module, info: dict[str, Any]) -> None:
        tensors = {k: v.detach().contiguous().clone() for k, v in model.state_dict().items()}
        tmp = self.ckpt_dir / f".best.safetensors.tmp-{os.getpid()}"
        save_file(tensors, str(tmp), metadata={"model": self.config.model_name})
        _fsync_path(tmp)
        os.replace(tmp, self.ckpt_dir / "best.safetensors")
        atomic_write_text(self.ckpt_dir / "best.json", json.dumps(info))

    def has_checkpoint(self) -> bool:
        return (self.ckpt_dir / "last.json").is_file()

    def _manifest(self, optional: bool = False) -> dict[str, Any] | None:
        p = self.ckpt_dir / "last.json"
        if not p.is_file():
            if optional:
                return None
            raise CheckpointError(
                f"{self.path} has no checkpoint yet (no {p}); train it first with "
                f"`autoencoders train --resume {self.path}` or start a new run."
            )
        try:
            return json.loads(p.read_text())
        except json.JSONDecodeError:
            raise CheckpointError(f"Checkpoint manifest {p} is damaged (not JSON).") from None

    def load_checkpoint(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """Weights and training state of the last checkpoint, verified by SHA-256."""
        man = self._manifest()
        d = self.ckpt_dir
        for name in (man["model"], man["state"]):
            p = d / name
            if not p.is_file():
                raise CheckpointError(f"Checkpoint file {p} is missing.")
            if sha256_file(p) != man["sha256"][name]:
                raise CheckpointError(
                    f"Checkpoint file {p} does not match its SHA-256 in {d / 'last.json'}: "
                    "it was modified or truncated. Restore it or start a new run."
                )
        weights = self._read_weights(d / man["model"])
        try:
            state = torch.load(d / man["state"], weights_only=True)
        except Exception as e:  # noqa: BLE001 - any unpickling failure is a damaged file
            raise CheckpointError(f"Checkpoint file {d / man['state']} cannot be read: "
                                  f"{e}.") from None
        return weights, state

    def _read_weights(self, path: Path) -> dict[str, torch.Tensor]:
        try:
            return load_file(str(path))
        except (SafetensorError, OSError, ValueError) as e:
            raise CheckpointError(f"Weights file {path} cannot be read ({e}); it is "
                                  "truncated or not a safetensors file.") from None

    def load_model(self, which: str = "best"):
        """The trained model in eval mode. ``which``: "best" (falls back to "last") or "last"."""
        model = build_model(self.config.model, DATASETS[self.config.data.name].image_shape)
        best = self.ckpt_dir / "best.safetensors"
        if which == "best" and best.is_file():
            weights = self._read_weights(best)
        else:
            weights, _ = self.load_checkpoint()
        self.load_weights_into(model, weights)
        model.eval()
        return model

    def load_weights_into(self, model: torch.nn.Module, weights: dict[str, torch.Tensor]) -> None:
        """``model.load_state_dict(weights)``, with a clear error when they do not fit."""
        try:
            model.load_state_dict(weights)
        except RuntimeError as e:
            raise CheckpointError(
                f"The weights in {self.ckpt_dir} do not fit the model in "
                f"{self.path / 'config.json'} ({str(e).splitlines()[-1].strip()}). "
                "The checkpoint belongs to another config or another model."
            ) from None

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r}, experiment={self.config.name!r})"


def _fsync_path(path: Path) -> None:
    with open(path, "rb+") as f:
        os.fsync(f.fileno())
