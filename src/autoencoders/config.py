"""Experiment configs: typed dataclasses, TOML loading, ``--set`` overrides, validation.

An experiment is a TOML file in ``autoencoders/experiments/`` with the sections
``[experiment]``, ``[model]``, ``[data]``, ``[train]``, ``[eval]``, ``[reference]`` (the
paper's numbers), ``[profiles.quick]`` / ``[profiles.full]`` (overrides of the other
sections) and optionally ``[sweep]`` (one run per value of one key).

Every key is checked here, in one place: an unknown key is an error that lists the valid
keys and the closest match; a value of the wrong type or out of range says what it got and
what it accepts. Model configs are the ``Config`` dataclasses at the top of each model file.

Example:
    >>> from autoencoders.config import load_experiment
    >>> cfg = load_experiment("vae-mnist", profile="quick", overrides=["train.epochs=2"])
    >>> cfg.train.epochs
    2
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the same parser, from PyPI
    import tomli as tomllib

from .checks import _check_choice, _closest, _unknown_key_message, build_dataclass
from .data import DATASETS
from .devices import check_device
from .errors import ConfigError
from .limits import check_model_fits
from .names import safe_name, unique_names
from .registry import EVALUATORS, FIGURES, MODELS

PROFILES = ("quick", "full")
MAX_SEED = 2**63 - 1  # torch.Generator.manual_seed takes a signed 64-bit integer


@dataclass
class DataConfig:
    """Which data, how it is split and binarised."""

    name: str = "mnist"  # a key of autoencoders.data.DATASETS
    data_dir: str | None = None  # None: $AUTOENCODERS_DATA, then the user cache dir
    valid_size: int = 10000  # carved from the official train split with split_seed
    test_size: int = 0  # only for datasets without an official test split (Frey Face)
    train_size: int = 0  # use only the first N training examples (0: all); for quick runs
    # datasets too large to hold or drawn by code (dsprites, dsprites-generated, celeba)
    # and your own data (its first N images):
    # images taken, with the dataset's fixed seed, before valid/test are carved (0: all)
    size: int = 0
    split_seed: int = 0  # seed of the train/valid permutation
    # "dynamic": train resampled every batch, valid/test binarised once with a fixed seed
    binarize: Literal["none", "static", "dynamic"] = "none"
    download: bool = True  # try the official URL when a file is absent
    # the train split as one float32 tensor ("memory"), or streamed batch by batch from a
    # memory-mapped uint8 cache ("memmap"); "auto" streams when it exceeds half the
    # available RAM (full CelebA and dSprites: 10-12 GB as float32). Same batches either way.
    storage: Literal["auto", "memory", "memmap"] = "auto"
    # your own data (docs/DATA.md): "folder" reads PNG/JPEG files under path (labels from
    # one subfolder per class), "array" a .npy/.npz file; a registered data set gets it too
    path: str = ""
    image_size: int = 0  # folder: resize + centre-crop to S x S (0: the images' own size)
    channels: int = 0  # 1 grey, 3 RGB, 0 as the data holds it (folder: grey if all are)
    # your own data's splits, as shares of its images (valid_size/test_size count images
    # of the built-in sets): test carved with a fixed seed unless the data has its own
    # test split, then valid with split_seed
    valid_fraction: float = 0.1
    test_fraction: float = 0.1

    def validate(self) -> None:
        _check_choice("data.name", self.name, sorted(DATASETS))
        own = getattr(DATASETS[self.name], "user", False)
        if self.name in ("folder", "array") and not self.path:
            what = "folder of PNG/JPEG images" if self.name == "folder" else ".npy/.npz file"
            raise ConfigError(f'data.name = "{self.name}" needs data.path, the {what} to '
                              f"read (e.g. --set data.path=...); see docs/DATA.md.")
        if self.path and not own:
            raise ConfigError(f"data.path = {self.path!r} applies to your own data "
                              f'(data.name = "folder", "array" or a registered name), not '
                              f"to the built-in {self.name!r}; its files are found through "
                              "data.data_dir. Remove data.path or change data.name.")
        _check(self.image_size >= 0, "data.image_size", self.image_size,
               "an integer >= 0 (0: the images' own size)")
        _check_choice("data.channels", self.channels, [0, 1, 3])
        _check(0 <= self.valid_fraction < 1, "data.valid_fraction", self.valid_fraction,
               "a number in [0, 1)")
        _check(0 <= self.test_fraction < 1, "data.test_fraction", self.test_fraction,
               "a number in [0, 1)")
        _check(self.valid_size >= 0, "data.valid_size", self.valid_size, "an integer >= 0")
        _check(self.test_size >= 0, "data.test_size", self.test_size, "an integer >= 0")
        _check(self.train_size >= 0, "data.train_size", self.train_size, "an integer >= 0")
        _check(self.size >= 0, "data.size", self.size, "an integer >= 0 (0: all)")
        _check(0 <= self.split_seed <= MAX_SEED, "data.split_seed", self.split_seed,
               f"an integer from 0 to {MAX_SEED}")


@dataclass
class TrainConfig:
    """The optimisation loop (one for every model)."""

    epochs: int = 10
    batch_size: int = 100  # Kingma & Welling: M = 100
    optimizer: Literal["adagrad", "adam", "sgd"] = "adagrad"  # the VAE paper used Adagrad
    lr: float = 0.02  # Kingma & Welling chose from {0.01, 0.02, 0.1}
    momentum: float = 0.0  # SGD only (Makhzani & Frey: SGD with momentum); 0: plain SGD
    # decoupled from the loss: weight_decay * theta is added to the gradient. For the VAE
    # this is the N(0, I) prior on the parameters, 1/N per example (paper, section 5).
    weight_decay: float = 0.0
    seed: int = 0  # seeds torch, numpy, python and the data order
    checkpoint_every: int = 0  # also checkpoint every N steps (0: only at epoch ends)
    early_stopping: int = 0  # patience in epochs on valid/loss (0: off)
    log_every: int = 20  # progress-bar refresh, in steps
    threads: int = 0  # torch intra-op threads (0: leave PyTorch's default)
    # "auto": the first CUDA device when PyTorch sees one, else the CPU; "cpu", "cuda",
    # "cuda:N" (checked against the machine when training starts; see devices.py)
    device: str = "auto"
    # "bf16": matmuls under torch.autocast(bfloat16); weights, optimiser and every loss sum
    # stay in float32 (faster on CUDA and on CPUs with native BF16; see docs/BENCHMARKS.md);
    # "fp16": CUDA only, autocast float16 with a gradient scaler; "auto": bf16 where the
    # hardware has it, else fp32. Default fp32: the published numbers.
    precision: Literal["fp32", "bf16", "fp16", "auto"] = "fp32"
    # torch.compile the model's loss (forward and backward): fuses the element-wise work
    # around the matmuls (the SB-VAE's sampling and KL: see docs/BENCHMARKS.md). Costs a
    # compile of ~10-30 s on the first steps and needs a C++ compiler on the CPU; if
    # compiling fails, training says so once and goes on without it. Single process only.
    compile: bool = False
    # a run folder whose last weights initialise every parameter of the same name and shape
    # before training (e.g. the previous stage of a stacked DAE); "" starts from scratch
    init_from: str = ""
    # mirror metrics.jsonl (every epoch's terms) and, after plotting, figures/*.png into
    # <run>/tensorboard/ (needs `pip install autoencoders[tensorboard]`)
    tensorboard: bool = False

    def validate(self) -> None:
        _check(self.epochs >= 1, "train.epochs", self.epochs, "an integer >= 1")
        _check(self.batch_size >= 1, "train.batch_size", self.batch_size, "an integer >= 1")
        _check(math.isfinite(self.lr) and self.lr > 0, "train.lr", self.lr,
               "a finite number > 0")
        _check(math.isfinite(self.weight_decay) and self.weight_decay >= 0,
               "train.weight_decay", self.weight_decay, "a finite number >= 0")
        _check(0.0 <= self.momentum < 1.0, "train.momentum", self.momentum,
               "a number in [0, 1)")
        if self.momentum and self.optimizer != "sgd":
            raise ConfigError(f"train.momentum = {self.momentum} is used only by "
                              f'train.optimizer = "sgd", not {self.optimizer!r}; set it to 0.')
        _check(self.checkpoint_every >= 0, "train.checkpoint_every", self.checkpoint_every,
               "an integer >= 0")
        _check(self.early_stopping >= 0, "train.early_stopping", self.early_stopping,
               "an integer >= 0")
        _check(self.log_every >= 1, "train.log_every", self.log_every, "an integer >= 1")
        _check(0 <= self.seed <= MAX_SEED, "train.seed", self.seed,
               f"an integer from 0 to {MAX_SEED}")
        cores = os.cpu_count() or 1
        _check(0 <= self.threads <= 4 * cores, "train.threads", self.threads,
               f"an integer from 0 to {4 * cores} (4 x the {cores} cores of this machine; "
               "0: PyTorch's default)")
        check_device(self.device)


@dataclass
class EvalConfig:
    """What ``autoencoders evaluate`` computes and which figures ``plot`` draws."""

    iw_samples: int = 5000  # K importance samples for log p(x); 0 skips it
    iw_batch: int = 50000  # rows (samples x examples) per decoder pass
    # "bf16": decoder matmuls in bfloat16, sums in float32 (opt-in; see iw_log_likelihood);
    # "auto": bf16 where the device computes it natively (as train.precision), else fp32
    iw_precision: Literal["fp32", "bf16", "auto"] = "fp32"
    test_subset: int = 0  # evaluate log p(x) on the first N test examples (0: all)
    checkpoint: Literal["best", "last"] = "best"  # "best" exists only with early stopping
    figures: list[str] = field(
        default_factory=lambda: ["curves", "reconstructions", "samples", "manifold"]
    )
    metrics: list[str] = field(default_factory=list)  # extra evaluators (EVALUATORS)
    # logreg probe (evaluation/features.py): C grid chosen on valid, L-BFGS iterations,
    # train examples used (0: the whole train split)
    logreg_C: list[float] = field(default_factory=lambda: [0.01, 0.1, 1.0])
    logreg_max_iter: int = 200
    logreg_train_size: int = 0
    # k-sparse AE only: alpha values (alpha * k units kept) the logreg probe chooses from on
    # valid (Makhzani & Frey, section 4.2); empty: model.features as configured
    feature_alphas: list[float] = field(default_factory=list)
    # knn probe (evaluation/features.py): k values of the k-nearest-neighbour classifier of
    # test codes against train codes (Nalisnick & Smyth 2017, Figure 3: 3, 5, 10); empty:
    # the probe reports nothing. knn_raw_pixels also scores the raw-pixel baseline.
    knn_k: list[int] = field(default_factory=lambda: [3, 5, 10])
    knn_raw_pixels: bool = False
    # codes the kNN probe classifies: "mean" = model.features (posterior mean; keys
    # test/knn_error_k<k>), "sample" = one draw from q(z|x) per image, generative models
    # only (keys test/knn_error_sample_k<k>)
    knn_codes: list[str] = field(default_factory=lambda: ["mean"])
    # disentanglement metrics (evaluation/disentanglement.py); defaults are the papers':
    # L pairs (Higgins) / points (FactorVAE) per vote, train and eval votes, MIG points
    # "bf16": the disentanglement metrics encode their images under bfloat16 autocast
    # (opt-in: ~3x faster for the FC net, scores within 0.1 point in benchmarks/metrics_time);
    # "auto": bf16 where the device computes it natively, else fp32
    encode_precision: Literal["fp32", "bf16", "auto"] = "fp32"
    votes_batch: int = 64
    votes_train: int = 10000
    votes_eval: int = 5000
    mig_points: int = 10000
    # points for FactorVAE's per-dimension scale and for fitting the PCA/ICA baselines
    variance_points: int = 10000
    # disentanglement_baselines: which representations besides the model to score
    baselines: list[str] = field(default_factory=lambda: ["pixels", "pca", "ica", "untrained"])

    def validate(self) -> None:
        _check(self.iw_samples >= 0, "eval.iw_samples", self.iw_samples,
               "an integer >= 0 (0 skips the log-likelihood)")
        _check(bool(self.logreg_C) and all(c > 0 for c in self.logreg_C), "eval.logreg_C",
               self.logreg_C, "a non-empty list of numbers > 0")
        _check(self.logreg_max_iter >= 1, "eval.logreg_max_iter", self.logreg_max_iter,
               "an integer >= 1")
        _check(self.logreg_train_size >= 0, "eval.logreg_train_size", self.logreg_train_size,
               "an integer >= 0 (0: all train examples)")
        _check(all(a >= 1 for a in self.feature_alphas), "eval.feature_alphas",
               self.feature_alphas, "numbers >= 1 (alpha * k units are kept)")
        _check(all(k >= 1 for k in self.knn_k), "eval.knn_k", self.knn_k,
               "a list of integers >= 1 (e.g. [3, 5, 10])")
        for name in self.knn_codes:
            _check_choice("eval.knn_codes", name, ["mean", "sample"])
        _check(self.iw_batch >= 1, "eval.iw_batch", self.iw_batch, "an integer >= 1")
        _check(self.test_subset >= 0, "eval.test_subset", self.test_subset, "an integer >= 0")
        for key in ("votes_batch", "votes_train", "votes_eval", "mig_points",
                    "variance_points"):
            _check(getattr(self, key) >= 2, f"eval.{key}", getattr(self, key), "an integer >= 2")
        for name in self.baselines:
            _check_choice("eval.baselines", name, ["pixels", "pca", "ica", "untrained"])
        for name in self.figures:
            _check_choice("eval.figures", name, sorted(FIGURES))
        for name in self.metrics:
            _check_choice("eval.metrics", name, sorted(EVALUATORS))


@dataclass
class SweepConfig:
    """One run per value of one key; ``reproduce`` overlays their curves and tabulates them.

    ``key`` may name a whole section (``key = "model"``, values are tables) to compare
    different models in one experiment. ``labels`` name the runs (default ``key=value``).
    """

    key: str = ""
    values: list[Any] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)

    def validate(self) -> None:
        if not self.key:
            raise ConfigError("[sweep] needs a key, e.g. key = \"model.latent_dim\".")
        if self.labels and len(self.labels) != len(self.values):
            raise ConfigError(f"[sweep] has {len(self.values)} values but "
                              f"{len(self.labels)} labels; give one label per value.")
        # each label is the folder of its run inside the sweep's folder
        try:
            unique_names([self.label(i) for i in range(len(self.values))], "sweep label")
        except ConfigError as e:
            if self.labels:
                raise
            raise ConfigError(f"{e} The labels come from the values of {self.key}; give "
                              "[sweep] labels = [...], one plain name per value.") from None

    def label(self, i: int) -> str:
        if self.labels:
            return self.labels[i]
        return f"{self.key.split('.')[-1]}={self.values[i]}"


@dataclass
class SelectionConfig:
    """One arm of a sweep chosen on a validation number, as a paper's protocol does (the
    noise level of SdA-3 among its noise arms): the arm of ``among`` (sweep labels) with
    the best ``key`` of ``eval.json`` (``better`` = "lower" or "higher") is reported as
    ``label``, with the paper's ``[reference."<label>"]``. Each seed chooses on its own
    validation numbers; the test numbers of the arms not chosen are details, not results."""

    key: str = "valid/error"
    among: list[str] = field(default_factory=list)
    label: str = ""
    better: Literal["lower", "higher"] = "lower"

    def validate(self) -> None:
        if not self.key.startswith("valid/"):
            raise ConfigError(f"selection.key = {self.key!r} must be a validation number of "
                              "eval.json (valid/...): a choice made on test numbers would "
                              "flatter the result.")
        if len(self.among) < 2 or not self.label:
            raise ConfigError("[selection] needs a label and at least two sweep labels in "
                              "among = [...] to choose from.")

    def choose(self, values: dict[str, float]) -> str:
        """The label in ``values`` (arm label -> its ``key``) that is best; ties go to the
        first of ``among``. Values within 1e-6 (relative) of each other are ties: an error
        rate of 71 / 2,000 images averaged over batches in float32 comes out as 3.5500002
        for one arm and 3.5499999 for another."""
        sign = 1.0 if self.better == "lower" else -1.0
        best = None
        for a in (a for a in self.among if a in values):
            if best is None:
                best = a
                continue
            tol = 1e-6 * max(1.0, abs(values[a]), abs(values[best]))
            if sign * (values[best] - values[a]) > tol:
                best = a
        if best is None:
            raise ValueError(f"none of {self.among} has a value in {sorted(values)}")
        return best


@dataclass
class ExperimentConfig:
    """A fully resolved experiment: what a run folder's ``config.json`` holds."""

    name: str
    description: str
    paper: str
    model: Any  # the model's Config dataclass (models/<name>.py)
    data: DataConfig
    train: TrainConfig
    eval: EvalConfig
    reference: dict[str, Any] = field(default_factory=dict)  # the paper's numbers
    sweep: SweepConfig | None = None
    profile: str = "quick"
    selection: SelectionConfig | None = None  # an arm of the sweep chosen on validation

    @property
    def model_name(self) -> str:
        return type(self.model).model_name

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict that :func:`from_dict` turns back into an equal config."""
        out = {
            "experiment": {"name": self.name, "description": self.description,
                           "paper": self.paper, "profile": self.profile},
            "model": {"name": self.model_name, **dataclasses.asdict(self.model)},
            "data": dataclasses.asdict(self.data),
            "train": dataclasses.asdict(self.train),
            "eval": dataclasses.asdict(self.eval),
            "reference": copy.deepcopy(self.reference),
        }
        if self.sweep is not None:
            out["sweep"] = dataclasses.asdict(self.sweep)
        if self.selection is not None:
            out["selection"] = dataclasses.asdict(self.selection)
        return out


# --------------------------------------------------------------------------- loading


def experiments_dir() -> Path:
    return Path(str(resources.files("autoencoders") / "experiments"))


def list_experiments() -> list[str]:
    """Names of the experiments shipped with the package, sorted."""
    return sorted(p.stem.replace("_", "-") for p in experiments_dir().glob("*.toml"))


def shipped_seconds(profile: str) -> dict[str, float]:
    """One-thread wall seconds of each experiment with ``profile`` in the ``reproduce all``
    run recorded in ``experiments/seconds.json`` (written by
    ``benchmarks/reproduce_all_time.py RUNS --write-seconds``); empty when it has none.
    ``reproduce all --jobs`` uses them to start the longest experiments first when its runs
    folder holds no earlier run: only their order matters, not the machine they came from."""
    try:
        table = json.loads((experiments_dir() / "seconds.json").read_text())[profile]
        return {str(k): float(v) for k, v in table.items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}


def experiment_path(name_or_path: str | Path) -> Path:
    """Resolve an experiment name (``vae-mnist``) or a path to a TOML file."""
    if not isinstance(name_or_path, str | Path):
        raise ConfigError(f"An experiment is a name (see list_experiments()) or a .toml path, "
                          f"got {name_or_path!r} ({type(name_or_path).__name__}).")
    p = Path(name_or_path)
    if p.suffix == ".toml":
        if not p.is_file():
            raise ConfigError(f"Experiment file {str(p)!r} does not exist.")
        return p
    name = str(name_or_path)
    candidate = experiments_dir() / f"{name.replace('-', '_')}.toml"
    if candidate.is_file():
        return candidate
    valid = list_experiments()
    raise ConfigError(
        f"Unknown experiment {name!r}.{_closest(name, valid)} Valid experiments: "
        f"{', '.join(valid)}. A path to your own .toml file works too."
    )


def read_toml(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"Config file {str(path)!r} is not valid TOML: {e}.") from None


def load_experiment(
    name_or_path: str | Path,
    profile: str = "quick",
    overrides: list[str] | dict[str, Any] | None = None,
) -> ExperimentConfig:
    """Load an experiment, apply a profile and ``key=value`` overrides, validate it.

    Args:
        name_or_path: an experiment name from :func:`list_experiments` or a ``.toml`` path.
        profile: ``"quick"`` (CPU minutes) or ``"full"`` (the paper's budget).
        overrides: ``["train.epochs=5", ...]`` or ``{"train.epochs": 5}``.

    Raises:
        ConfigError: unknown experiment, profile or key; wrong type; value out of range.
    """
    raw = read_toml(experiment_path(name_or_path))
    _check_choice("--profile", profile, list(PROFILES))
    profiles = raw.pop("profiles", {})
    unknown = set(profiles) - set(PROFILES)
    if unknown:
        raise ConfigError(
            f"Unknown profile(s) {sorted(unknown)} in {name_or_path}; valid: {list(PROFILES)}."
        )
    _deep_update(raw, profiles.get(profile, {}), where=f"[profiles.{profile}]")
    raw.setdefault("experiment", {})["profile"] = profile
    for key, value in _parse_overrides(overrides).items():
        _set_dotted(raw, key, value)
    return from_dict(raw)


def from_dict(raw: dict[str, Any]) -> ExperimentConfig:
    """Build and validate an :class:`ExperimentConfig` from nested dicts (TOML/JSON)."""
    if not isinstance(raw, dict):
        raise ConfigError(f"A config must be a table of sections ([experiment], [model], ...), "
                          f"got {type(raw).__name__}.")
    raw = copy.deepcopy(raw)
    sections = ["experiment", "model", "data", "train", "eval", "reference", "sweep",
                "selection"]
    for key in raw:
        if key not in sections:
            raise ConfigError(_unknown_key_message(key, sections, "section"))
    exp = raw.get("experiment", {})
    if not isinstance(exp, dict):
        raise ConfigError(f"[experiment] must be a table of key = value, got {exp!r}.")
    meta = {"name": str, "description": str, "paper": str, "profile": str}
    for key in exp:
        if key not in meta:
            raise ConfigError(_unknown_key_message(f"experiment.{key}",
                                                   [f"experiment.{k}" for k in meta]))
    for key, typ in meta.items():
        if key in exp and not isinstance(exp[key], typ):
            raise ConfigError(f"experiment.{key} must be a string, got {exp[key]!r}.")
    # the name is a folder of --runs-dir: <runs-dir>/<name>/<timestamp>
    safe_name(exp.get("name", "unnamed"), "experiment name")
    if not isinstance(raw.get("model", {}), dict):
        raise ConfigError(f"[model] must be a table of key = value, got {raw['model']!r}.")
    model_raw = dict(raw.get("model", {}))
    model_name = model_raw.pop("name", None)
    if model_name is None:
        raise ConfigError(f"[model] needs a name; valid models: {', '.join(sorted(MODELS))}.")
    _check_choice("model.name", model_name, sorted(MODELS))
    model_cls = MODELS[model_name]
    sweep = None
    if "sweep" in raw:
        sweep = build_dataclass(SweepConfig, raw["sweep"], "sweep")
        # every sweep value must be a valid override of its key
        for v in sweep.values:
            trial = copy.deepcopy(raw)
            trial.pop("sweep")
            trial.pop("selection", None)
            _set_dotted(trial, sweep.key, v)
            from_dict(trial)
    cfg = ExperimentConfig(
        name=exp.get("name", "unnamed"),
        description=exp.get("description", ""),
        paper=exp.get("paper", ""),
        profile=exp.get("profile", "quick"),
        model=build_dataclass(model_cls.Config, model_raw, "model"),
        data=build_dataclass(DataConfig, raw.get("data", {}), "data"),
        train=build_dataclass(TrainConfig, raw.get("train", {}), "train"),
        eval=build_dataclass(EvalConfig, raw.get("eval", {}), "eval"),
        reference=dict(raw.get("reference", {})),
        sweep=sweep,
        selection=_selection(raw, sweep),
    )
    shape = getattr(DATASETS[cfg.data.name], "image_shape", None)
    if isinstance(shape, tuple):  # a data set whose shape is known without reading it
        check_model_fits(model_cls, cfg.model, shape)
    return cfg


# --------------------------------------------------------------------------- helpers


def _selection(raw: dict[str, Any], sweep: SweepConfig | None) -> SelectionConfig | None:
    if "selection" not in raw:
        return None
    sel = build_dataclass(SelectionConfig, raw["selection"], "selection")
    labels = [sweep.label(i) for i in range(len(sweep.values))] if sweep else []
    missing = [a for a in sel.among if a not in labels]
    if missing:
        raise ConfigError(f"selection.among names {missing}, which are not labels of the "
                          f"[sweep] ({', '.join(labels) or 'no sweep'}).")
    if sel.label in labels:
        raise ConfigError(f"selection.label = {sel.label!r} is a sweep label already; name "
                          "the chosen arm differently (e.g. \"SdA-3\" beside \"nu=25%\").")
    return sel


def _parse_overrides(overrides: list[str] | dict[str, Any] | None) -> dict[str, Any]:
    if overrides is None:
        return {}
    if isinstance(overrides, dict):
        return dict(overrides)
    if isinstance(overrides, str):  # one "key=value" given as a plain string
        overrides = [overrides]
    if not isinstance(overrides, list | tuple):
        raise ConfigError(f"overrides must be a list of \"key=value\" strings or a dict, got "
                          f"{overrides!r} ({type(overrides).__name__}).")
    out = {}
    for item in overrides:
        if not isinstance(item, str) or "=" not in item:
            raise ConfigError(
                f"Override {item!r} is not of the form key=value "
                "(for example --set train.epochs=5)."
            )
        key, text = item.split("=", 1)
        out[key.strip()] = parse_value(text.strip())
    return out


def parse_value(text: str) -> Any:
    """Parse an override's value as a TOML literal (``5``, ``0.1``, ``true``, ``[1, 2]``);
    anything else is a string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def _set_dotted(raw: dict[str, Any], key: str, value: Any) -> None:
    parts = key.split(".")
    if len(parts) == 1 and isinstance(value, dict) and key in raw:
        raw[key] = dict(value)
        return
    if len(parts) < 2:
        raise ConfigError(
            f"Override key {key!r} must name a section and a key, like train.epochs or "
            "model.latent_dim."
        )
    node = raw
    for p in parts[:-1]:
        node = node.setdefault(p, {})
        if not isinstance(node, dict):
            raise ConfigError(f"Override key {key!r}: {p!r} is not a table.")
    node[parts[-1]] = value


def _deep_update(base: dict, upd: dict, where: str) -> None:
    for k, v in upd.items():
        if isinstance(v, dict) and isinstance(base.get(k), dict):
            _deep_update(base[k], v, where)
        elif isinstance(v, dict) and k not in base:
            base[k] = copy.deepcopy(v)
        else:
            base[k] = v


def _check(ok: bool, key: str, value: Any, expected: str) -> None:
    if not ok:
        raise ConfigError(f"{key} = {value!r} is out of range: expected {expected}.")


def reference_entry(entry: Any) -> tuple[Any, str, str]:
    """``(value, source, status)`` of one ``[reference]`` number: a table
    ``{value, source, status}`` or a bare value (no source; status "unconfirmed")."""
    if isinstance(entry, dict):
        return (entry.get("value"), str(entry.get("source", "")),
                str(entry.get("status", "unconfirmed")))
    return entry, "", "unconfirmed"
