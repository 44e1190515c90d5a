"""The trainer: one loop for every model.

It calls ``model.loss(x)`` and logs the named terms; it never checks the model's type.

- Data: the train split is one tensor on the device, or, when it would not fit
  (``data.storage``), a memory-mapped uint8 cache read and converted batch by batch; a
  batch is an index slice of a per-epoch permutation either way (no DataLoader, no
  per-sample Python), so both give the same batches.
- Randomness: ``train.seed`` seeds torch, numpy and Python; data order and dynamic
  binarisation draw from their own ``torch.Generator``. Every RNG state is checkpointed, so
  a resumed run continues with the very same batches and noise: bit-identical weights.
- Checkpoints: at every epoch end and every ``train.checkpoint_every`` steps, atomically
  (see ``runs.py``). Ctrl-C finishes the current step, writes a checkpoint and says how
  to resume.
- A NaN or infinite loss stops the run before the bad step is applied, naming the epoch,
  step and terms; the last good checkpoint stays.
- ``train.tensorboard``: every metrics.jsonl row is also written as TensorBoard scalars
  into ``<run>/tensorboard/`` (rank 0, once per epoch: nothing per step).
"""

from __future__ import annotations

import dataclasses
import random
import signal
import time
from collections.abc import Callable
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

import numpy as np
import torch
from tqdm.auto import tqdm

from . import devices, distributed, tensorboard_log
from .config import ExperimentConfig
from .data import ImageData, draw_binary
from .data.load import has_valid, load_split
from .data.own import save_array
from .errors import RunInUseError, TrainingDiverged, TrainingInterrupted, UserError
from .logs import logger as log
from .models import build_model
from .models.base import Loss
from .models.estimators import average_loss_terms
from .openmp import flush_denormals
from .runs import Run, headline

__all__ = ["TrainState", "checkpoint", "create_run", "end_epoch", "has_valid",
           "init_weights_", "load_split", "make_optimizer", "run_epoch", "seed_everything",
           "train", "train_step", "use_array", "validate"]


def make_optimizer(model: torch.nn.Module, cfg) -> torch.optim.Optimizer:
    """The configured optimiser with PyTorch's fused kernel (one pass over all parameters:
    on a 14M-parameter net, Adam's step drops from ~44 ms with ``foreach`` to ~6 ms)."""
    params = list(model.parameters())
    cls = {"adagrad": torch.optim.Adagrad, "adam": torch.optim.Adam}.get(cfg.optimizer,
                                                                         torch.optim.SGD)
    kw = {"lr": cfg.lr, "weight_decay": cfg.weight_decay}
    if cls is torch.optim.SGD:
        kw["momentum"] = cfg.momentum
    try:
        return cls(params, **kw, fused=True)
    except (RuntimeError, TypeError, ValueError):  # no fused kernel for this device/dtype
        return cls(params, **kw, foreach=True)


@torch.no_grad()
def init_weights_(model: torch.nn.Module, run_path: str) -> list[str]:
    """Copy the last checkpoint of the run folder ``run_path`` into ``model``: every
    parameter or buffer with the same name and shape. Returns the names copied.

    Raises:
        CheckpointError: the folder is not a run or has no checkpoint.
        UserError: no name and shape match (the run trained another architecture).
    """
    weights, _ = Run.load(run_path).load_checkpoint()
    own = model.state_dict()
    copied = [k for k, v in weights.items() if k in own and own[k].shape == v.shape]
    if not copied:
        raise UserError(
            f"train.init_from = {run_path!r}: none of its weights fit this model (names: "
            f"{', '.join(sorted(weights)[:5])}, ...; this model has "
            f"{', '.join(sorted(own)[:5])}, ...). Point it at a run of the same architecture.")
    for k in copied:
        own[k].copy_(weights[k])
    return copied


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _rng_state(data_gen: torch.Generator, device: torch.device | None = None
               ) -> dict[str, Any]:
    np_state = np.random.get_state()
    cuda = {"cuda": torch.cuda.get_rng_state(device)} if device is not None and \
        device.type == "cuda" else {}
    return {**cuda,
        "torch": torch.get_rng_state(),
        "data": data_gen.get_state(),
        "numpy_keys": torch.from_numpy(np_state[1].astype(np.int64)),
        "numpy_pos": int(np_state[2]),
        "python": [list(random.getstate()[1]), random.getstate()[0], random.getstate()[2]],
    }


def _set_rng_state(state: dict[str, Any], data_gen: torch.Generator,
                   device: torch.device | None = None) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and device is not None and device.type == "cuda":
        torch.cuda.set_rng_state(state["cuda"], device)
    data_gen.set_state(state["data"])
    np.random.set_state(("MT19937", state["numpy_keys"].numpy().astype(np.uint32),
                         state["numpy_pos"], 0, 0.0))
    keys, version, gauss = state["python"]
    random.setstate((version, tuple(keys), gauss))


@contextmanager
def _sigint_flag():
    """Turn Ctrl-C into a flag checked between steps, so a step is never cut in half."""
    flag = {"hit": False}
    if signal.getsignal(signal.SIGINT) is None:  # not the main thread's handler to set
        yield flag
        return

    def handler(signum, frame):
        if flag["hit"]:  # second Ctrl-C: give up at once
            raise KeyboardInterrupt
        flag["hit"] = True

    try:
        old = signal.signal(signal.SIGINT, handler)
    except ValueError:  # not in the main thread
        yield flag
        return
    try:
        yield flag
    finally:
        signal.signal(signal.SIGINT, old)


def train(config: ExperimentConfig, run: Run | None = None, *, runs_dir: str = "runs",
          resume: bool = False, progress: bool = True, log_epochs: bool = True,
          stop_after_steps: int = 0, train_data=None, train_labels=None) -> Run:
    """Train the experiment's model; write metrics and checkpoints into a run folder.

    Args:
        config: a resolved experiment (``config.load_experiment``).
        run: an existing run folder to write into (required with ``resume``).
        runs_dir: where a new run folder is made when ``run`` is None.
        resume: continue from ``run``'s last checkpoint, bit-identically.
        progress: show a progress bar.
        log_epochs: print one summary line per epoch.
        stop_after_steps: testing aid: stop (after checkpointing) once this many optimiser
            steps have run in this call (0: run to the end).
        train_data: your own images instead of ``config.data`` (numpy array or tensor,
            ``(N, H, W)``, ``(N, H, W, C)`` or ``(N, C, H, W)``, uint8 or float in [0, 1]):
            saved once to the user cache as a ``.npz`` and trained on as
            ``data.name = "array"`` (valid and test carved by ``data.valid_fraction`` and
            ``data.test_fraction``), so evaluate, plot and resume find them again.
        train_labels: ``(N,)`` integer labels for ``train_data`` (optional).

    Returns:
        The :class:`Run`.

    Example:
        >>> cfg = load_experiment("vae-mnist", overrides=["train.epochs=1"])  # doctest: +SKIP
        >>> run = train(cfg)                                                 # doctest: +SKIP
    """
    require_config(config)
    if resume:
        check_resumable(run)
    if train_data is not None:
        config = use_array(config, train_data, train_labels, run)
    threads = torch.get_num_threads()
    made: dict[str, Run] = {"run": run} if run is not None else {}
    try:
        with ExitStack() as stack:  # holds the run's lock until the failure is marked
            try:
                return _train(config, run, runs_dir=runs_dir, resume=resume,
                              progress=progress, log_epochs=log_epochs,
                              stop_after_steps=stop_after_steps, stack=stack, made=made)
            except (UserError, OSError, RuntimeError) as e:
                # the folder stays, marked, so `autoencoders runs` tells why it has no results
                failed = made.get("run")
                if (failed is not None and distributed.is_main()
                        and not failed.has_checkpoint()
                        and not isinstance(e, TrainingInterrupted | RunInUseError)):
                    failed.mark_failed(str(e).splitlines()[0] if str(e) else type(e).__name__)
                raise
    finally:  # train.threads is process-wide in torch: do not leak it to the next run
        torch.set_num_threads(threads)


def require_config(config: Any, what: str = "train") -> None:
    """Raise a UserError unless ``config`` is an :class:`ExperimentConfig`."""
    if not isinstance(config, ExperimentConfig):
        raise UserError(f"{what} takes an ExperimentConfig, e.g. "
                        f"{what}(load_experiment(\"vae-mnist\")), got {config!r} "
                        f"({type(config).__name__}).")


def check_resumable(run: Run | None) -> None:
    """Raise a UserError unless ``run`` is one run folder that ``--resume`` can continue."""
    if run is None:
        raise UserError("train(..., resume=True) needs the run folder to resume: "
                        "train(run.config, run, resume=True).")
    if (run.config.sweep is not None and run.config.sweep.values
            and not run.has_checkpoint()):  # else a run of a sweep's base config
        children = sorted(p.name for p in run.path.iterdir() if (p / "config.json").is_file())
        raise UserError(
            f"{run.path} is the folder of a sweep over {run.config.sweep.key}, not one run: "
            f"resume one of its runs instead ({', '.join(children) or 'none was made'}), e.g. "
            f"`autoencoders train --resume {run.path / (children[0] if children else 'LABEL')}`.")


def use_array(config: ExperimentConfig, x, labels=None, run: Run | None = None
              ) -> ExperimentConfig:
    """``config`` with its data replaced by the in-memory images ``x`` (see ``train``)."""
    if run is not None:
        raise UserError("train(config, run, train_data=...): a run folder already fixes its "
                        "data in config.json; pass train_data without run.")
    path = save_array(x, labels)
    data = dataclasses.replace(config.data, name="array", path=str(path), data_dir=None,
                               size=0, image_size=0, channels=0)
    data.validate()
    return dataclasses.replace(config, data=data)


@dataclass
class TrainState:
    """Everything training needs to continue bit-identically: what ``checkpoint`` writes
    and ``--resume`` reads, whole (every field goes both ways, see :meth:`to_checkpoint`).

    ``epoch`` and ``step_in_epoch`` say where training continues: the epoch (0-based) and
    the batch in it; ``perm`` is that epoch's order of the train split and ``acc`` the
    running sums (loss and terms, times batch size) over its batches so far.
    """

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    data_gen: torch.Generator  # data order and dynamic binarisation
    #: fp16 only (CUDA): scales the loss so small gradients survive float16; disabled
    #: (a no-op, and not written) otherwise
    scaler: torch.amp.GradScaler = field(
        default_factory=lambda: torch.amp.GradScaler("cuda", enabled=False))
    epoch: int = 0
    step_in_epoch: int = 0
    global_step: int = 0
    samples: int = 0
    elapsed: float = 0.0  # seconds of training, over every call
    best: float = float("inf")  # best valid/loss (train/loss without a valid split)
    bad_epochs: int = 0  # epochs since ``best`` improved (early stopping)
    perm: torch.Tensor | None = None
    acc: torch.Tensor | None = None
    finished: bool = False

    #: fields not written as they are: the weights go to their own file, the optimiser
    #: and the generators are written as their states
    _OBJECTS: ClassVar[tuple[str, ...]] = ("model", "optimizer", "data_gen", "scaler")
    #: tensors written on the CPU (so a GPU run resumes on any device), read onto the device
    _TENSORS: ClassVar[tuple[str, ...]] = ("perm", "acc")

    def to_checkpoint(self, device: torch.device | None = None) -> dict[str, Any]:
        """The state file's dict (the weights are saved separately); ``device``: the one
        training runs on (its CUDA RNG state is saved too)."""
        out = {f.name: getattr(self, f.name) for f in fields(self)
               if f.name not in self._OBJECTS}
        for k in self._TENSORS:
            out[k] = None if out[k] is None else out[k].cpu()
        return {"optimizer": self.optimizer.state_dict(),
                "rng": _rng_state(self.data_gen, device),
                **({"scaler": self.scaler.state_dict()} if self.scaler.is_enabled() else {}),
                **out}

    def load_checkpoint(self, state: dict[str, Any], device: torch.device | None = None
                        ) -> None:
        """Restore everything :meth:`to_checkpoint` wrote (but the weights); tensors onto
        ``device``."""
        self.optimizer.load_state_dict(state["optimizer"])
        if "scaler" in state:
            self.scaler.load_state_dict(state["scaler"])
        _set_rng_state(state["rng"], self.data_gen, device)
        for f in fields(self):
            if f.name not in self._OBJECTS:
                value = state[f.name]
                if f.name in self._TENSORS and value is not None and device is not None:
                    value = value.to(device)
                setattr(self, f.name, value)


@dataclass
class _Session:
    """What stays fixed while one call of :func:`train` runs (nothing here is saved)."""

    config: ExperimentConfig
    run: Run
    x: Any  # the train split: a tensor, or StreamedImages read batch by batch
    y: torch.Tensor | None  # its labels, on the device, for models that use them
    dynamic: bool  # dynamic binarisation: each batch sampled from the data generator
    valid: ImageData | None
    loss_fn: Callable[[torch.Tensor, torch.Tensor | None], Loss]
    device: torch.device
    precision: str  # "fp32", "bf16" or "fp16" (resolved from train.precision)
    rank: int
    world: int
    progress: bool
    log_epochs: bool
    stop_after_steps: int
    sigint: dict[str, bool] = field(default_factory=dict)
    tb: tensorboard_log.TensorBoardLog | None = None
    steps_this_call: int = 0
    term_names: list[str] = field(default_factory=list)  # "loss" and the model's terms

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def n_batches(self) -> int:
        return (self.x.shape[0] + self.config.train.batch_size - 1) // self.config.train.batch_size

    def should_stop(self) -> bool:
        """Ctrl-C was pressed, or the testing aid's step budget is spent."""
        return self.sigint["hit"] or bool(
            self.stop_after_steps and self.steps_this_call >= self.stop_after_steps)


def _train(config: ExperimentConfig, run: Run | None, *, runs_dir: str, resume: bool,
           progress: bool, log_epochs: bool, stop_after_steps: int, stack: ExitStack,
           made: dict[str, Run]) -> Run:
    tc = config.train
    flush_denormals()  # before the first parallel op: the OpenMP threads inherit it
    if tc.threads:
        torch.set_num_threads(tc.threads)
    device = devices.resolve(tc.device)  # a CUDA request without CUDA stops here
    precision = devices.resolve_precision(tc.precision, device)
    log.debug(f"training on {devices.describe(device)}, precision {precision}")
    rank, world = distributed.setup(device.type)
    if run is not None and rank == 0:  # one process per run folder (rank 0 writes it)
        stack.enter_context(run.lock())
        run.clear_status()
    if tc.tensorboard:
        tensorboard_log.require()  # before any run folder is made
    s, state = _setup(config, run, runs_dir, device, precision, rank, world, progress,
                      log_epochs, stop_after_steps)
    if run is None:  # _setup made it, once the data and the model were ready
        made["run"] = s.run
        if rank == 0:
            stack.enter_context(s.run.lock())
    resumed = resume and s.run.has_checkpoint()
    if resumed:
        weights, saved = s.run.load_checkpoint()
        s.run.load_weights_into(state.model, weights)
        state.load_checkpoint(saved, s.device)
        if s.main:  # only rank 0 writes the run folder
            s.run.truncate_metrics(state.epoch)
        if state.finished:
            return s.run
    elif resume and s.main:
        s.run.truncate_metrics(0)
    if not resumed and "data_init" in state.model.capabilities:
        state.model.init_from_data(s.x)  # before init_from, whose weights win
    if tc.init_from and not resumed:
        init_weights_(state.model, tc.init_from)
    # a resumed run drops the TensorBoard events after its checkpoint, as metrics.jsonl does
    purge = state.global_step + 1 if resumed else (0 if resume else None)
    state.model.train()
    with _sigint_flag() as s.sigint, _tensorboard(s.run, tc.tensorboard and s.main,
                                                  purge) as s.tb:
        while state.epoch < tc.epochs:
            if not run_epoch(s, state):  # stopped within the epoch, checkpointed
                return _stopped(s.run, s.sigint["hit"])
            stop_early = end_epoch(s, state, validate(s, state))
            if stop_early:
                break
            if s.should_stop():
                return _stopped(s.run, s.sigint["hit"])
    return s.run


def _setup(config: ExperimentConfig, run: Run | None, runs_dir: str, device: torch.device,
           precision: str, rank: int, world: int, progress: bool, log_epochs: bool,
           stop_after_steps: int) -> tuple[_Session, TrainState]:
    """Load the data, build the model and optimiser (seeded), make the run folder."""
    tc = config.train
    train_data = load_split(config, "train", device, stream=True)
    valid_data = load_split(config, "valid", device) if has_valid(config) else None
    y_train = train_data.y
    if train_data.x.shape[0] == 0:
        raise UserError(f"The train split of {config.data.name} is empty.")
    seed_everything(tc.seed)
    model = build_model(config.model, tuple(train_data.x.shape[1:])).to(device)
    if model.uses_labels and y_train is None:
        raise UserError(f"Model {config.model_name!r} trains on labels, but "
                        f"{config.data.name!r} has none.")
    optimizer = make_optimizer(model, tc)
    state = TrainState(model, optimizer, torch.Generator().manual_seed(tc.seed),
                       torch.amp.GradScaler("cuda", enabled=precision == "fp16"))
    if world > 1:  # same initial weights everywhere (same seed), different noise per rank
        from torch.nn.parallel import DistributedDataParallel

        torch.manual_seed(tc.seed + 7919 * rank)
        ddp = DistributedDataParallel(distributed.LossForward(model))
        if tc.compile and rank == 0:
            log.warning("train.compile applies to single-process training; these "
                        f"{world} processes train without it.")

        def loss_fn(xb, yb):
            total, terms = ddp(xb, yb)
            return Loss(total, terms)
    else:
        loss = CompiledLoss(model.loss) if tc.compile else model.loss

        def loss_fn(xb, yb):
            return loss(xb, yb) if model.uses_labels else loss(xb)

    if run is None:
        run = create_run(config, runs_dir)
    session = _Session(config, run, train_data.x, y_train if model.uses_labels else None,
                       train_data.binarize == "dynamic", valid_data, loss_fn, device,
                       precision, rank, world, progress, log_epochs, stop_after_steps)
    return session, state


class CompiledLoss:
    """``loss`` under ``torch.compile`` (``train.compile``), or ``loss`` itself once
    compiling it has failed (no C++ compiler, an operator Inductor cannot lower): the
    failure is logged once and training goes on in eager mode. An error that eager mode
    raises too (a bad batch, a model bug) is raised as eager mode raises it, with no
    word about compiling."""

    def __init__(self, loss: Callable[..., Loss]) -> None:
        self.eager = loss
        # fallback_random: random draws (the reparameterisation noise) come from PyTorch's
        # generator as in eager mode, so a seed gives the same noise and resume stays exact
        cap = devices.inductor_cap_mismatch()
        self.compiled: Callable[..., Loss] | None = None if cap else torch.compile(
            loss, options={"fallback_random": True})
        if cap:
            log.warning(f"train.compile: ATEN_CPU_CAPABILITY={cap} caps PyTorch below this "
                        "CPU's instruction set, and torch.compile's CPU code computes wrong "
                        "values under such a cap; training goes on without compiling. Unset "
                        "ATEN_CPU_CAPABILITY to compile, or set train.compile = false.")

    def __call__(self, *args: Any) -> Loss:
        if self.compiled is None:
            return self.eager(*args)
        try:
            return self.compiled(*args)
        except Exception as e:  # noqa: BLE001 -- any compiler failure: eager instead
            out = self.eager(*args)  # the error is the model's if eager fails too
            self.compiled = None
            first = (str(e).strip().splitlines() or [type(e).__name__])[0][:300]
            log.warning(f"train.compile: torch.compile failed ({type(e).__name__}: "
                        f"{first}); training goes on without it. Set train.compile = "
                        "false to skip the attempt.")
            return out


def run_epoch(s: _Session, state: TrainState) -> bool:
    """Train the rest of ``state.epoch``: False if training stopped (Ctrl-C, step budget)
    within it, after a checkpoint; True once every batch of the epoch has run."""
    tc = s.config.train
    state.model.on_epoch_start(state.epoch, tc.epochs)
    if state.step_in_epoch == 0:
        state.perm = torch.randperm(s.x.shape[0], generator=state.data_gen).to(s.device)
        state.acc = None
    bar = tqdm(total=s.n_batches, initial=state.step_in_epoch,
               disable=not (s.progress and s.main), desc=f"epoch {state.epoch + 1}/{tc.epochs}",
               unit="batch", leave=False, dynamic_ncols=True)
    clock = _Clock(state.samples)
    for b in range(state.step_in_epoch, s.n_batches):
        train_step(s, state, b)
        state.step_in_epoch = b + 1
        _show_progress(s, state, bar, clock)
        if state.step_in_epoch < s.n_batches and (s.should_stop() or (
                tc.checkpoint_every and state.global_step % tc.checkpoint_every == 0)):
            clock.bank(state)
            checkpoint(s, state)
            if s.should_stop():
                bar.close()
                return False
    bar.close()
    clock.bank(state)
    return True


def train_step(s: _Session, state: TrainState, b: int) -> None:
    """One optimiser step on batch ``b`` of the epoch's permutation; its loss and terms
    (times the batch size, summed over processes) are added to ``state.acc``.

    Raises:
        TrainingDiverged: a loss or term is not finite; the step is not applied.
    """
    tc = s.config.train
    idx = state.perm[b * tc.batch_size:(b + 1) * tc.batch_size]
    xb = s.x[idx]
    if s.dynamic:  # the whole global batch, so every rank's generator stays in step
        if xb.device.type == "cpu":
            xb = draw_binary(xb, state.data_gen)
        else:  # the CPU generator draws: the same images on every device
            xb = draw_binary(xb.cpu(), state.data_gen).to(s.device)
    n_global = xb.shape[0]
    if s.world > 1:  # this rank's equal slice of the global batch
        idx, xb = idx.tensor_split(s.world)[s.rank], xb.tensor_split(s.world)[s.rank]
    with torch.autocast(device_type=s.device.type,
                        dtype=devices.autocast_dtype(s.precision) or torch.bfloat16,
                        enabled=s.precision != "fp32"):
        out = s.loss_fn(xb, s.y[idx] if s.y is not None else None)
    s.term_names = ["loss", *out.terms]
    terms = torch.stack([out.total.detach(), *[v.detach() for v in out.terms.values()]])
    batch_sum = distributed.all_reduce_sum_(terms.double() * xb.shape[0])
    if s.world > 1:
        terms = (batch_sum / n_global).to(terms.dtype)
    if not bool(torch.isfinite(terms).all()):
        shown = ", ".join(f"{k}={v:.4g}" for k, v in zip(s.term_names, terms.tolist(),
                                                         strict=True))
        if s.run.has_checkpoint():
            kept = (f"the last good checkpoint in {s.run.ckpt_dir} is kept. Try a smaller "
                    f"train.lr (now {tc.lr}) or another train.seed in a new run; resuming "
                    "repeats the same steps and diverges again")
        else:
            kept = ("no checkpoint had been written yet, so there is nothing to resume. Start "
                    f"a new run with a smaller train.lr (now {tc.lr}) or another train.seed")
        raise TrainingDiverged(
            f"Training diverged at epoch {state.epoch + 1}, step {b + 1} of that epoch "
            f"(global step {state.global_step + 1}): {shown}. The bad step was not "
            f"applied; {kept}."
        )
    state.optimizer.zero_grad(set_to_none=True)
    if state.scaler.is_enabled():
        state.scaler.scale(out.total).backward()
        state.scaler.step(state.optimizer)
        state.scaler.update()
    else:
        out.total.backward()
        state.optimizer.step()
    state.acc = batch_sum if state.acc is None else state.acc + batch_sum
    state.global_step += 1
    state.samples += n_global
    s.steps_this_call += 1


def validate(s: _Session, state: TrainState) -> dict[str, Any]:
    """The epoch's metrics row: train averages, then (rank 0, with a validation split) the
    loss terms and the model's ``diagnostics`` on the validation split."""
    row: dict[str, Any] = {"epoch": state.epoch + 1, "step": state.global_step,
                           "samples": state.samples, "time": round(state.elapsed, 3)}
    n = s.x.shape[0]
    for k, v in zip(s.term_names, (state.acc / n).tolist(), strict=True):
        row[f"train/{k}"] = v
    if s.valid is not None and s.main:
        model = state.model
        for k, v in average_loss_terms(model, s.valid.x, y=s.valid.y).items():
            row[f"valid/{k}"] = v
        for k, v in model.diagnostics(s.valid.x).items():  # e.g. KL per latent: logged
            row[f"valid/{k}"] = v
        model.train()
    return distributed.broadcast(row)  # rank 0's validation decides for everyone


def end_epoch(s: _Session, state: TrainState, row: dict[str, Any]) -> bool:
    """Book the finished epoch: best and early-stopping counters, the metrics row, the
    epoch line, the checkpoint. Returns True when early stopping ends training."""
    tc = s.config.train
    metric = row.get("valid/loss", row["train/loss"])
    if metric < state.best:
        state.best, state.bad_epochs = metric, 0
        if tc.early_stopping and s.main:
            s.run.save_best(state.model, {"epoch": state.epoch + 1, "valid/loss": metric})
    else:
        state.bad_epochs += 1
    if s.main:
        s.run.append_metrics(row)
        if s.tb is not None:
            s.tb.scalars(row)
    if s.log_epochs and s.main:
        shown = "  ".join(f"{k} {v:.3f}" for k, v in headline(row).items())
        log.info(f"epoch {state.epoch + 1}/{tc.epochs}  {shown}  ({state.elapsed:.0f} s)")
    stop_early = bool(tc.early_stopping) and state.bad_epochs >= tc.early_stopping
    state.epoch, state.step_in_epoch = state.epoch + 1, 0
    state.finished = state.epoch == tc.epochs or stop_early
    checkpoint(s, state)
    distributed.barrier()
    if stop_early and s.progress and s.main:
        log.info(f"early stopping: valid/loss did not improve for {state.bad_epochs} "
                 f"epochs (best {state.best:.3f})")
    return stop_early


def checkpoint(s: _Session, state: TrainState) -> None:
    """Write ``state`` whole (rank 0 only): weights, the state file, then the manifest."""
    if s.main:
        s.run.save_checkpoint(state.model, state.to_checkpoint(s.device),
                              state.global_step)


class _Clock:
    """Training time of the epoch in progress, banked into ``state.elapsed`` at each
    checkpoint and at the epoch's end; and the throughput shown in the progress bar."""

    def __init__(self, samples: int):
        self.t0, self.seen0 = time.perf_counter(), samples

    def bank(self, state: TrainState) -> None:
        now = time.perf_counter()
        state.elapsed += now - self.t0
        self.t0, self.seen0 = now, state.samples

    def rate(self, samples: int) -> float:
        return (samples - self.seen0) / max(time.perf_counter() - self.t0, 1e-9)


def _show_progress(s: _Session, state: TrainState, bar, clock: _Clock) -> None:
    """Every ``train.log_every`` batches: the epoch's running averages and samples/s."""
    tc = s.config.train
    done = state.step_in_epoch
    if s.progress and (done % tc.log_every == 0 or done == s.n_batches):
        seen = min(done * tc.batch_size, s.x.shape[0])
        post = {k: f"{v / seen:.2f}" for k, v in zip(s.term_names, state.acc.tolist(),
                                                     strict=True)}
        post["samples/s"] = f"{clock.rate(state.samples):,.0f}"
        bar.set_postfix(post, refresh=False)
    bar.update(1)


@contextmanager
def _tensorboard(run: Run, on: bool, purge_step: int | None):
    """A :class:`tensorboard_log.TensorBoardLog` in ``<run>/tensorboard`` when ``on``, else
    None; closed (flushed) when training ends, however it ends."""
    if not on:
        yield None
        return
    tb = tensorboard_log.TensorBoardLog(run.path / "tensorboard", purge_step=purge_step)
    try:
        yield tb
    finally:
        tb.close()


def create_run(config: ExperimentConfig, runs_dir: str = "runs") -> Run:
    """A new run folder, made by rank 0 only when several processes train together.

    One run: an experiment with a [sweep] trains its base configuration, and its folder's
    config.json leaves the sweep out, so ``--resume`` sees one run (``reproduce`` makes a
    sweep's folders itself)."""
    if config.sweep is not None and config.sweep.values:
        sweep = config.sweep
        log.info(f"{config.name} is a sweep over {sweep.key} "
                 f"({', '.join(sweep.label(i) for i in range(len(sweep.values)))}); this "
                 "makes one run of its base configuration. `autoencoders reproduce "
                 f"{config.name}` runs every value.")
        config = dataclasses.replace(config, sweep=None, selection=None)
    path = distributed.broadcast(str(Run.create(config, runs_dir).path)
                                 if distributed.is_main() else None)
    return Run(path, config)


def _stopped(run: Run, interrupted: bool) -> Run:
    if interrupted:
        raise TrainingInterrupted(
            f"Interrupted. A checkpoint was written; continue exactly where this stopped "
            f"with: autoencoders train --resume {run.path}"
        )
    return run
