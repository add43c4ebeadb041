"""The training loop: one recipe → a trained adapter, on 1 CPU or N GPUs without code changes.

Scaling comes from `accelerate` (`accelerate launch` / `torchrun` start the
processes; DDP wraps the model), or with `train.sharding=fsdp` from FSDP2
(`sharding`: each process stores 1/N of the frozen model; checkpoints are the
same files). Only the trainable parameters are optimised,
kept in fp32 while the frozen backbones may run in bf16/fp16 under autocast.
Gradient accumulation is explicit (`no_sync`, or FSDP2's gradient-sync flag, on
all but the last micro-batch of a step) so that the step count, data position and lr schedule are plain
integers that a checkpoint can restore exactly.
"""
from __future__ import annotations

import dataclasses
import logging
import math
import shutil
import sys
import time
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path

import torch
import yaml

from ..checkpoint import atomic_write_bytes, atomic_write_json, save_adapter
from ..collate import VLCollator
from ..context import prompt_token_limit
from ..loading import load_image_processor, quantization_config
from ..recipes import Recipe
from . import data as data_mod
from . import launch, sharding
from .diskfull import is_disk_full, space_checked, tensor_bytes
from .errors import (DiskFullError, NonFiniteLossError, NonFiniteWeightsError, TrainingError,
                     TrainingInterrupted)
from .metrics import MetricsLog, available_trackers
from .resume import check_resumable, describe, schedule_changed
from .schedule import build_optimizer, build_scheduler, scaled_lr
from .state import latest_checkpoint, load_checkpoint, read_position, save_checkpoint

logger = logging.getLogger(__name__)

ADAPTER_DIR = "adapter"
IGNORE_INDEX = -100


@dataclass
class TrainResult:
    run_dir: Path
    adapter_dir: Path  # final trainable weights (load with VLModel.from_adapter)
    steps: int  # optimizer steps done in total (including those before a resume)
    total_steps: int  # steps the schedule spans (epochs × steps per epoch)
    final_loss: float | None  # loss of the last optimizer step: mean over its answer tokens (all ranks)
    seconds: float  # wall time of this invocation
    samples_per_second: float  # this invocation, all ranks
    steps_per_second: float
    examples: int  # records used
    skipped: int  # records dropped for bad images (data.skip_bad)
    lr: float  # peak lr after the blr rule
    effective_batch: int
    resumed_from: Path | None = None
    stopped_early: bool = False  # stop_after / max_steps ended it before the schedule's end
    main_process: bool = True  # False on the other ranks of a multi-process run


def resolve_mixed_precision(value: str, backbone_dtype: str | None = None) -> str:
    """The autocast accelerate runs: bf16 works on CPUs and GPUs; fp16 needs CUDA (its loss scaler).

    "auto": bf16 on a GPU that has it, else fp16; on a CPU, bf16 when the backbones are bf16, else no.
    """
    cuda = torch.cuda.is_available()
    if value == "fp16" and not cuda:
        raise ValueError("train.mixed_precision=fp16 needs a CUDA GPU (fp16 trains with a loss scaler); "
                         "use bf16 (or no) on a CPU")
    if value != "auto":
        return value
    if cuda:
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "bf16" if backbone_dtype in ("bfloat16", "bf16") else "no"


def run_dir_of(recipe: Recipe, output_dir=None) -> Path:
    return Path(output_dir or recipe.train.output_dir or Path("runs") / recipe.name)


# Names of the embedded demo backbones (ademvl.backbones) → the function that builds/returns their directory.
BACKBONE_ALIASES = {"smollm2": "smollm2_path", "easyvqa-clip": "tiny_clip_path"}


def resolve_backbones(recipe: Recipe) -> Recipe:
    """Replace the demo aliases in model.llm/vision (unless such a path exists) by their cached directories."""
    def resolve(name):
        if name in BACKBONE_ALIASES and not Path(name).exists():
            from .. import backbones

            return str(getattr(backbones, BACKBONE_ALIASES[name])())
        return name

    m = recipe.model
    if m.llm not in BACKBONE_ALIASES and m.vision not in BACKBONE_ALIASES:
        return recipe
    model = dataclasses.replace(m, llm=resolve(m.llm), vision=resolve(m.vision))
    return dataclasses.replace(recipe, model=model)


def build_model(recipe: Recipe):
    """The recipe's backbones + method, trainable weights in fp32."""
    from ..model import VLModel

    m = recipe.model
    extra = {"quantization": m.quantization} if m.quantization else {}
    model = VLModel.from_backbones(m.llm, m.vision, method=m.method, method_config=dict(m.method_config),
                                   dtype=m.dtype, **extra)
    for p in model.trainable_parameters().values():
        if p.dtype != torch.float32:
            p.data = p.data.float()
    model.config.prompt_template = data_mod.question_template(recipe.data)
    model.config.prompt_layout = m.prompt_layout
    if m.official:  # the official layout and preprocessing (the collator takes them from the config)
        from ..official import OFFICIAL_TASKS, task_for_dataset

        if m.method != "ademvl":
            raise ValueError(f"model.official is the official ADEM-VL layout: it needs method ademvl, not {m.method}")
        model.config.official = task_for_dataset(recipe.data.dataset)
        model.config.prompt_template = OFFICIAL_TASKS[model.config.official].prompt_template
    return model


def load_tokenizer(recipe: Recipe):
    from transformers import AutoTokenizer

    source = recipe.model.tokenizer or recipe.model.llm
    try:
        return AutoTokenizer.from_pretrained(str(source))
    except (OSError, ValueError) as error:
        raise ValueError(f"cannot load tokenizer from '{source}': {str(error).splitlines()[0]}") from error


def _atomic_copy_dir(src: Path, dst: Path) -> None:
    tmp = dst.parent / f".{dst.name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(src, tmp)
    old = dst.parent / f".{dst.name}.old"
    if dst.exists():
        dst.rename(old)
    tmp.rename(dst)
    shutil.rmtree(old, ignore_errors=True)


@contextmanager
def removed_if_left_empty(run_dir: Path):
    """A run refused or failing before it wrote anything leaves no empty run dir behind (one it made)."""
    existed = run_dir.exists()
    try:
        yield
    except BaseException:
        if not existed and run_dir.is_dir() and not any(run_dir.iterdir()):
            run_dir.rmdir()
        raise


def prepare_run_dir(run_dir: Path, option: str) -> None:
    """Create the run dir and make sure files can be written there, before any work is done."""
    import tempfile

    if run_dir.exists() and not run_dir.is_dir():
        raise TrainingError(f"{option} '{run_dir}' is a file, not a directory")
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=run_dir):
            pass
    except OSError as error:
        raise TrainingError(f"{option} '{run_dir}' is not a writable directory: "
                            f"{error.strerror or error}") from error


def answer_tokens(batch: dict) -> torch.Tensor:
    """Tokens the loss is taken on (labels shifted by one, as the model scores them)."""
    return (batch["labels"][:, 1:] != IGNORE_INDEX).sum()


def weights_problem(named: dict[str, torch.Tensor]) -> str | None:
    """Why these weights must not be saved, or None: a NaN/inf, or a squared norm that overflows float32
    (weights ≳ 1e19, e.g. after lr=1e30: finite numbers, but no float32 forward pass with them stays finite)."""
    total = torch.zeros((), dtype=torch.float32)
    for name, p in named.items():
        if not bool(torch.isfinite(p).all()):
            return f"'{name}' holds NaN or inf"
        total = total + p.detach().float().pow(2).sum().cpu()
    if not bool(torch.isfinite(total)):
        return "their squared norm overflows float32 (weights of 1e19 or more)"
    return None


def _last_checkpoint_text(run_dir: Path) -> str:
    """Every checkpoint passed `weights_problem` before it was written, so the newest one is finite."""
    last = latest_checkpoint(run_dir)
    return (f"last finite checkpoint: '{last}' (step {int(last.name.split('-')[1])})" if last is not None
            else "no checkpoint was written before")


def train(recipe: Recipe, *, resume: bool = False, output_dir=None, model=None, stop_after: int | None = None,
          progress: bool = True) -> TrainResult:
    """Train `recipe`'s method; returns where the adapter is and how the run went.

    resume: continue from the newest checkpoint in the run dir (same optimizer
        state, data position and RNG state as if never stopped). The recipe may
        change what the rest of the run does (epochs, max_steps, lr, ...), not
        what the checkpoint means (model, data, batch size, seed): see `resume`.
    model: a ready `VLModel` to train instead of building one from `recipe.model`.
    stop_after: save a checkpoint and stop once this many optimizer steps are done
        in total, without changing the schedule (used to test resuming).
    """
    t = recipe.train
    run_dir = run_dir_of(recipe, output_dir)
    # Settings this machine cannot honour are refused before the run dir exists.
    mixed_precision = resolve_mixed_precision(t.mixed_precision, recipe.model.dtype)
    quantization_config(recipe.model.quantization)
    launch.check_sharding(t.sharding)
    option = "--output-dir" if output_dir else "train.output_dir"
    with removed_if_left_empty(run_dir):
        prepare_run_dir(run_dir, option)
        with main_launch_lock(run_dir, option):  # one trainer per run dir, taken before anything is written
            try:
                return _run(recipe, run_dir, mixed_precision, resume=resume, output_dir=output_dir, model=model,
                            stop_after=stop_after, progress=progress)
            except OSError as error:  # a full disk outside the saves (metrics, summary): still one line
                if not is_disk_full(error):
                    raise
                raise DiskFullError(f"no space left on the device of run dir '{run_dir}': {error}") from None


@contextmanager
def main_launch_lock(run_dir: Path, option: str):
    """The run-dir lock (`runlock`), held by the main process of a launch only: the ranks of one torchrun /
    accelerate launch share the directory (RANK is set by the launcher before any process group exists)."""
    import os

    from .runlock import RunLock

    if int(os.environ.get("RANK", "0") or 0) != 0:
        yield
        return
    with RunLock(run_dir, option) as lock:
        if lock.stale_pid is not None:
            logger.warning("took over the lock of run dir '%s' from pid %d, which is no longer running",
                           run_dir, lock.stale_pid)
        yield


def _resume_hint(recipe: Recipe, run_dir: Path) -> str:
    last = latest_checkpoint(run_dir)
    if last is None:
        return "no checkpoint was written yet: start the run again"
    return (f"last checkpoint: '{last}' (step {int(last.name.split('-')[1])}); continue with: ademvl train "
            f"{recipe.source or recipe.name} --resume --output-dir {run_dir} (and the same overrides)")


def _run(recipe: Recipe, run_dir: Path, mixed_precision: str, *, resume: bool, output_dir, model,
         stop_after: int | None, progress: bool) -> TrainResult:
    """`train` once its settings are known to be possible here."""
    from accelerate import Accelerator
    from accelerate.utils import DistributedDataParallelKwargs, send_to_device, set_seed
    from tqdm.auto import tqdm

    t = recipe.train
    trackers = available_trackers(t.report_to)
    accelerator = Accelerator(
        mixed_precision=mixed_precision,
        cpu=not torch.cuda.is_available(),
        kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=t.find_unused_parameters)],
        log_with=trackers or None,
        project_dir=str(run_dir),
    )
    main = accelerator.is_main_process
    short = launch.fewer_than_asked(accelerator.num_processes)  # accelerate launch on a CPU can start fewer
    if main and (progress or short or accelerator.num_processes > 1):  # not once per run of a quiet sweep
        print(launch.describe(accelerator.num_processes, getattr(accelerator.state, "backend", None),
                              accelerator.device.type, t.sharding), file=sys.stderr, flush=True)
    if main and short:
        logger.warning(short)
    changes: dict = {}
    if resume:
        checkpoint = latest_checkpoint(run_dir)
        if checkpoint is None:
            raise TrainingError(f"--resume: no checkpoint in '{run_dir / 'checkpoints'}'")
        saved = read_position(checkpoint)
        changes = check_resumable(saved.get("recipe") or {}, recipe.to_dict(), checkpoint)
    else:
        checkpoint = None
        if latest_checkpoint(run_dir) is not None:
            raise TrainingError(f"run dir '{run_dir}' already has checkpoints: pass --resume to continue it, "
                                "or choose another --output-dir")
    accelerator.wait_for_everyone()
    recorded_recipe = recipe.to_dict()
    with accelerator.main_process_first():  # a demo backbone is built once, by rank 0
        recipe = resolve_backbones(recipe)
    set_seed(t.seed)

    examples, skipped = data_mod.load_examples(recipe.data)
    tokenizer = load_tokenizer(recipe)
    image_processor = load_image_processor(recipe.model.image_processor or recipe.model.vision)
    if model is None:
        model = build_model(recipe)
    model.train()
    if t.gradient_checkpointing:
        model.activation_checkpointing_enable()
    max_length = prompt_token_limit(model, cap=t.max_length)
    collator = data_mod.SafeCollator(
        VLCollator.for_model(model, tokenizer, image_processor, max_length=max_length),
        skip_bad=recipe.data.skip_bad)

    world, rank = accelerator.num_processes, accelerator.process_index
    micro_per_epoch = data_mod.micro_batches_per_epoch(len(examples), t.batch_size, world)
    steps_per_epoch = math.ceil(micro_per_epoch / t.grad_accum)
    total_steps = t.epochs * steps_per_epoch
    effective_batch = t.batch_size * t.grad_accum * world
    lr = t.lr if t.lr is not None else scaled_lr(t.blr, effective_batch)
    last_step = min(total_steps, t.max_steps or total_steps)
    if stop_after is not None:
        last_step = min(last_step, stop_after)

    sharded = t.sharding == "fsdp"
    if sharded:  # FSDP2 instead of DDP: the model is sharded here; accelerate still runs processes and reductions
        model = sharding.shard(model, accelerator.device)
        optimizer = accelerator.prepare(build_optimizer(model, lr, t.weight_decay, t.betas))
    else:
        optimizer = build_optimizer(model, lr, t.weight_decay, t.betas)
        model, optimizer = accelerator.prepare(model, optimizer)
    trainable = [p for p in model.parameters() if p.requires_grad]
    unwrapped = accelerator.unwrap_model(model)
    # prepare() puts DDP's forward under autocast; a sharded model is not prepared, so its forward is wrapped here.
    autocast = accelerator.autocast if sharded else nullcontext

    def gradient_sync(last: bool):
        """Reduce gradients over ranks only at the step's last micro-batch (DDP: no_sync; FSDP2: its flag)."""
        if sharded:
            model.set_requires_gradient_sync(last)
            return nullcontext()
        return nullcontext() if last or world == 1 else accelerator.no_sync(model)

    position = {"step": 0, "epoch": 0, "micro": 0, "world_size": world, "final_loss": None}
    if checkpoint is not None:
        position = load_checkpoint(accelerator, model, optimizer, checkpoint)
    if main:  # only now: a refused or unreadable checkpoint leaves the run dir as it was
        atomic_write_bytes(run_dir / "recipe.yaml",
                           lambda tmp: Path(tmp).write_text(yaml.safe_dump(recorded_recipe, sort_keys=False)))
    scheduler = build_scheduler(optimizer, steps_per_epoch, t.epochs, t.warmup_epochs, lr, t.min_lr,
                                start_step=position["step"])
    if checkpoint is not None and main:
        logger.info("resumed from %s at step %d", checkpoint, position["step"])
        if changes:
            logger.warning(
                "resuming %s at step %d with changed settings: %s%s", checkpoint.name, position["step"],
                describe(changes),
                (f"; lr schedule rebuilt for them: {total_steps} steps, lr {scheduler.get_last_lr()[0]:.3g} "
                 "from here" if schedule_changed(changes) else ""))
    if trackers:
        accelerator.init_trackers(recipe.name, config={"lr": lr, "effective_batch": effective_batch})

    metrics = MetricsLog(run_dir, accelerator, enabled=main)
    step, epoch, micro = position["step"], position["epoch"], position["micro"]
    if checkpoint is not None:
        metrics.keep_until(step)  # steps after the checkpoint are trained (and logged) again
    final_loss = position.get("final_loss")
    start_step, start_time = step, time.perf_counter()
    samples_seen = 0
    bar = tqdm(total=last_step, initial=step, disable=not (progress and main), desc=f"train {recipe.name}",
               unit="step", dynamic_ncols=True)

    def check_weights(what: str) -> dict:
        """Never write weights that are not finite; name the last checkpoint that is. Returns the trainable
        weights, whole (all ranks call: a sharded model's are gathered)."""
        weights = sharding.gathered_trainable(unwrapped)
        problem = weights_problem(weights)
        if problem:
            raise NonFiniteWeightsError(
                f"trainable weights are not finite after step {step} ({problem}; peak lr {lr:.3g}); the {what} "
                f"was not written; {_last_checkpoint_text(run_dir)}")
        return weights

    def save(epoch_now: int, micro_now: int) -> None:
        weights = check_weights("checkpoint")
        needed = 3 * tensor_bytes(weights)  # weights + AdamW's two moments
        where = run_dir / "checkpoints"
        with space_checked(f"checkpoint of step {step}", where, needed, [where / f".step-{step:08d}.tmp"],
                           f"; {_last_checkpoint_text(run_dir)}"):
            save_checkpoint(accelerator, model, optimizer, run_dir,
                            {"step": step, "epoch": epoch_now, "micro": micro_now, "world_size": world,
                             "final_loss": final_loss, "recipe": recorded_recipe}, t.keep_last)

    done = step >= last_step
    try:
        while not done and epoch < t.epochs:
            batches = data_mod.epoch_batches(len(examples), t.batch_size, t.seed, epoch, rank, world)
            loader = data_mod.make_loader(examples, batches[micro:], collator, t.num_workers, t.seed + epoch)
            batch_iter = iter(loader)
            while micro < len(batches):
                n_micro = min(t.grad_accum, len(batches) - micro)
                tick = time.perf_counter()
                micro_batches = [send_to_device(data_mod.raise_if_error(next(batch_iter)), accelerator.device)
                                 for _ in range(n_micro)]
                n_samples = sum(b["input_ids"].shape[0] for b in micro_batches)
                # Every answer token of the optimizer step weighs the same, whichever micro-batch or rank
                # holds it: each loss is a sum over tokens divided by the step's token count (all ranks).
                n_tokens = accelerator.reduce(sum(answer_tokens(b) for b in micro_batches), reduction="sum")
                n_tokens = n_tokens.clamp(min=1)
                loss_sum = torch.zeros((), device=accelerator.device)
                for j, batch in enumerate(micro_batches):
                    last = j == n_micro - 1
                    with gradient_sync(last):
                        with autocast():
                            loss = model(**batch, num_items_in_batch=n_tokens).loss
                        accelerator.backward(loss * world)  # DDP and FSDP2 average gradients over ranks: undo it
                    loss_sum = loss_sum + loss.detach().float()
                micro += n_micro
                loss_value = float(accelerator.reduce(loss_sum, reduction="sum"))
                if not math.isfinite(loss_value):
                    raise NonFiniteLossError(
                        f"loss is {loss_value} at step {step + 1} (epoch {epoch + 1}, lr {scheduler.get_last_lr()[0]:.3g}); "
                        f"stopping without applying it; {_last_checkpoint_text(run_dir)}")
                grad_norm = None  # of the whole step's gradient (all ranks), logged when it is clipped
                if t.grad_clip:
                    grad_norm = float(sharding.full(accelerator.clip_grad_norm_(trainable, t.grad_clip)))
                step_lr = scheduler.get_last_lr()[0]
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                step += 1
                final_loss = loss_value
                elapsed = time.perf_counter() - tick
                samples_seen += n_samples * world
                throughput = n_samples * world / elapsed if elapsed > 0 else 0.0
                bar.update(1)
                bar.set_postfix(loss=f"{loss_value:.4f}", lr=f"{step_lr:.2e}", samples_s=f"{throughput:.1f}")
                if step % t.log_every == 0 or step == last_step:
                    metrics.log({"step": step, "epoch": epoch + micro / len(batches), "loss": loss_value,
                                 "lr": step_lr, "samples_per_s": throughput, "step_seconds": elapsed,
                                 **({"grad_norm": grad_norm} if grad_norm is not None else {})})
                end_of_epoch = micro >= len(batches)
                next_pos = (epoch + 1, 0) if end_of_epoch else (epoch, micro)
                done = step >= last_step
                if (t.save_every and step % t.save_every == 0) or (not t.save_every and end_of_epoch) or done:
                    save(*next_pos)
                if done:
                    break
            epoch, micro = (epoch + 1, 0) if micro >= len(batches) else (epoch, micro)
    except KeyboardInterrupt:  # Ctrl-C: one line on where the run can go on from, not a traceback
        raise TrainingInterrupted(f"interrupted at step {step} of {last_step}; "
                                  f"{_resume_hint(recipe, run_dir)}") from None
    finally:
        bar.close()

    seconds = time.perf_counter() - start_time
    adapter_dir = run_dir / ADAPTER_DIR
    weights = check_weights("adapter")
    if main:
        tmp = run_dir / f".{ADAPTER_DIR}.build"
        leftovers = [tmp, run_dir / f".{ADAPTER_DIR}.tmp"]
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            with space_checked("adapter", run_dir, 2 * tensor_bytes(weights), leftovers,
                               f"; {_last_checkpoint_text(run_dir)}"):
                save_adapter(unwrapped, tmp, weights)
                _atomic_copy_dir(tmp, adapter_dir)
        except KeyboardInterrupt:
            raise TrainingInterrupted(f"interrupted while writing the adapter; "
                                      f"{_resume_hint(recipe, run_dir)}") from None
        finally:
            for path in leftovers:
                shutil.rmtree(path, ignore_errors=True)
    if t.save_rank_weights:
        from safetensors.torch import save_file

        state = {n: p.detach().cpu().contiguous() for n, p in weights.items()}
        out = run_dir / "rank_weights" / f"rank{rank}.safetensors"
        atomic_write_bytes(out, lambda tmp: save_file(state, tmp))
        # what this rank stores of the frozen LLM, measured from its (sharded or whole) parameters
        atomic_write_json(run_dir / "rank_weights" / f"rank{rank}.json",
                          {"sharding": t.sharding, "world_size": world, "llm": sharding.parameter_bytes(unwrapped.llm)})
    done_steps = step - start_step
    result = TrainResult(
        run_dir=run_dir, adapter_dir=adapter_dir, steps=step, total_steps=total_steps, final_loss=final_loss,
        seconds=seconds, samples_per_second=samples_seen / seconds if seconds > 0 else 0.0,
        steps_per_second=done_steps / seconds if seconds > 0 else 0.0, examples=len(examples), skipped=skipped,
        lr=lr, effective_batch=effective_batch, resumed_from=checkpoint, stopped_early=step < total_steps,
        main_process=main,
    )
    if main:
        summary = {k: (str(v) if isinstance(v, Path) else v) for k, v in dataclasses.asdict(result).items()}
        atomic_write_json(run_dir / "train_summary.json", summary)
    if trackers:
        accelerator.end_training()
    accelerator.wait_for_everyone()
    return result
