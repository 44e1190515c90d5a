"""The pipeline the CLI exposes: train -> evaluate -> plot -> report, and sweeps.

Each step reads and writes only the run folder, so any step can be re-run on its own
(``autoencoders evaluate RUN``, ``plot RUN``, ``report RUN``).
"""

from __future__ import annotations

import copy
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from . import config as configs  # module attributes: list and load experiments as patched
from . import devices, plots
from .config import ExperimentConfig, _set_dotted, from_dict
from .data.load import has_valid, load_split
from .errors import ConfigError, DataMissingError, UserError
from .logs import configure as configure_logs
from .logs import logger as log
from .models import MODELS
from .models.estimators import average_loss_terms, iw_log_likelihood
from .provenance import write_provenance
from .registry import EVALUATORS, FIGURES, require, require_all, resolve
from .report import write_index, write_report, write_sweep_report
from .results import write_seeds_report
from .runs import SEEDS_FILE, Run, atomic_write_text, holds_lock, seed_folders, seeds_plan
from .site import build_site
from .tensorboard_log import log_figures
from .train import create_run, require_config, use_array
from .train import train as train_one


def stopped_notice(run: Run, doing: str) -> dict[str, Any]:
    """Say (one line on stderr) when ``run`` stopped before the end of its training, and
    return what was trained, for eval.json / the export's metadata: ``trained_epochs``
    (complete epochs of the last checkpoint), ``epochs`` (configured), ``finished``, and
    ``checkpoint_epoch``: the epoch of the weights used (``best.safetensors`` when
    ``eval.checkpoint = "best"`` and early stopping kept one, else the last checkpoint's)."""
    prog = run.progress()
    if prog is None:
        return {}
    best = run.best_epoch() if run.config.eval.checkpoint == "best" else None
    which = f"its best checkpoint (epoch {best})" if best else "its last checkpoint"
    note = run.stopped_note()
    if note:
        print(f"autoencoders: note: {note}: {doing} {which}.", file=sys.stderr)
    out = {"trained_epochs": prog["epochs_done"], "epochs": prog["epochs"],
           "finished": prog["finished"], "checkpoint_epoch": best or prog["epochs_done"]}
    if prog["step_in_epoch"]:
        out["trained_steps_into_next_epoch"] = prog["step_in_epoch"]
    return out


@holds_lock
def evaluate(run: Run, progress: bool = True, device: str = "auto") -> dict[str, Any]:
    """Test-set numbers for a trained run; written to ``eval.json`` and returned.

    For generative models: the test lower bound (ELBO, one posterior sample per example)
    and the importance-weighted log p(x) with ``eval.iw_samples`` samples, in nats per
    example. Every model: its loss terms on the test split, then each evaluator named in
    ``eval.metrics`` (``autoencoders.registry.EVALUATORS``), whose dict of numbers is
    merged into the result, then (with a validation split) the loss terms on it,
    ``valid/<term>``, on which an experiment's ``[selection]`` chooses among a sweep's arms.

    ``device`` (``auto``, ``cpu``, ``cuda[:N]``; see :mod:`autoencoders.devices`) is
    where the model and the test split go for the loss terms, the importance-weighted
    estimate and the evaluators (which move their batches to the model's device).

    Raises:
        ConfigError: an evaluator needs a model capability the run's model lacks (before
            anything is computed).
    """
    cfg = run.config
    t0 = time.perf_counter()
    model = run.load_model(cfg.eval.checkpoint)
    for name in cfg.eval.metrics:
        require(model, cfg.name, "evaluator", name, EVALUATORS[name].requires)
    where = devices.resolve(device)
    model = model.to(where)
    trained = stopped_notice(run, "evaluating")
    test = load_split(cfg, "test", where)
    torch.manual_seed(cfg.train.seed + 1)  # evaluation noise: fixed, separate from training
    terms = average_loss_terms(model, test.x, y=test.y)
    out: dict[str, Any] = {f"test/{k}": v for k, v in terms.items()}
    out["n_test"] = int(test.x.shape[0])
    if "rec" in terms and "kl" in terms:
        out["test/elbo"] = -(terms["rec"] + terms["kl"])
    if model.generative and cfg.eval.iw_samples:
        x = test.x[: cfg.eval.test_subset] if cfg.eval.test_subset else test.x
        t1 = time.perf_counter()
        iw_precision = devices.resolve_precision(cfg.eval.iw_precision, where, warn=False)
        ll = iw_log_likelihood(model, x, n_samples=cfg.eval.iw_samples,
                               batch_rows=cfg.eval.iw_batch, progress=progress,
                               precision=iw_precision)
        out["test/log_px"] = float(ll.mean())
        out["test/log_px_sem"] = float(ll.std() / max(len(ll), 1) ** 0.5)
        out["iw_samples"] = cfg.eval.iw_samples
        out["iw_precision"] = iw_precision
        out["iw_examples"] = int(x.shape[0])
        out["iw_seconds"] = round(time.perf_counter() - t1, 2)
    for name in cfg.eval.metrics:
        t1 = time.perf_counter()
        out.update(resolve(EVALUATORS[name].target)(run, model))
        out[f"{name}_seconds"] = round(time.perf_counter() - t1, 2)
    if has_valid(cfg):  # validation numbers of the same weights, for choices made on them
        torch.manual_seed(cfg.train.seed + 2)  # after the evaluators: their numbers stay
        valid = load_split(cfg, "valid", where)
        for k, v in average_loss_terms(model, valid.x, y=valid.y).items():
            out[f"valid/{k}"] = v
        if "diagnostics" in model.capabilities:  # e.g. dead units, KL per latent
            out.update({f"valid/{k}": v for k, v in model.diagnostics(valid.x).items()})
    out.update(trained)
    out["eval_seconds"] = round(time.perf_counter() - t0, 2)
    atomic_write_text(run.path / "eval.json", json.dumps(out, indent=2))
    return out


@holds_lock
def plot(run: Run, figures: list[str] | None = None) -> list[Path]:
    """Draw the run's figures (``eval.figures``, or ``figures`` when given) into
    ``<run>/figures`` (on the CPU: a figure needs a few hundred images at most).

    Returns the paths written; a figure that does not apply to the run's data or
    configuration (e.g. ``manifold`` of a latent space that is not 2-D) writes nothing.

    Raises:
        ConfigError: a figure needs a model capability the run's model lacks (checked for
            every figure before any is drawn).
    """
    cfg = run.config
    names = list(cfg.eval.figures if figures is None else figures)
    model = run.load_model(cfg.eval.checkpoint)
    for name in names:
        require(model, cfg.name, "figure", name, FIGURES[name].requires)
    fig_dir = run.path / "figures"
    written = [draw(name, run, model, fig_dir / f"{name}.png") for name in names]
    _figures_to_tensorboard(run)
    return [p for p in written if p is not None]


def draw(name: str, run: Run, model, path: str | Path) -> Path | None:
    """Draw the registered figure ``name`` (``registry.FIGURES``) for a run."""
    return resolve(FIGURES[name].target)(run, model, Path(path))


def _figures_to_tensorboard(run: Run) -> None:
    """Mirror ``<run>/figures`` into ``<run>/tensorboard`` when the run logs there
    (``train.tensorboard``, or a tensorboard folder from an earlier ``--tensorboard``)."""
    if not (run.config.train.tensorboard or (run.path / "tensorboard").is_dir()):
        return
    try:
        log_figures(run.path)
    except UserError as e:  # the figures are drawn; only their mirror is missing
        log.warning(f"autoencoders: note: figures not logged to TensorBoard: {e}")


def reproduce(config: ExperimentConfig, runs_dir: str = "runs", progress: bool = True,
              command: str = "", seeds: int = 1) -> Run:
    """Train, evaluate, plot and report one experiment (every sweep value if it has one).

    With ``seeds = N > 1`` the whole experiment runs N times, with ``train.seed`` = s,
    s + 1, ..., s + N - 1 (s = the config's seed; data splits keep ``data.split_seed``),
    each in ``<run>/seed<k>/``, and ``<run>/report.md`` gives every number's mean, standard
    deviation and each seed's value. Every reproduction writes ``provenance.json`` (command,
    commit, hardware, versions, wall time) into its folder.

    Raises:
        ConfigError: a figure or evaluator needs a capability the model lacks (before
            anything is trained).
    """
    if not isinstance(config, ExperimentConfig):
        raise ConfigError(f"reproduce takes an ExperimentConfig, e.g. "
                          f"reproduce(load_experiment(\"vae-mnist\")), got {config!r} "
                          f"({type(config).__name__}).")
    if isinstance(seeds, bool) or not isinstance(seeds, int) or not 1 <= seeds <= 100:
        raise ConfigError(f"seeds = {seeds!r} is not valid: give an integer from 1 to 100 "
                          "(the number of training seeds, e.g. --seeds 3).")
    sweep = config.sweep is not None and bool(config.sweep.values)
    for _, run_config, _ in sweep_children(config) if sweep else [("", config, [])]:
        require_all(run_config)  # in a sweep, after leaving out figures a model lacks
    devices.check(config.train)  # device and precision, before any run folder is made
    if seeds > 1:
        return _reproduce_seeds(config, runs_dir, progress, command, seeds)
    return _reproduce_into(config, None, runs_dir, progress, command)


def _reproduce_into(config: ExperimentConfig, path: Path | None, runs_dir: str,
                    progress: bool, command: str) -> Run:
    """One reproduction (a single run or a sweep) into ``path`` (None: a new timestamped
    folder under ``runs_dir``)."""
    if config.sweep is not None and config.sweep.values:
        return _reproduce_sweep(config, runs_dir, progress, command, path)
    t0 = time.perf_counter()
    run = Run.create(config, runs_dir, path=path)
    with run.lock():
        run.log_command(command)
        run = train_stages(config, run, progress=progress)
        evaluate(run, progress=progress, device=config.train.device)
        plot(run)
        wall = time.perf_counter() - t0
        write_report(run, command=command, wall_seconds=wall)
        write_provenance(run, command, wall, kind="single")
    return run


def _reproduce_seeds(config: ExperimentConfig, runs_dir: str, progress: bool, command: str,
                     seeds: int) -> Run:
    t0 = time.perf_counter()
    parent = Run.create(config, runs_dir)
    with parent.lock():
        return _run_seeds(config, parent, runs_dir, progress, command, seeds, t0)


def _run_seeds(config: ExperimentConfig, parent: Run, runs_dir: str, progress: bool,
               command: str, seeds: int, t0: float, resume: bool = False,
               device: str | None = None) -> Run:
    """Train seeds ``config.train.seed`` .. ``+ seeds - 1`` into ``<parent>/seed<k>/``;
    with ``resume``, a seed folder already started is finished instead and a seed never
    started is run from the beginning."""
    parent.log_command(command)
    if not resume:
        atomic_write_text(parent.path / SEEDS_FILE, json.dumps(
            {"seeds": seeds, "first": config.train.seed}))
    children: list[tuple[str, Run]] = []
    for i in range(seeds):
        raw = config.to_dict()
        seed = config.train.seed + i
        _set_dotted(raw, "train.seed", seed)
        label = f"seed{seed}"
        if progress:
            log.info(f"=== {config.name}: seed {seed} ({i + 1} of {seeds})")
        if resume and (parent.path / label / "config.json").is_file():
            child = resume_reproduction(parent.path / label, progress, command, device)
        else:
            child = _reproduce_into(from_dict(raw), parent.path / label, runs_dir, progress,
                                    command)
        children.append((label, child))
    wall = time.perf_counter() - t0
    write_provenance(parent, command, wall, kind="seeds",
                     children=[label for label, _ in children])
    write_seeds_report(parent, children, command=command, wall_seconds=wall)
    return parent


def train(config: ExperimentConfig, run: Run | None = None, *, runs_dir: str = "runs",
          resume: bool = False, progress: bool = True, **options: Any) -> Run:
    """Train an experiment as ``autoencoders train`` does: in its model's stages
    (:func:`train_stages`; the stacked DAE pre-trains layer by layer, then fine-tunes).

    Args:
        config: a resolved experiment (``config.load_experiment``).
        run: an existing run folder to write into (required with ``resume``).
        runs_dir: where a new run folder is made when ``run`` is None.
        resume: continue ``run`` from its last checkpoint, bit-identically (the stage that
            run folder holds).
        progress: show progress bars.
        **options: passed to :func:`autoencoders.train.train` (``log_epochs``,
            ``stop_after_steps``, ``train_data`` and ``train_labels``: your own images
            instead of ``config.data``).

    Returns:
        The :class:`Run` (for a staged model, the run of its last stage).

    Example:
        >>> cfg = load_experiment("vae-mnist", overrides=["train.epochs=1"])  # doctest: +SKIP
        >>> run = train(cfg)                                                 # doctest: +SKIP
    """
    require_config(config)
    if options.get("train_data") is not None:  # saved once, then every stage trains on it
        config = use_array(config, options.pop("train_data"), options.pop("train_labels", None),
                           run)
    options.pop("train_data", None)
    options.pop("train_labels", None)
    plan = MODELS[config.model_name].stages(config.model)
    if resume or (len(plan) == 1 and not plan[0][1]):
        return train_one(config, run, runs_dir=runs_dir, resume=resume, progress=progress,
                         **options)
    return train_stages(config, run or create_run(config, runs_dir), progress=progress,
                        **options)


def train_stages(config: ExperimentConfig, run: Run, progress: bool = True,
                 resume: bool = False, **options: Any) -> Run:
    """Train ``run`` in the stages of its model class (``stages(model_config)``): one stage
    for most models; the stacked DAE trains as a chain of runs, each initialised from the
    previous one with ``train.init_from``.

    Every stage but the last is its own run in ``<run>/<label>/``; the last stage trains in
    ``run`` itself, whose ``config.json`` then records the stage and its ``init_from``.
    ``options`` go to :func:`autoencoders.train.train` (``log_epochs``, ...).

    ``resume``: continue an interrupted training: finished stages are kept, an unfinished
    one continues from its last checkpoint (bit-identically), missing ones are trained.
    """
    plan = MODELS[config.model_name].stages(config.model)
    if len(plan) == 1 and not plan[0][1]:  # one stage as configured: train the run itself
        return train_one(config, run, progress=progress, resume=resume, **options)
    previous = config.train.init_from
    if resume and plan and (run.path / plan[0][0] / "config.json").is_file():
        previous = Run.load(run.path / plan[0][0]).config.train.init_from  # the original
    for i, (label, overrides) in enumerate(plan):
        raw = config.to_dict()
        raw.pop("sweep", None)
        raw.pop("selection", None)
        for key, value in {**overrides, "train.init_from": previous}.items():
            _set_dotted(raw, key, value)
        stage_cfg = from_dict(raw)
        last = i == len(plan) - 1
        path = run.path if last else run.path / label
        if resume and not last and (path / "config.json").is_file():
            stage_run = Run.load(path)
            if not trained(stage_run):
                train_one(stage_run.config, stage_run, resume=True, progress=progress,
                          **options)
            previous = str(stage_run.path)
            continue
        started = resume and last and trained_stage(run, stage_cfg)
        stage_run = Run.load(path) if started else Run.create(stage_cfg, path=path,
                                                              exist_ok=last)
        if progress:
            log.info(f"--- stage {label}")
        train_one(stage_run.config, stage_run, progress=progress, resume=started, **options)
        previous = str(stage_run.path)
    return Run.load(run.path)


def trained(run: Run) -> bool:
    """Whether ``run``'s training has finished (its last checkpoint says so)."""
    return run.has_checkpoint() and bool(run.load_checkpoint()[1].get("finished"))


def trained_stage(run: Run, stage_cfg: ExperimentConfig) -> bool:
    """Whether ``run`` already holds the last stage's config (that stage has started)."""
    def key(cfg: ExperimentConfig) -> dict:
        raw = cfg.to_dict()
        raw["train"].pop("init_from")  # a path: the same folder may be spelled otherwise
        return raw

    return key(run.config) == key(stage_cfg) and run.has_checkpoint()


def resume_reproduction(path: str | Path, progress: bool = True, command: str = "",
                        device: str | None = None) -> Run:
    """Continue an interrupted ``reproduce``: finish training (from the last checkpoint),
    then run whichever of evaluate, plot and report has not been done; for a sweep, the
    same for every value, then the sweep's figures and report.

    ``device`` (e.g. ``"cuda"``) moves the rest of the work to another device; the run's
    numbers otherwise follow its config.

    Raises:
        CheckpointError: ``path`` is not a run folder.
    """
    t0 = time.perf_counter()
    run = Run.load(path)
    with run.lock():  # one process per run folder, as for reproduce
        return _resume(run, progress, command, device, t0)


def _resume(run: Run, progress: bool, command: str, device: str | None, t0: float) -> Run:
    run.log_command(command)
    cfg = run.config
    if device:
        cfg.train.device = device
        cfg.train.validate()
    plan = seeds_plan(run.path)
    if plan is not None:  # a --seeds reproduction: every seed of its plan, then the table
        n, first = plan
        cfg.train.seed = first
        return _run_seeds(cfg, run, str(run.path.parent), progress, command, n, t0,
                          resume=True, device=device)
    seeds = seed_folders(run.path)
    if seeds:  # a --seeds folder from before seeds.json: finish the seeds it started
        children = [(p.name, resume_reproduction(p, progress, command, device))
                    for p in seeds]
        wall = time.perf_counter() - t0
        write_provenance(run, command, wall, kind="seeds",
                         children=[label for label, _ in children])
        write_seeds_report(run, children, command=command, wall_seconds=wall)
        return run
    if cfg.sweep is not None and cfg.sweep.values:
        return _reproduce_sweep(cfg, "", progress, command, parent=run)
    run = _finish(cfg, run, progress, command, time.perf_counter() - t0)
    write_provenance(run, command, time.perf_counter() - t0, kind="single")
    return run


def _finish(config: ExperimentConfig, run: Run, progress: bool, command: str,
            wall_seconds: float | None) -> Run:
    """Train (resuming) unless finished; evaluate and plot unless done; write the report.

    The figures are ``config``'s: in a sweep, the plan's (which leaves out a figure the
    child's model lacks, even if an older child folder's own config lists it)."""
    if not trained(run):
        run = train_stages(config, run, progress=progress, resume=True)
    if not (run.path / "eval.json").is_file():
        evaluate(run, progress=progress, device=config.train.device)
    if not all((run.path / "figures" / f"{name}.png").is_file()
               for name in config.eval.figures):
        plot(run, config.eval.figures)
    write_report(run, command=command, wall_seconds=wall_seconds)
    return run


def sweep_children(config: ExperimentConfig
                   ) -> list[tuple[str, ExperimentConfig, list[tuple[str, list[str]]]]]:
    """The runs of a sweep: ``(label, config, figures left out)`` per value.

    A sweep over whole models (``key = "model"``) shares one ``eval.figures``; a figure
    that needs a capability one of the models lacks (``sticks`` for the Gaussian VAE
    beside the stick-breaking one) is left out of that run's figures, and named with the
    missing capabilities, rather than failing the sweep. Outside sweeps a missing
    capability is an error (:func:`plot`)."""
    out = []
    for i, value in enumerate(config.sweep.values):
        raw = config.to_dict()
        raw.pop("sweep")
        raw.pop("selection", None)  # chosen among the sweep's runs, not inside one
        _set_dotted(raw, config.sweep.key, value)
        label = config.sweep.label(i)
        # [reference."<label>"] holds the paper's numbers for this run of the sweep
        raw["reference"] = dict(config.reference.get(label, {}))
        child = from_dict(copy.deepcopy(raw))
        caps = MODELS[child.model_name].capabilities
        skipped = [(name, sorted(FIGURES[name].requires - caps))
                   for name in child.eval.figures if not FIGURES[name].requires <= caps]
        if skipped:
            raw["eval"]["figures"] = [f for f in child.eval.figures
                                      if f not in dict(skipped)]
            child = from_dict(raw)
        out.append((label, child, skipped))
    return out


def _reproduce_sweep(config: ExperimentConfig, runs_dir: str, progress: bool,
                     command: str, path: Path | None = None, parent: Run | None = None
                     ) -> Run:
    t0 = time.perf_counter()
    plan = sweep_children(config)
    resume = parent is not None
    if parent is None:
        parent = Run.create(config, runs_dir, path=path)
        parent.log_command(command)
    with parent.lock():
        return _run_sweep(config, plan, parent, progress, command, t0, resume)


def _run_sweep(config: ExperimentConfig, plan: list, parent: Run, progress: bool,
               command: str, t0: float, resume: bool = False) -> Run:
    children: list[tuple[str, Run]] = []
    for label, child_cfg, skipped in tqdm(plan,
                                          desc=f"sweep {config.sweep.key}",
                                          disable=not progress):
        if progress:
            log.info(f"--- {label}")
            for name, missing in skipped:
                log.info(f"figure {name!r} left out for {label}: its model lacks the "
                         f"capability {', '.join(missing)}")
        if resume and (parent.path / label / "config.json").is_file():
            child = _finish(child_cfg, Run.load(parent.path / label), progress, command, None)
            children.append((label, child))
            continue
        child = Run.create(child_cfg, path=parent.path / label)
        child = train_stages(child_cfg, child, progress=progress)
        evaluate(child, progress=progress, device=child_cfg.train.device)
        plot(child)
        write_report(child, command=command, wall_seconds=None)
        children.append((label, child))
    plots.plot_curves([(label, r.metrics()) for label, r in children],
                      parent.path / "figures" / "curves.png",
                      title=f"{config.name}: lower bound vs training samples")
    for name in config.eval.figures:  # each run's figure side by side (e.g. filters per k)
        if name != "curves":
            plots.side_by_side([child.path / "figures" / f"{name}.png" for _, child in children],
                               [label for label, _ in children],
                               parent.path / "figures" / f"{name}.png")
    _figures_to_tensorboard(parent)
    wall = time.perf_counter() - t0
    write_sweep_report(parent, children, command=command, wall_seconds=wall)
    write_provenance(parent, command, wall, kind="sweep",
                     children=[label for label, _ in children])
    return parent


def finished_run(runs_dir: str | Path, name: str, profile: str) -> Run | None:
    """The newest run of experiment ``name`` with ``profile`` in ``runs_dir`` whose
    reproduction finished (training done, ``eval.json`` and ``report.md`` written)."""
    folder = Path(runs_dir) / name
    if not folder.is_dir():
        return None
    for path in sorted(folder.iterdir(), reverse=True):  # timestamps: newest first
        if not ((path / "report.md").is_file() and (path / "config.json").is_file()):
            continue
        try:
            run = Run.load(path)
        except UserError:
            continue
        if run.config.profile != profile:
            continue
        sweep = run.config.sweep is not None and run.config.sweep.values
        if sweep or ((path / "eval.json").is_file() and trained(run)):
            return run
    return None


def reproduce_all(profile: str = "quick", runs_dir: str = "runs", progress: bool = True,
                  data_dir: str | None = None, command: str = "",
                  only: list[str] | None = None, skip_done: bool = False,
                  jobs: int = 1) -> Path:
    """Run every shipped experiment; skip (with a reason) those whose data is absent.

    Args:
        only: run just these experiments (names from ``list_experiments``).
        skip_done: keep an experiment's finished run of the same profile in ``runs_dir``
            (see :func:`finished_run`) instead of running it again; it still appears in
            the index.
        jobs: experiments run at once, each in its own process with ``cores // jobs``
            torch threads (at least one). Small models use a core far better alone than
            two threads of one process do, so on 2 cores ``jobs = 2`` roughly halves the
            wall time; every experiment's numbers are those it gives alone (the seed, not
            the schedule, decides them; the thread count can move the last digits of a
            float sum).

    Writes ``<runs_dir>/index.md`` with one section per paper and returns its path.

    Raises:
        ConfigError: a name in ``only`` is not a shipped experiment, or ``jobs`` < 1.
    """
    t0 = time.perf_counter()
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ConfigError(f"jobs = {jobs!r} is not valid: give a whole number >= 1 (the "
                          "experiments run at once, e.g. --jobs 2 on a 2-core machine).")
    names = configs.list_experiments()
    if only:
        unknown = [n for n in only if n not in names]
        if unknown:
            raise ConfigError(f"--only names unknown experiment(s) {', '.join(unknown)}; "
                              f"valid: {', '.join(names)}.")
        names = [n for n in names if n in only]
    results, todo = [], []
    for name in names:
        overrides = [f'data.data_dir="{data_dir}"'] if data_dir else []
        cfg = configs.load_experiment(name, profile, overrides)
        row = {"name": name, "paper": cfg.paper, "description": cfg.description}
        results.append(row)
        done = finished_run(runs_dir, cfg.name, profile) if skip_done else None
        if done is not None:
            log.info(f"done {name}: keeping {done.path}")
            row.update(status="done", run=done, seconds=0.0)
            continue
        try:
            load_split(cfg, "train", stream=True)  # data present? (downloads when allowed)
        except DataMissingError as e:
            row.update(status="skipped", reason=f"data absent: {e}")
            log.info(f"skip {name}: data for {cfg.data.name!r} is absent")
            continue
        todo.append((row, cfg))
    if jobs == 1 or len(todo) <= 1:
        for row, cfg in todo:
            log.info(f"=== {row['name']} ({profile})")
            row.update(_reproduce_one(cfg, runs_dir, progress,
                                      f"{command} [{row['name']}]" if command else ""))
    else:  # the longest first (by their last run here, or the shipped seconds), so no long
        # one runs alone at the end
        todo.sort(key=lambda rc: -_last_seconds(runs_dir, rc[1].name, profile))
        _reproduce_parallel(todo, runs_dir, command, jobs, progress)
    for row in results:
        if isinstance(row.get("run"), (str, Path)):
            row["run"] = Run.load(row["run"])
    index = write_index(runs_dir, results, profile, time.perf_counter() - t0)
    done = [r["run"].path for r in results if r["status"] == "done"]
    if done:  # the results site of these runs: <runs_dir>/site/index.html
        try:
            log.info(f"site: {build_site(done, Path(runs_dir) / 'site', data_dir=data_dir)}")
        except UserError as e:
            log.warning(f"site not built: {e}")
    return index


def _reproduce_one(cfg: ExperimentConfig, runs_dir: str, progress: bool, command: str,
                   tagged: bool = False) -> dict[str, Any]:
    """One experiment of ``reproduce all``: ``status``, ``run`` (its folder), ``seconds``
    and, when it failed with a user error, the ``reason``."""
    t1 = time.perf_counter()
    tag = _NameTag(cfg.name)
    if tagged:  # in a worker beside others: say whose each status line is
        log.addFilter(tag)
    try:
        run = reproduce(cfg, runs_dir=runs_dir, progress=progress, command=command)
        out: dict[str, Any] = {"status": "done", "run": str(run.path)}
    except UserError as e:
        out = {"status": "failed", "reason": str(e)}
        log.warning(f"failed {cfg.name}: {e}")
    finally:
        log.removeFilter(tag)
    out["seconds"] = time.perf_counter() - t1
    return out


class _NameTag(logging.Filter):
    """Prefixes each status line with ``[experiment]``."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.tag = f"[{name}] "

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str) and not record.msg.startswith(self.tag):
            record.msg = self.tag + record.msg
        return True


def _last_seconds(runs_dir: str, name: str, profile: str) -> float:
    """Wall seconds of the last finished run of ``name`` with ``profile`` in ``runs_dir``
    (from its provenance.json); without one, its seconds in the shipped
    ``experiments/seconds.json`` (:func:`config.shipped_seconds`); infinity when neither
    knows it (unknown: start it early)."""
    unknown = configs.shipped_seconds(profile).get(name, float("inf"))
    run = finished_run(runs_dir, name, profile)
    if run is None:
        return unknown
    try:
        return float(json.loads((run.path / "provenance.json").read_text())["wall_seconds"])
    except (OSError, ValueError, KeyError, TypeError):
        return unknown


def _job_start(threads: int, level: int) -> None:
    """Set-up of a ``reproduce all --jobs`` worker process: its torch threads and log level."""
    torch.set_num_threads(threads)
    configure_logs(level)


def _reproduce_parallel(todo: list, runs_dir: str, command: str, jobs: int,
                        progress: bool) -> None:
    """Run ``todo`` (``(row, config)`` pairs) in ``jobs`` worker processes, filling each
    row as its experiment ends. Workers print their status lines (no progress bars: they
    would interleave); this process shows one bar over the experiments."""
    import concurrent.futures as cf
    import multiprocessing
    import os

    threads = max(1, (os.cpu_count() or 1) // jobs)
    log.info(f"{len(todo)} experiments, {jobs} at a time, {threads} torch thread(s) each")
    ctx = multiprocessing.get_context("spawn")  # no forked OpenMP or torch state
    bar = tqdm(total=len(todo), desc="experiments", unit="exp", disable=not progress)
    with cf.ProcessPoolExecutor(max_workers=jobs, mp_context=ctx, initializer=_job_start,
                                initargs=(threads, log.getEffectiveLevel())) as pool:
        futures = {}
        for row, cfg in todo:
            cmd = f"{command} [{row['name']}]" if command else ""
            futures[pool.submit(_reproduce_one, cfg, runs_dir, False, cmd, True)] = row
        try:
            for future in cf.as_completed(futures):
                row = futures[future]
                try:
                    row.update(future.result())
                except Exception as e:  # noqa: BLE001 - one experiment's bug, not all
                    row.update(status="failed", reason=f"{type(e).__name__}: {e}",
                               seconds=None)
                    log.warning(f"failed {row['name']}: {type(e).__name__}: {e}")
                else:
                    log.info(f"{row['status']} {row['name']} in {row['seconds']:.0f} s")
                bar.update(1)
        except KeyboardInterrupt:
            pool.shutdown(wait=True, cancel_futures=True)  # workers checkpoint and stop
            raise
        finally:
            bar.close()
