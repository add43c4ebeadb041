"""The training loop: one recipe → a trained adapter, on 1 CPU or N GPUs without code changes.

Scaling comes from `accelerate` (`accelerate launch` / `torchrun` start the
processes; DDP wraps the model), or with `train.sharding=fsdp` from FSDP2
(`sharding`: each process stores 1/N of the frozen model; checkpoints are the
same files). Only the trainable parameters are optimised,
kept in fp32 while the frozen backbones may run in bf16/fp16 under autocast.
Gradient accumulation is explicit (`no_sync`, or FSDP2's gradient-sync flag, on
all but the last micro-batch of a step) so that the step count, data position and lr schedule are plain
integers that a checkpoint can restore exactly.

`train` refuses what this machine cannot do, then holds the run dir (created, locked) while a
`TrainingRun` goes through its phases, in the order torchtune's recipes and litgpt's
setup → fit read: `prepare` (processes, resume point, recipe comparison), `setup` (data, model,
optimizer, scheduler, sharding), `fit` (the loop; `train_step` is one optimizer step) and
`finish` (final adapter, summary, `TrainResult`).
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

from ..atomic import atomic_write_bytes, atomic_write_json, atomic_write_text, replace_dir
from ..backbones.aliases import BACKBONE_ALIASES, resolve_backbones  # noqa: F401  (imported from here too)
from ..checkpoint import save_adapter
from ..collate import VLCollator
from ..context import prompt_token_limit
from ..loading import load_image_processor, load_tokenizer as _load_tokenizer, quantization_config
from ..model_builder import build_model
from ..prompting import IGNORE_INDEX
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


def load_tokenizer(recipe: Recipe):
    """The recipe's tokenizer (`model.tokenizer`, else the LLM's), through the library's one loader."""
    return _load_tokenizer(recipe.model.tokenizer or recipe.model.llm, hint="set model.tokenizer")


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
                run = TrainingRun(recipe, run_dir, mixed_precision, stop_after=stop_after, progress=progress)
                run.prepare(resume)
                run.setup(model)
                run.fit()
                return run.finish()
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


class TrainingRun:
    """One training run in a run dir that `train` has created and locked; its phases in order:
    `prepare`, `setup`, `fit`, `finish`."""

    def __init__(self, recipe: Recipe, run_dir: Path, mixed_precision: str, *, stop_after: int | None = None,
                 progress: bool = True):
        self.recipe = recipe
        self.recorded_recipe = recipe.to_dict()  # as asked (demo aliases unresolved): recipe.yaml, checkpoints
        self.t = recipe.train
        self.run_dir = run_dir
        self.mixed_precision = mixed_precision
        self.stop_after = stop_after
        self.progress = progress

    # --- prepare: processes, resume point, recipe comparison ----------------------------------
    def prepare(self, resume: bool) -> None:
        """Start accelerate, say what was started, and find the checkpoint to resume from (refusing a
        recipe that changes what it means) or make sure there is none to overwrite."""
        from accelerate import Accelerator
        from accelerate.utils import DistributedDataParallelKwargs

        t, run_dir = self.t, self.run_dir
        self.trackers = available_trackers(t.report_to)
        accelerator = self.accelerator = Accelerator(
            mixed_precision=self.mixed_precision,
            cpu=not torch.cuda.is_available(),
            kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=t.find_unused_parameters)],
            log_with=self.trackers or None,
            project_dir=str(run_dir),
        )
        self.main = main = accelerator.is_main_process
        self.world, self.rank = accelerator.num_processes, accelerator.process_index
        short = launch.fewer_than_asked(self.world)  # accelerate launch on a CPU can start fewer
        if main and (self.progress or short or self.world > 1):  # not once per run of a quiet sweep
            print(launch.describe(self.world, getattr(accelerator.state, "backend", None),
                                  accelerator.device.type, t.sharding), file=sys.stderr, flush=True)
        if main and short:
            logger.warning(short)
        self.changes: dict = {}
        if resume:
            self.checkpoint = latest_checkpoint(run_dir)
            if self.checkpoint is None:
                raise TrainingError(f"--resume: no checkpoint in '{run_dir / 'checkpoints'}'")
            saved = read_position(self.checkpoint)
            self.changes = check_resumable(saved.get("recipe") or {}, self.recorded_recipe, self.checkpoint)
        else:
            self.checkpoint = None
            if latest_checkpoint(run_dir) is not None:
                raise TrainingError(f"run dir '{run_dir}' already has checkpoints: pass --resume to continue it, "
                                    "or choose another --output-dir")
        accelerator.wait_for_everyone()
        with accelerator.main_process_first():  # a demo backbone is built once, by rank 0
            self.recipe = resolve_backbones(self.recipe)

    # --- setup: data, model, optimizer, scheduler, sharding -----------------------------------
    def setup(self, model=None) -> None:
        """Everything the loop needs, in the order the seeded RNG sees it; then the resumed position."""
        from accelerate.utils import set_seed

        recipe, t = self.recipe, self.t
        set_seed(t.seed)
        self.examples, self.skipped = data_mod.load_examples(recipe.data)
        tokenizer = load_tokenizer(recipe)
        image_processor = load_image_processor(recipe.model.image_processor or recipe.model.vision)
        if model is None:
            model = build_model(recipe)
        model.train()
        if t.gradient_checkpointing:
            model.activation_checkpointing_enable()
        self.collator = data_mod.SafeCollator(
            VLCollator.for_model(model, tokenizer, image_processor, max_length=prompt_token_limit(model, cap=t.max_length)),
            skip_bad=recipe.data.skip_bad)
        self._setup_schedule_numbers()
        self._setup_optimizer(model)
        self._setup_position()

    def _setup_schedule_numbers(self) -> None:
        t = self.t
        micro_per_epoch = data_mod.micro_batches_per_epoch(len(self.examples), t.batch_size, self.world)
        self.steps_per_epoch = math.ceil(micro_per_epoch / t.grad_accum)
        self.total_steps = t.epochs * self.steps_per_epoch
        self.effective_batch = t.batch_size * t.grad_accum * self.world
        self.lr = t.lr if t.lr is not None else scaled_lr(t.blr, self.effective_batch)
        self.last_step = min(self.total_steps, t.max_steps or self.total_steps)
        if self.stop_after is not None:
            self.last_step = min(self.last_step, self.stop_after)

    def _setup_optimizer(self, model) -> None:
        """DDP (accelerate's prepare) or FSDP2 around the model; AdamW on its trainable weights."""
        t, accelerator = self.t, self.accelerator
        self.sharded = t.sharding == "fsdp"
        if self.sharded:  # FSDP2 instead of DDP: the model is sharded here; accelerate still runs processes and reductions
            model = sharding.shard(model, accelerator.device)
            optimizer = accelerator.prepare(build_optimizer(model, self.lr, t.weight_decay, t.betas))
        else:
            optimizer = build_optimizer(model, self.lr, t.weight_decay, t.betas)
            model, optimizer = accelerator.prepare(model, optimizer)
        self.model, self.optimizer = model, optimizer
        self.trainable = [p for p in model.parameters() if p.requires_grad]
        self.unwrapped = accelerator.unwrap_model(model)
        # prepare() puts DDP's forward under autocast; a sharded model is not prepared, so its forward is wrapped here.
        self.autocast = accelerator.autocast if self.sharded else nullcontext

    def _setup_position(self) -> None:
        """Where the run starts: step 0, or the checkpoint's step with its weights, optimizer and RNG state;
        the lr schedule from there, recipe.yaml, trackers and the metrics log."""
        t, accelerator, run_dir, checkpoint = self.t, self.accelerator, self.run_dir, self.checkpoint
        position = {"step": 0, "epoch": 0, "micro": 0, "world_size": self.world, "final_loss": None}
        if checkpoint is not None:
            position = load_checkpoint(accelerator, self.model, self.optimizer, checkpoint)
        if self.main:  # only now: a refused or unreadable checkpoint leaves the run dir as it was
            atomic_write_text(run_dir / "recipe.yaml", yaml.safe_dump(self.recorded_recipe, sort_keys=False))
        self.scheduler = build_scheduler(self.optimizer, self.steps_per_epoch, t.epochs, t.warmup_epochs, self.lr,
                                         t.min_lr, start_step=position["step"])
        if checkpoint is not None and self.main:
            logger.info("resumed from %s at step %d", checkpoint, position["step"])
            if self.changes:
                logger.warning(
                    "resuming %s at step %d with changed settings: %s%s", checkpoint.name, position["step"],
                    describe(self.changes),
                    (f"; lr schedule rebuilt for them: {self.total_steps} steps, lr "
                     f"{self.scheduler.get_last_lr()[0]:.3g} from here" if schedule_changed(self.changes) else ""))
        if self.trackers:
            accelerator.init_trackers(self.recipe.name, config={"lr": self.lr, "effective_batch": self.effective_batch})
        self.metrics = MetricsLog(run_dir, accelerator, enabled=self.main)
        self.step, self.epoch, self.micro = position["step"], position["epoch"], position["micro"]
        if checkpoint is not None:
            self.metrics.keep_until(self.step)  # steps after the checkpoint are trained (and logged) again
        self.final_loss = position.get("final_loss")

    # --- fit: the loop ------------------------------------------------------------------------
    def fit(self) -> None:
        """Optimizer steps until `last_step`: each epoch's batches from the resumable data order, a step per
        `grad_accum` micro-batches, metrics and checkpoints on their schedule. Ctrl-C ends it in one line."""
        from accelerate.utils import send_to_device
        from tqdm.auto import tqdm

        t, accelerator, world = self.t, self.accelerator, self.world
        self.start_step, self.start_time = self.step, time.perf_counter()
        self.samples_seen = 0
        bar = tqdm(total=self.last_step, initial=self.step, disable=not (self.progress and self.main),
                   desc=f"train {self.recipe.name}", unit="step", dynamic_ncols=True)
        done = self.step >= self.last_step
        try:
            while not done and self.epoch < t.epochs:
                batches = data_mod.epoch_batches(len(self.examples), t.batch_size, t.seed, self.epoch, self.rank, world)
                loader = data_mod.make_loader(self.examples, batches[self.micro:], self.collator, t.num_workers,
                                              t.seed + self.epoch)
                batch_iter = iter(loader)
                while self.micro < len(batches):
                    n_micro = min(t.grad_accum, len(batches) - self.micro)
                    tick = time.perf_counter()
                    micro_batches = [send_to_device(data_mod.raise_if_error(next(batch_iter)), accelerator.device)
                                     for _ in range(n_micro)]
                    n_samples = sum(b["input_ids"].shape[0] for b in micro_batches)
                    self.micro += n_micro
                    loss, grad_norm, step_lr = self.train_step(micro_batches)
                    elapsed = time.perf_counter() - tick
                    self.samples_seen += n_samples * world
                    throughput = n_samples * world / elapsed if elapsed > 0 else 0.0
                    bar.update(1)
                    bar.set_postfix(loss=f"{loss:.4f}", lr=f"{step_lr:.2e}", samples_s=f"{throughput:.1f}")
                    if self.step % t.log_every == 0 or self.step == self.last_step:
                        self.metrics.log({"step": self.step, "epoch": self.epoch + self.micro / len(batches),
                                          "loss": loss, "lr": step_lr, "samples_per_s": throughput,
                                          "step_seconds": elapsed,
                                          **({"grad_norm": grad_norm} if grad_norm is not None else {})})
                    end_of_epoch = self.micro >= len(batches)
                    done = self.step >= self.last_step
                    if (t.save_every and self.step % t.save_every == 0) or (not t.save_every and end_of_epoch) or done:
                        self.save_checkpoint(*((self.epoch + 1, 0) if end_of_epoch else (self.epoch, self.micro)))
                    if done:
                        break
                if self.micro >= len(batches):
                    self.epoch, self.micro = self.epoch + 1, 0
        except KeyboardInterrupt:  # Ctrl-C: one line on where the run can go on from, not a traceback
            raise TrainingInterrupted(f"interrupted at step {self.step} of {self.last_step}; "
                                      f"{_resume_hint(self.recipe, self.run_dir)}") from None
        finally:
            bar.close()
        self.seconds = time.perf_counter() - self.start_time

    def train_step(self, micro_batches: list[dict]) -> tuple[float, float | None, float]:
        """One optimizer step over `micro_batches` (gradient accumulation): forward and backward on each,
        gradients reduced over ranks at the last one; then clip, step the optimizer and the lr schedule.
        Returns (loss: mean over the step's answer tokens on all ranks, gradient norm when clipping, lr used)."""
        accelerator, world = self.accelerator, self.world
        # Every answer token of the optimizer step weighs the same, whichever micro-batch or rank
        # holds it: each loss is a sum over tokens divided by the step's token count (all ranks).
        n_tokens = accelerator.reduce(sum(answer_tokens(b) for b in micro_batches), reduction="sum").clamp(min=1)
        loss_sum = torch.zeros((), device=accelerator.device)
        for j, batch in enumerate(micro_batches):
            with self._gradient_sync(last=j == len(micro_batches) - 1):
                with self.autocast():
                    loss = self.model(**batch, num_items_in_batch=n_tokens).loss
                accelerator.backward(loss * world)  # DDP and FSDP2 average gradients over ranks: undo it
            loss_sum = loss_sum + loss.detach().float()
        loss_value = float(accelerator.reduce(loss_sum, reduction="sum"))
        if not math.isfinite(loss_value):
            raise NonFiniteLossError(
                f"loss is {loss_value} at step {self.step + 1} (epoch {self.epoch + 1}, lr "
                f"{self.scheduler.get_last_lr()[0]:.3g}); stopping without applying it; "
                f"{_last_checkpoint_text(self.run_dir)}")
        grad_norm = None  # of the whole step's gradient (all ranks), logged when it is clipped
        if self.t.grad_clip:
            grad_norm = float(sharding.full(accelerator.clip_grad_norm_(self.trainable, self.t.grad_clip)))
        step_lr = self.scheduler.get_last_lr()[0]
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        self.final_loss = loss_value
        return loss_value, grad_norm, step_lr

    def _gradient_sync(self, last: bool):
        """Reduce gradients over ranks only at the step's last micro-batch (DDP: no_sync; FSDP2: its flag)."""
        if self.sharded:
            self.model.set_requires_gradient_sync(last)
            return nullcontext()
        return nullcontext() if last or self.world == 1 else self.accelerator.no_sync(self.model)

    def check_weights(self, what: str) -> dict:
        """Never write weights that are not finite; name the last checkpoint that is. Returns the trainable
        weights, whole (all ranks call: a sharded model's are gathered)."""
        weights = sharding.gathered_trainable(self.unwrapped)
        problem = weights_problem(weights)
        if problem:
            raise NonFiniteWeightsError(
                f"trainable weights are not finite after step {self.step} ({problem}; peak lr {self.lr:.3g}); "
                f"the {what} was not written; {_last_checkpoint_text(self.run_dir)}")
        return weights

    def save_checkpoint(self, epoch: int, micro: int) -> None:
        """A checkpoint of this step that resumes at data position (`epoch`, `micro`)."""
        weights = self.check_weights("checkpoint")
        needed = 3 * tensor_bytes(weights)  # weights + AdamW's two moments
        where = self.run_dir / "checkpoints"
        with space_checked(f"checkpoint of step {self.step}", where, needed, [where / f".step-{self.step:08d}.tmp"],
                           f"; {_last_checkpoint_text(self.run_dir)}"):
            save_checkpoint(self.accelerator, self.model, self.optimizer, self.run_dir,
                            {"step": self.step, "epoch": epoch, "micro": micro, "world_size": self.world,
                             "final_loss": self.final_loss, "recipe": self.recorded_recipe}, self.t.keep_last)

    # --- finish: final adapter, summary, result -----------------------------------------------
    def finish(self) -> TrainResult:
        weights = self.check_weights("adapter")
        if self.main:
            self._save_adapter(weights)
        if self.t.save_rank_weights:
            self._save_rank_weights(weights)
        seconds, done_steps = self.seconds, self.step - self.start_step
        result = TrainResult(
            run_dir=self.run_dir, adapter_dir=self.run_dir / ADAPTER_DIR, steps=self.step, total_steps=self.total_steps,
            final_loss=self.final_loss, seconds=seconds,
            samples_per_second=self.samples_seen / seconds if seconds > 0 else 0.0,
            steps_per_second=done_steps / seconds if seconds > 0 else 0.0, examples=len(self.examples),
            skipped=self.skipped, lr=self.lr, effective_batch=self.effective_batch, resumed_from=self.checkpoint,
            stopped_early=self.step < self.total_steps, main_process=self.main,
        )
        if self.main:
            summary = {k: (str(v) if isinstance(v, Path) else v) for k, v in dataclasses.asdict(result).items()}
            atomic_write_json(self.run_dir / "train_summary.json", summary)
        if self.trackers:
            self.accelerator.end_training()
        self.accelerator.wait_for_everyone()
        return result

    def _save_adapter(self, weights: dict) -> None:
        """The final adapter: built in a hidden directory, then moved over `adapter/` in one rename."""
        run_dir = self.run_dir
        tmp = run_dir / f".{ADAPTER_DIR}.build"
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            with space_checked("adapter", run_dir, 2 * tensor_bytes(weights), [tmp],
                               f"; {_last_checkpoint_text(run_dir)}"):
                save_adapter(self.unwrapped, tmp, weights)
                replace_dir(tmp, run_dir / ADAPTER_DIR)
        except KeyboardInterrupt:
            raise TrainingInterrupted(f"interrupted while writing the adapter; "
                                      f"{_resume_hint(self.recipe, run_dir)}") from None
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def _save_rank_weights(self, weights: dict) -> None:
        """This rank's trainable weights and what it stores of the frozen LLM (`train.save_rank_weights`)."""
        from safetensors.torch import save_file

        state = {n: p.detach().cpu().contiguous() for n, p in weights.items()}
        out = self.run_dir / "rank_weights"
        atomic_write_bytes(out / f"rank{self.rank}.safetensors", lambda tmp: save_file(state, tmp))
        # what this rank stores of the frozen LLM, measured from its (sharded or whole) parameters
        atomic_write_json(out / f"rank{self.rank}.json", {"sharding": self.t.sharding, "world_size": self.world,
                                                          "llm": sharding.parameter_bytes(self.unwrapped.llm)})
