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
    export/<name>.safetensors   from ``autoencoders export``
    status.json          {"status": "failed", "reason": ...} when training failed
    seeds.json           a ``reproduce --seeds N`` group: {"seeds": N, "first": s}; its
                         seeds train in seed<k>/ sub-folders, each a run like this one
    .lock                held (``fcntl.flock``) by the process working on the run

Every file that matters is written atomically (temp file, fsync, rename), so a run killed
at any moment keeps its last complete checkpoint; temp files a killed process left behind
are removed by the next process that takes the lock. Nothing is ever unpickled: weights
are safetensors, the rest JSON or ``torch.load(weights_only=True)``. File names read from
a run (the manifest's entries) are checked as plain names before they are joined to the
folder, and old checkpoint files are found by their pattern, never by a manifest's word.
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import json
import os
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from . import distributed
from .checks import _check_choice
from .config import ExperimentConfig, from_dict
from .data import image_shape
from .errors import CheckpointError, ConfigError, RunInUseError, UserError
from .models import build_model
from .names import safe_name

MODEL_FILE = re.compile(r"model-\d{9}\.safetensors")
STATE_FILE = re.compile(r"state-\d{9}\.pt")
# what every training-state file holds (train.py writes it; a file lacking a key is damaged)
STATE_KEYS = ("optimizer", "rng", "epoch", "step_in_epoch", "global_step", "samples",
              "elapsed", "best", "bad_epochs", "perm", "acc")
METRIC_KEYS = ("epoch", "step", "samples", "time")  # in every metrics.jsonl row
TEXT = {"encoding": "utf-8", "errors": "surrogateescape"}  # paths need not be valid UTF-8
_HELD: dict[str, list] = {}  # run folders this process has locked: realpath -> [fd, depth]
F = TypeVar("F", bound=Callable[..., Any])


SEEDS_FILE = "seeds.json"  # a --seeds group's plan: {"seeds": N, "first": s}


def seeds_plan(path: str | Path) -> tuple[int, int] | None:
    """``(number of seeds, first seed)`` of the ``--seeds`` group in ``path``, from its
    ``seeds.json``; None when it has none (not a group, or one made before the file).

    Raises:
        CheckpointError: the file is damaged.
    """
    file = Path(path) / SEEDS_FILE
    if not file.is_file():
        return None
    try:
        plan = json.loads(file.read_text())
        n, first = plan["seeds"], plan["first"]
    except (ValueError, KeyError, TypeError) as e:
        raise CheckpointError(f"{file} is damaged ({e}); it should read e.g. "
                              '{"seeds": 3, "first": 0}. Write the number of seeds and the '
                              "first seed of the group into it, then resume again.") from None
    if not (isinstance(n, int) and isinstance(first, int) and 1 <= n <= 100):
        raise CheckpointError(f"{file} holds seeds = {n!r}, first = {first!r}; expected an "
                              "integer from 1 to 100 and an integer seed. Correct the file, "
                              "then resume again.")
    return n, first


def seed_folders(path: str | Path, *markers: str) -> list[Path]:
    """The ``seed<k>/`` folders of a ``reproduce --seeds`` run that hold every file in
    ``markers`` (default ``config.json``), in the order of k."""
    markers = markers or ("config.json",)
    found = [p for p in Path(path).glob("seed*") if p.name[4:].isdigit()
             and all((p / m).is_file() for m in markers)]
    return sorted(found, key=lambda p: int(p.name[4:]))


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
        remove_quietly(tmp)
        raise UserError(
            f"Could not write {path}: {e.strerror or e}. Nothing was lost: the previous "
            "version of this file (if any) is intact. Check that its folder is writable and "
            "that the disk has free space, then run the command again."
        ) from None
    _fsync_dir(path.parent)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode(**TEXT))


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
               path: str | Path | None = None, exist_ok: bool = False) -> Run:
        """Make a new run folder ``<runs_dir>/<experiment>/<timestamp>`` (or ``path``).

        The folder is made with ``mkdir(exist_ok=False)``: two processes started in the same
        second get ``<timestamp>`` and ``<timestamp>-2``, never one folder. An explicit
        ``path`` must not exist yet unless ``exist_ok``.
        """
        safe_name(config.name, "experiment name")
        parent = Path(runs_dir) / config.name
        try:
            if path is None:
                parent.mkdir(parents=True, exist_ok=True)
                stamp = time.strftime("%Y%m%d-%H%M%S")
                for i in range(1, 10000):
                    path = parent / (stamp if i == 1 else f"{stamp}-{i}")
                    try:
                        path.mkdir()
                        break
                    except FileExistsError:
                        continue
                else:
                    raise UserError(f"{parent} already holds 9999 runs started at {stamp}; "
                                    "wait a second or choose another --runs-dir.")
            else:
                path = Path(path)
                try:
                    path.mkdir(parents=True, exist_ok=exist_ok)
                except FileExistsError:
                    raise UserError(f"Cannot create the run folder {path}: it already "
                                    "exists, and a run never writes into another's folder. "
                                    "Choose another name or folder.") from None
            (path / "checkpoints").mkdir(exist_ok=True)
            (path / "figures").mkdir(exist_ok=True)
        except OSError as e:
            raise UserError(
                f"Cannot create the run folder {path or parent}: {e.strerror or e}. Choose a "
                "writable folder with --runs-dir."
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
            raw = json.loads(cfg_path.read_bytes())
        except OSError as e:
            raise CheckpointError(f"Cannot read {cfg_path}: {e.strerror or e}. Check the "
                                  "file's permissions.") from None
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
            try:
                with open(self.path / "commands.log", "a", **TEXT) as f:
                    f.write(time.strftime("%Y-%m-%d %H:%M:%S") + "  " + command + "\n")
            except OSError as e:
                raise UserError(f"Cannot write {self.path / 'commands.log'}: "
                                f"{e.strerror or e}. Free disk space or check the run "
                                "folder's permissions.") from None

    def commands(self) -> list[str]:
        p = self.path / "commands.log"
        return p.read_text(**TEXT).splitlines() if p.is_file() else []

    # -- lock and status ----------------------------------------------------------------

    @contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the run folder's exclusive lock (``fcntl.flock`` on ``RUN/.lock``).

        Re-entrant within a process. The holder's PID is written into the lock file while
        it is held (and removed on release, leaving an empty file); temp files left by a
        killed process are removed once the lock is taken.

        Raises:
            RunInUseError: another process holds the lock.
        """
        key = os.path.realpath(self.path)
        if key in _HELD:
            _HELD[key][1] += 1
            try:
                yield
            finally:
                _HELD[key][1] -= 1
            return
        lock_path = self.path / ".lock"
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise UserError(f"Cannot open {lock_path}: {e.strerror or e}. Check the run "
                            "folder's permissions.") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            pid = _read_pid(fd)
            for _ in range(20):  # the holder writes its PID just after taking the lock
                if pid:
                    break
                time.sleep(0.05)
                pid = _read_pid(fd)
            os.close(fd)
            who = f"PID {pid}" if pid else "another process"
            raise RunInUseError(
                f"{self.path} is in use by {who} (training, evaluating or exporting it). "
                "Only one process may work on a run folder at a time: wait until it "
                "finishes, or stop it, then run this command again."
            ) from None
        try:
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
        except OSError:
            pass  # the lock holds without the PID note
        _HELD[key] = [fd, 1]
        try:
            self.remove_temp_files()
            yield
        finally:
            del _HELD[key]
            try:
                os.ftruncate(fd, 0)
            except OSError:
                pass
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def in_use_by(self) -> int | None:
        """The PID holding the lock (0 if unknown), or None when the run is free."""
        if os.path.realpath(self.path) in _HELD:
            return os.getpid()
        try:
            fd = os.open(self.path / ".lock", os.O_RDONLY)
        except OSError:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            return _read_pid(fd)
        else:
            fcntl.flock(fd, fcntl.LOCK_UN)
            return None
        finally:
            os.close(fd)

    def remove_temp_files(self) -> list[Path]:
        """Remove the ``.<name>.tmp-<pid>`` files a killed process left (call with the lock
        held: no live writer exists then). Returns what was removed."""
        removed = []
        for folder in (self.path, self.ckpt_dir, self.path / "export"):
            for p in folder.glob(".*.tmp-*") if folder.is_dir() else []:
                try:
                    p.unlink()
                    removed.append(p)
                except OSError:
                    pass
        return removed

    def mark_failed(self, reason: str) -> None:
        """Write ``status.json`` = failed with ``reason`` (shown by ``autoencoders runs``)."""
        try:
            atomic_write_text(self.path / "status.json", json.dumps(
                {"status": "failed", "reason": reason,
                 "time": time.strftime("%Y-%m-%d %H:%M:%S")}, indent=1))
        except UserError:
            pass  # the folder itself is unwritable: the error being reported says why

    def clear_status(self) -> None:
        (self.path / "status.json").unlink(missing_ok=True)

    def failure(self) -> str | None:
        """The reason in ``status.json`` when the run is marked failed, else None."""
        p = self.path / "status.json"
        if not p.is_file():
            return None
        try:
            raw = json.loads(p.read_bytes())
            return str(raw.get("reason", "")) if raw.get("status") == "failed" else None
        except (OSError, ValueError, AttributeError):
            return "status.json is damaged"

    def progress(self) -> dict[str, Any] | None:
        """How far training got, from the checkpoint manifest: ``epochs_done`` (complete
        epochs), ``step_in_epoch`` (steps into the next one), ``epochs`` (configured),
        ``finished`` (ran to the end or stopped early by design). None: no checkpoint."""
        man = self._manifest(optional=True)
        if man is None:
            return None
        epochs = self.config.train.epochs
        done = int(man["epoch"])
        finished = bool(man.get("finished", done >= epochs and not man.get("step_in_epoch")))
        return {"epochs_done": done, "step_in_epoch": int(man.get("step_in_epoch", 0)),
                "epochs": epochs, "finished": finished, "step": int(man["step"])}

    def stopped_note(self) -> str | None:
        """One line when the run stopped before the end of training, else None."""
        prog = self.progress()
        if prog is None or prog["finished"]:
            return None
        if prog["step_in_epoch"]:
            where = (f"stopped during epoch {prog['epochs_done'] + 1} of {prog['epochs']} "
                     f"(step {prog['step_in_epoch']} of that epoch)")
        else:
            where = f"stopped at epoch {prog['epochs_done']} of {prog['epochs']}"
        return f"{self.path} {where}"

    # -- metrics ------------------------------------------------------------------------

    @property
    def metrics_path(self) -> Path:
        return self.path / "metrics.jsonl"

    def metrics(self) -> list[dict[str, Any]]:
        """Every metrics line (one per epoch), oldest first."""
        return self._read_metrics()[0]

    def _read_metrics(self) -> tuple[list[dict[str, Any]], bool]:
        """The rows, and whether the file ends in a torn line (a kill during a write),
        which is skipped. Any other line that is not a row is an error naming it."""
        p = self.metrics_path
        if not p.is_file():
            return [], False
        try:
            text = p.read_bytes().decode("utf-8")
        except OSError as e:
            raise CheckpointError(f"Cannot read {p}: {e.strerror or e}.") from None
        except UnicodeDecodeError:
            raise CheckpointError(f"{p} is not UTF-8 text: it is damaged. Restore it from a "
                                  "backup or start a new run.") from None
        lines = text.split("\n")
        rows, torn = [], False
        for i, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                if i == len(lines):  # no newline after it: cut short by a kill
                    torn = True
                    continue
                raise CheckpointError(
                    f"{p}, line {i}, is not JSON: the file was edited or damaged. Restore it, "
                    "or delete that line by hand; nothing was changed.") from None
            problem = ("is not a JSON object" if not isinstance(row, dict) else next(
                (f"lacks {k!r}" for k in METRIC_KEYS
                 if not isinstance(row.get(k), int | float) or isinstance(row.get(k), bool)),
                ""))
            if problem:
                raise CheckpointError(
                    f"{p}, line {i}, {problem}: every row holds {', '.join(METRIC_KEYS)} "
                    "and the loss terms. The file was edited or damaged; restore it, or "
                    "delete that line by hand; nothing was changed.")
            rows.append(row)
        return rows, torn

    def append_metrics(self, row: dict[str, Any]) -> None:
        with open(self.metrics_path, "a") as f:
            f.write(json.dumps(row) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def truncate_metrics(self, max_epoch: int) -> None:
        """Drop rows after ``max_epoch`` (written after the checkpoint we resume from) and
        a torn last line; any other damaged line stops with an error, deleting nothing."""
        all_rows, torn = self._read_metrics()
        rows = [r for r in all_rows if r["epoch"] <= max_epoch]
        if len(rows) != len(all_rows) or torn:
            atomic_write_text(self.metrics_path, "".join(json.dumps(r) + "\n" for r in rows))

    def eval_results(self) -> dict[str, Any]:
        p = self.path / "eval.json"
        if not p.is_file():
            return {}
        try:
            out = json.loads(p.read_bytes())
        except OSError as e:
            raise CheckpointError(f"Cannot read {p}: {e.strerror or e}.") from None
        except (ValueError, UnicodeDecodeError):
            out = None
        if not isinstance(out, dict):
            raise CheckpointError(f"{p} is damaged (not a JSON object). Delete it and run "
                                  f"`autoencoders evaluate {self.path}` again.")
        return out

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
        except (OSError, RuntimeError, SafetensorError) as e:  # torch/safetensors wrap ENOSPC
            remove_quietly(tmp)
            if not isinstance(e, OSError | SafetensorError) and "write" not in str(e).lower():
                raise
            raise UserError(
                f"Could not write a checkpoint in {d}: {getattr(e, 'strerror', None) or e}. "
                "The previous checkpoint is intact; free disk space and resume with "
                f"`autoencoders train --resume {self.path}`."
            ) from None
        manifest = {
            "step": step,
            "epoch": state["epoch"],
            "step_in_epoch": state.get("step_in_epoch", 0),
            "finished": bool(state.get("finished", False)),
            "model": model_name,
            "state": state_name,
            "sha256": {model_name: sha256_file(d / model_name),
                       state_name: sha256_file(d / state_name)},
        }
        atomic_write_text(d / "last.json", json.dumps(manifest, indent=1))
        # the manifest now points at the new files: drop older checkpoint files, found by
        # their pattern in this folder (never by a name read from a file)
        for p in d.iterdir():
            if ((MODEL_FILE.fullmatch(p.name) or STATE_FILE.fullmatch(p.name))
                    and p.name not in (model_name, state_name)):
                p.unlink(missing_ok=True)

    def save_best(self, model: torch.nn.Module, info: dict[str, Any]) -> None:
        tensors = {k: v.detach().contiguous().clone() for k, v in model.state_dict().items()}
        tmp = self.ckpt_dir / f".best.safetensors.tmp-{os.getpid()}"
        try:
            save_file(tensors, str(tmp), metadata={"model": self.config.model_name})
            _fsync_path(tmp)
            os.replace(tmp, self.ckpt_dir / "best.safetensors")
        except (OSError, SafetensorError) as e:
            remove_quietly(tmp)
            raise UserError(
                f"Could not write {self.ckpt_dir / 'best.safetensors'}: "
                f"{getattr(e, 'strerror', None) or e}. The previous best weights are intact; "
                f"free disk space and resume with `autoencoders train --resume {self.path}`."
            ) from None
        atomic_write_text(self.ckpt_dir / "best.json", json.dumps(info))

    def best_epoch(self) -> int | None:
        """The epoch of ``best.safetensors`` (early stopping), or None without one."""
        if not (self.ckpt_dir / "best.safetensors").is_file():
            return None
        try:
            epoch = json.loads((self.ckpt_dir / "best.json").read_bytes())["epoch"]
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return epoch if isinstance(epoch, int) else None

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
        fix = ("It names the checkpoint's files; restore it from a backup, or start a new "
               "run. Nothing was changed.")
        try:
            man = json.loads(p.read_bytes())
        except OSError as e:
            raise CheckpointError(f"Cannot read {p}: {e.strerror or e}.") from None
        except (ValueError, UnicodeDecodeError):
            raise CheckpointError(f"Checkpoint manifest {p} is damaged (not JSON). "
                                  f"{fix}") from None
        if not isinstance(man, dict):
            raise CheckpointError(f"Checkpoint manifest {p} is damaged (not a JSON object). "
                                  f"{fix}")
        for key, typ, kind in (("step", int, "an integer"), ("epoch", int, "an integer"),
                               ("model", str, "a string"), ("state", str, "a string"),
                               ("sha256", dict, "an object")):
            if not isinstance(man.get(key), typ) or isinstance(man.get(key), bool):
                raise CheckpointError(f"Checkpoint manifest {p} is damaged: {key!r} is "
                                      f"missing or not {kind}. {fix}")
        for key, pattern in (("model", MODEL_FILE), ("state", STATE_FILE)):
            name = safe_name(man[key], f"{key} file named in {p}", error=CheckpointError)
            if not pattern.fullmatch(name):
                raise CheckpointError(f"Checkpoint manifest {p} names {key} file {name!r}, "
                                      f"not one of this folder's checkpoint files "
                                      f"({pattern.pattern}). {fix}")
            if not isinstance(man["sha256"].get(name), str):
                raise CheckpointError(f"Checkpoint manifest {p} has no SHA-256 for {name}. "
                                      f"{fix}")
        return man

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
        state_path = d / man["state"]
        try:
            state = torch.load(state_path, weights_only=True, map_location="cpu")
        except Exception:  # noqa: BLE001 - any unpickling failure is a damaged file
            # (torch's own message suggests weights_only=False, which would run code
            # from the file: never do that)
            state = None
        if not isinstance(state, dict):
            raise CheckpointError(
                f"Checkpoint file {state_path} is not a training state written by "
                "autoencoders (damaged or replaced). Restore it from a backup or start a new "
                "run; the weights alone can still be evaluated with eval.checkpoint.")
        missing = [k for k in STATE_KEYS if k not in state]
        if missing:
            raise CheckpointError(
                f"Checkpoint file {state_path} lacks {', '.join(missing)}: it was written by "
                "another program or is damaged. Restore it from a backup or start a new run.")
        return weights, state

    def _read_weights(self, path: Path) -> dict[str, torch.Tensor]:
        try:
            return load_file(str(path))
        except (SafetensorError, OSError, ValueError) as e:
            raise CheckpointError(f"Weights file {path} cannot be read ({e}); it is "
                                  "truncated or not a safetensors file.") from None

    def load_model(self, which: str = "best"):
        """The trained model in eval mode. ``which``: "best" (falls back to "last") or "last"."""
        _check_choice("which", which, ["best", "last"])
        best = self.ckpt_dir / "best.safetensors"
        if which == "best" and best.is_file():
            weights = self._read_weights(best)
        else:  # read (and verify) the weights before building the model
            weights, _ = self.load_checkpoint()
        model = build_model(self.config.model, image_shape(self.config.data))
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


def holds_lock(fn: F) -> F:
    """Decorator: ``fn(run, ...)`` runs with ``run.lock()`` held (rank 0 only)."""

    @functools.wraps(fn)
    def wrapper(run: Run | str | Path, *args: Any, **kwargs: Any) -> Any:
        run = as_run(run, fn.__name__)
        if not distributed.is_main():
            return fn(run, *args, **kwargs)
        with run.lock():
            return fn(run, *args, **kwargs)

    return wrapper  # type: ignore[return-value]


def as_run(run: Any, what: str = "this function") -> Run:
    """``run`` itself, or the run folder a path names; anything else is a UserError."""
    if isinstance(run, Run):
        return run
    if isinstance(run, str | Path):
        return Run.load(run)
    raise UserError(f"{what} takes a run: a Run (ae.load_run(path)) or a run folder's path, "
                    f"got {run!r} ({type(run).__name__}).")


def find_runs(folder: str | Path, depth: int = 4) -> list[Run | tuple[Path, str]]:
    """Run folders under ``folder`` (itself included), sorted by path: a :class:`Run`, or
    ``(path, reason)`` when its ``config.json`` cannot be read."""
    folder = Path(folder)
    out: list[Run | tuple[Path, str]] = []

    def walk(p: Path, level: int) -> None:
        if (p / "config.json").is_file():
            try:
                out.append(Run.load(p))
            except UserError as e:
                out.append((p, str(e)))
        if level >= depth:
            return
        try:
            subs = sorted(q for q in p.iterdir() if q.is_dir() and not q.name.startswith("."))
        except OSError:
            return
        for q in subs:
            if q.name not in ("checkpoints", "figures", "tensorboard", "export"):
                walk(q, level + 1)

    walk(folder, 0)
    return out


def run_status(run: Run) -> str:
    """One line: done, interrupted at epoch E of N, running (PID), failed: reason, ..."""
    pid = run.in_use_by()
    if pid is not None and pid != os.getpid():
        return f"in use by PID {pid}" if pid else "in use"
    reason = run.failure()
    if reason is not None:
        return f"failed: {reason if len(reason) <= 160 else reason[:157] + '...'}"
    if run.config.sweep is not None and run.config.sweep.values:
        return f"sweep of {len(run.config.sweep.values)} runs"
    try:
        prog = run.progress()
    except CheckpointError as e:
        return f"damaged: {e}"
    if prog is None:
        return "no checkpoint (never trained, or killed before its first checkpoint)"
    if prog["finished"]:
        return f"done ({prog['epochs_done']} of {prog['epochs']} epochs)"
    return "interrupted: " + (run.stopped_note() or "").replace(f"{run.path} ", "", 1)


def remove_quietly(path: Path) -> None:
    """Delete ``path`` if it exists; a failure (e.g. its folder is not a folder) is moot."""
    try:
        Path(path).unlink(missing_ok=True)
    except OSError:
        pass


def _read_pid(fd: int) -> int:
    try:
        return int(os.pread(fd, 32, 0).decode().strip() or 0)
    except (OSError, ValueError):
        return 0


def _fsync_path(path: Path) -> None:
    with open(path, "rb+") as f:
        os.fsync(f.fileno())
