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

import random
import signal
import time
from contextlib import ExitStack, contextmanager
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from . import devices, distributed, tensorboard_log
from .config import ExperimentConfig
from .data import ImageData, StreamedImages, get
from .errors import RunInUseError, TrainingDiverged, TrainingInterrupted, UserError
from .evaluation.likelihood import average_loss_terms
from .logs import logger as log
from .models.base import Loss
from .registry import build_model
from .runs import Run, headline


def load_split(config: ExperimentConfig, split: str, device: str = "cpu",
               stream: bool = False) -> ImageData:
    """One split of the experiment's dataset, as configured (binarisation, sizes, seed).

    Args:
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


def has_valid(config: ExperimentConfig) -> bool:
    """Whether the experiment carves a valid split (``data.valid_size``, or for your own
    data ``data.valid_fraction``)."""
    from .data import DATASETS

    if getattr(DATASETS.get(config.data.name), "user", False):
        return config.data.valid_fraction > 0
    return config.data.valid_size > 0


def make_optimizer(model: torch.nn.Module, cfg) -> torch.optim.Optimizer:
    """The configured optimiser with PyTorch's fused kernel (one pass over all parameters:
    on a 14M-parameter net, Adam's step drops from ~44 ms with ``foreach`` to ~6 ms)."""
    params = list(model.parameters())
    cls = {"adagrad": torch.optim.Adagrad, "adam": torch.optim.Adam}.get(cfg.optimizer,
                                                                         torch.optim.SGD)
    try:
        return cls(params, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=True)
    except (RuntimeError, TypeError, ValueError):  # no fused kernel for this device/dtype
        return cls(params, lr=cfg.lr, weight_decay=cfg.weight_decay, foreach=True)


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
    if not isinstance(config, ExperimentConfig):
        raise UserError(f"train takes an ExperimentConfig, e.g. "
                        f"train(load_experiment(\"vae-mnist\")), got {config!r} "
                        f"({type(config).__name__}).")
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


def check_resumable(run: Run | None) -> None:
    """Raise a UserError unless ``run`` is one run folder that ``--resume`` can continue."""
    if run is None:
        raise UserError("train(..., resume=True) needs the run folder to resume: "
                        "train(run.config, run, resume=True).")
    if run.config.sweep is not None and run.config.sweep.values:
        children = sorted(p.name for p in run.path.iterdir() if (p / "config.json").is_file())
        raise UserError(
            f"{run.path} is the folder of a sweep over {run.config.sweep.key}, not one run: "
            f"resume one of its runs instead ({', '.join(children) or 'none was made'}), e.g. "
            f"`autoencoders train --resume {run.path / (children[0] if children else 'LABEL')}`.")


def use_array(config: ExperimentConfig, x, labels=None, run: Run | None = None
              ) -> ExperimentConfig:
    """``config`` with its data replaced by the in-memory images ``x`` (see ``train``)."""
    import dataclasses

    from .data.own import save_array

    if run is not None:
        raise UserError("train(config, run, train_data=...): a run folder already fixes its "
                        "data in config.json; pass train_data without run.")
    path = save_array(x, labels)
    data = dataclasses.replace(config.data, name="array", path=str(path), data_dir=None,
                               size=0, image_size=0, channels=0)
    data.validate()
    return dataclasses.replace(config, data=data)


def _train(config: ExperimentConfig, run: Run | None, *, runs_dir: str, resume: bool,
           progress: bool, log_epochs: bool, stop_after_steps: int, stack: ExitStack,
           made: dict[str, Run]) -> Run:
    tc = config.train
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
    train_data = load_split(config, "train", device, stream=True)
    valid_data = load_split(config, "valid", device) if has_valid(config) else None
    x_train = train_data.x
    y_train = train_data.y
    n = x_train.shape[0]
    if n == 0:
        raise UserError(f"The train split of {config.data.name} is empty.")
    dynamic = train_data.binarize == "dynamic"

    seed_everything(tc.seed)
    model = build_model(config.model, tuple(x_train.shape[1:])).to(device)
    uses_labels = getattr(model, "uses_labels", False)
    if uses_labels and y_train is None:
        raise UserError(f"Model {config.model_name!r} trains on labels, but "
                        f"{config.data.name!r} has none.")
    optimizer = make_optimizer(model, tc)
    # fp16 only (CUDA): scale the loss so small gradients survive float16
    scaler = torch.amp.GradScaler("cuda", enabled=precision == "fp16")
    data_gen = torch.Generator().manual_seed(tc.seed)
    main = rank == 0
    if world > 1:  # same initial weights everywhere (same seed), different noise per rank
        from torch.nn.parallel import DistributedDataParallel

        torch.manual_seed(tc.seed + 7919 * rank)
        ddp = DistributedDataParallel(distributed.LossForward(model))

        def loss_fn(xb, yb):
            total, terms = ddp(xb, yb)
            return Loss(total, terms)
    else:
        def loss_fn(xb, yb):
            return model.loss(xb, yb) if uses_labels else model.loss(xb)

    if run is None:
        run = create_run(config, runs_dir)
        made["run"] = run
        if rank == 0:
            stack.enter_context(run.lock())
    start_epoch, step_in_epoch, global_step, samples = 0, 0, 0, 0
    elapsed, best, bad_epochs = 0.0, float("inf"), 0
    perm = None
    acc = None
    resumed = resume and run.has_checkpoint()
    if resumed:
        weights, state = run.load_checkpoint()
        run.load_weights_into(model, weights)
        optimizer.load_state_dict(state["optimizer"])
        if "scaler" in state:
            scaler.load_state_dict(state["scaler"])
        _set_rng_state(state["rng"], data_gen, device)
        start_epoch, step_in_epoch = state["epoch"], state["step_in_epoch"]
        global_step, samples = state["global_step"], state["samples"]
        elapsed, best, bad_epochs = state["elapsed"], state["best"], state["bad_epochs"]
        perm, acc = (None if t is None else t.to(device) for t in (state["perm"], state["acc"]))
        if main:  # only rank 0 writes the run folder
            run.truncate_metrics(start_epoch)
        if state.get("finished"):
            return run
    elif resume and main:
        run.truncate_metrics(0)
    if tc.init_from and not resumed:
        init_weights_(model, tc.init_from)

    def checkpoint(epoch: int, step_in: int, finished: bool = False) -> None:
        if not main:
            return
        run.save_checkpoint(model, {
            "optimizer": optimizer.state_dict(), "rng": _rng_state(data_gen, device),
            **({"scaler": scaler.state_dict()} if scaler.is_enabled() else {}),
            "epoch": epoch, "step_in_epoch": step_in, "global_step": global_step,
            "samples": samples, "elapsed": elapsed, "best": best, "bad_epochs": bad_epochs,
            # on the CPU, so a GPU run resumes anywhere
            "perm": None if perm is None else perm.cpu(),
            "acc": None if acc is None else acc.cpu(), "finished": finished,
        }, global_step)

    n_batches = (n + tc.batch_size - 1) // tc.batch_size
    steps_this_call = 0
    # a resumed run drops the TensorBoard events after its checkpoint, as metrics.jsonl does
    purge = global_step + 1 if resumed else (0 if resume else None)
    model.train()
    with _sigint_flag() as sigint, _tensorboard(run, tc.tensorboard and main, purge) as tb:
        for epoch in range(start_epoch, tc.epochs):
            model.on_epoch_start(epoch, tc.epochs)
            if step_in_epoch == 0:
                perm = torch.randperm(n, generator=data_gen).to(device)
                acc = None
            bar = tqdm(total=n_batches, initial=step_in_epoch, disable=not (progress and main),
                       desc=f"epoch {epoch + 1}/{tc.epochs}", unit="batch", leave=False,
                       dynamic_ncols=True)
            t0 = time.perf_counter()
            seen0 = samples
            for b in range(step_in_epoch, n_batches):
                idx = perm[b * tc.batch_size:(b + 1) * tc.batch_size]
                xb = x_train[idx]
                if dynamic:  # the whole global batch, so every rank's generator stays in step
                    if xb.device.type == "cpu":
                        xb = torch.bernoulli(xb, generator=data_gen)
                    else:  # the CPU generator draws: the same images on every device
                        xb = torch.bernoulli(xb.cpu(), generator=data_gen).to(device)
                n_global = xb.shape[0]
                if world > 1:  # this rank's equal slice of the global batch
                    idx, xb = idx.tensor_split(world)[rank], xb.tensor_split(world)[rank]
                with torch.autocast(device_type=device.type,
                                    dtype=devices.autocast_dtype(precision) or torch.bfloat16,
                                    enabled=precision != "fp32"):
                    out = loss_fn(xb, y_train[idx] if uses_labels else None)
                terms = torch.stack([out.total.detach(),
                                     *[v.detach() for v in out.terms.values()]])
                batch_sum = distributed.all_reduce_sum_(terms.double() * xb.shape[0])
                if world > 1:
                    terms = (batch_sum / n_global).to(terms.dtype)
                if not bool(torch.isfinite(terms).all()):
                    names = ["loss", *out.terms]
                    shown = ", ".join(f"{k}={v:.4g}" for k, v in zip(names, terms.tolist(),
                                                                     strict=True))
                    if run.has_checkpoint():
                        kept = (f"the last good checkpoint in {run.ckpt_dir} is kept. Try a "
                                f"smaller train.lr (now {tc.lr}) or another train.seed in a "
                                "new run; resuming repeats the same steps and diverges again")
                    else:
                        kept = ("no checkpoint had been written yet, so there is nothing to "
                                f"resume. Start a new run with a smaller train.lr (now "
                                f"{tc.lr}) or another train.seed")
                    raise TrainingDiverged(
                        f"Training diverged at epoch {epoch + 1}, step {b + 1} of that epoch "
                        f"(global step {global_step + 1}): {shown}. The bad step was not "
                        f"applied; {kept}."
                    )
                optimizer.zero_grad(set_to_none=True)
                if scaler.is_enabled():
                    scaler.scale(out.total).backward()
                    scaler.step(optimizer)
                    scaler.update()
                else:
                    out.total.backward()
                    optimizer.step()
                acc = batch_sum if acc is None else acc + batch_sum
                global_step += 1
                samples += n_global
                steps_this_call += 1
                done_in_epoch = b + 1
                if progress and (done_in_epoch % tc.log_every == 0 or done_in_epoch == n_batches):
                    rate = (samples - seen0) / max(time.perf_counter() - t0, 1e-9)
                    names = ["loss", *out.terms]
                    seen_epoch = min(done_in_epoch * tc.batch_size, n)
                    post = {k: f"{v / seen_epoch:.2f}"
                            for k, v in zip(names, acc.tolist(), strict=True)}
                    post["samples/s"] = f"{rate:,.0f}"
                    bar.set_postfix(post, refresh=False)
                bar.update(1)
                stop_now = sigint["hit"] or (stop_after_steps and
                                             steps_this_call >= stop_after_steps)
                if done_in_epoch < n_batches and (
                        stop_now or (tc.checkpoint_every and
                                     global_step % tc.checkpoint_every == 0)):
                    elapsed += time.perf_counter() - t0
                    t0 = time.perf_counter()
                    seen0 = samples
                    checkpoint(epoch, done_in_epoch)
                    if stop_now:
                        bar.close()
                        return _stopped(run, sigint["hit"])
            bar.close()
            elapsed += time.perf_counter() - t0
            names = ["loss", *out.terms]
            row: dict[str, Any] = {"epoch": epoch + 1, "step": global_step, "samples": samples,
                                   "time": round(elapsed, 3)}
            for k, v in zip(names, (acc / n).tolist(), strict=True):
                row[f"train/{k}"] = v
            if valid_data is not None and main:
                for k, v in average_loss_terms(model, valid_data.x, y=valid_data.y).items():
                    row[f"valid/{k}"] = v
                if hasattr(model, "diagnostics"):  # e.g. KL per latent: logged, not shown
                    for k, v in model.diagnostics(valid_data.x).items():
                        row[f"valid/{k}"] = v
                model.train()
            row = distributed.broadcast(row)  # rank 0's validation decides for everyone
            metric = row.get("valid/loss", row["train/loss"])
            if metric < best:
                best, bad_epochs = metric, 0
                if tc.early_stopping and main:
                    run.save_best(model, {"epoch": epoch + 1, "valid/loss": metric})
            else:
                bad_epochs += 1
            if main:
                run.append_metrics(row)
                if tb is not None:
                    tb.scalars(row)
            if log_epochs and main:
                shown = "  ".join(f"{k} {v:.3f}" for k, v in headline(row).items())
                log.info(f"epoch {epoch + 1}/{tc.epochs}  {shown}  ({elapsed:.0f} s)")
            step_in_epoch = 0
            stop_early = bool(tc.early_stopping) and bad_epochs >= tc.early_stopping
            finished = epoch + 1 == tc.epochs or stop_early
            checkpoint(epoch + 1, 0, finished=finished)
            distributed.barrier()
            if stop_early:
                if progress and main:
                    log.info(f"early stopping: valid/loss did not improve for "
                               f"{bad_epochs} epochs (best {best:.3f})")
                break
            if sigint["hit"] or (stop_after_steps and steps_this_call >= stop_after_steps):
                return _stopped(run, sigint["hit"])
    return run


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
    """A new run folder, made by rank 0 only when several processes train together."""
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
