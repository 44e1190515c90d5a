"""Optional TensorBoard mirror of a run folder (``train.tensorboard``, ``--tensorboard``).

``metrics.jsonl`` stays the source of truth; ``<run>/tensorboard/`` holds the same numbers
as TensorBoard scalars (one point per metrics row, at its ``step``; tags are the row's
keys: ``train/loss``, ``valid/kl``, ``samples``, ``time``, ``epoch``...) and, after
plotting, every ``figures/*.png`` as an image (tag ``figures/<name>``, at the run's last
step). View with ``tensorboard --logdir runs``.

TensorBoard is an optional dependency (``pip install autoencoders[tensorboard]``); asking
for it without the package installed is a :class:`UserError`, raised before any work.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .errors import UserError

FOLDER = "tensorboard"
INSTALL = "pip install autoencoders[tensorboard]"


def require() -> type:
    """``torch.utils.tensorboard.SummaryWriter``.

    Raises:
        UserError: the ``tensorboard`` package is not installed (says how to install it).
    """
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as err:
        raise UserError(
            f"TensorBoard logging (--tensorboard, train.tensorboard = true) needs the "
            f"tensorboard package, which is not installed ({err}). Install it with "
            f"`{INSTALL}` (or `pip install tensorboard`), or run without --tensorboard; "
            f"metrics.jsonl in the run folder has the same numbers.") from None
    return SummaryWriter


class TensorBoardLog:
    """Writes metrics rows as scalars into one TensorBoard log folder.

    Args:
        folder: ``<run>/tensorboard``.
        purge_step: when resuming, the first step that is written again: TensorBoard hides
            the older events at or after it (those metrics.jsonl rows were dropped too).
    """

    def __init__(self, folder: Path, purge_step: int | None = None):
        self.writer = require()(log_dir=str(folder), purge_step=purge_step)

    def scalars(self, row: dict[str, Any]) -> None:
        """Every number of one metrics row, at ``row["step"]``; flushed, so a crash loses
        nothing already in metrics.jsonl."""
        step = int(row["step"])
        for key, value in row.items():
            if key != "step" and isinstance(value, int | float) and not isinstance(value, bool):
                self.writer.add_scalar(key, value, step)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


def log_figures(run_path: str | Path, recursive: bool = False) -> list[Path]:
    """Write ``<run>/figures/*.png`` as images into ``<run>/tensorboard``.

    Args:
        run_path: a run folder.
        recursive: also every run folder below it (the children of a sweep, the stages of
            a stacked DAE), each into its own ``tensorboard`` folder.

    Returns:
        The PNG files written.
    """
    import numpy as np
    from PIL import Image

    summary_writer = require()
    root = Path(run_path)
    folders = sorted(root.rglob("figures")) if recursive else [root / "figures"]
    done = []
    for fig_dir in folders:
        pngs = sorted(fig_dir.glob("*.png")) if fig_dir.is_dir() else []
        if not pngs:
            continue
        step = _last_step(fig_dir.parent)
        writer = summary_writer(log_dir=str(fig_dir.parent / FOLDER))
        try:
            for png in pngs:
                with Image.open(png) as img:
                    pixels = np.asarray(img.convert("RGB"))  # (H, W, 3) uint8
                writer.add_image(f"figures/{png.stem}", pixels, step, dataformats="HWC")
                done.append(png)
        finally:
            writer.close()
    return done


def _last_step(run_path: Path) -> int:
    """The ``step`` of the run's last metrics row (0 without one)."""
    path = run_path / "metrics.jsonl"
    if not path.is_file():
        return 0
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    return int(json.loads(lines[-1]).get("step", 0)) if lines else 0
