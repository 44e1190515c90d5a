"""One split of an experiment's data set, as its config says (binarisation, sizes, seed).

The one place the trainer, evaluation and the figures get their data from.
"""

from __future__ import annotations

from ..errors import UserError
from . import DATASETS, ImageData, StreamedImages, get


def load_split(config, split: str, device: str = "cpu", stream: bool = False) -> ImageData:
    """One split of the experiment's dataset, as configured (binarisation, sizes, seed).

    Args:
        config: an :class:`~autoencoders.config.ExperimentConfig` (its ``data`` section).
        split: ``"train"``, ``"valid"`` or ``"test"``.
        device: where ``x`` is put.
        stream: the caller reads ``x`` only by indexing batches, so it may be a
            :class:`~autoencoders.data.StreamedImages` when ``data.storage`` says so (the
            trainer's train split). Otherwise ``x`` is always a tensor; with
            ``data.storage`` other than "memory", a large data set's images are still read
            from its memory-mapped cache rather than loaded whole.
    """
    d = config.data
    storage = d.storage if stream or d.storage == "memory" else "auto"
    try:
        data = get(d.name, split, data_dir=d.data_dir, valid_size=d.valid_size,
                   test_size=d.test_size, seed=d.split_seed, binarize=d.binarize,
                   download=d.download, size=d.size,
                   first=d.train_size if split == "train" else 0, storage=storage,
                   path=d.path, image_size=d.image_size, channels=d.channels,
                   valid_fraction=d.valid_fraction, test_fraction=d.test_fraction)
    except UserError:
        raise
    except OSError as e:  # permissions, a folder where a file should be, an I/O error
        where = e.filename or (d.data_dir or "the data folder")
        raise UserError(
            f"Cannot read {where} for {d.name!r}: {e.strerror or e}. Make it a readable file "
            f"(check its permissions, e.g. `ls -l {where}`), or point --data-dir at a "
            "folder whose files you can read.") from None
    if not stream and isinstance(data.x, StreamedImages):
        data.x = data.x[:]  # the caller wants a tensor: read every row once
    data.x = data.x.to(device)
    if data.y is not None:
        data.y = data.y.to(device)
    return data


def has_valid(config) -> bool:
    """Whether the experiment carves a valid split (``data.valid_size``, or for your own
    data ``data.valid_fraction``)."""
    if getattr(DATASETS.get(config.data.name), "user", False):
        return config.data.valid_fraction > 0
    return config.data.valid_size > 0
