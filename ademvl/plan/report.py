"""The plan as a readable table, or as JSON for machines."""
from __future__ import annotations

import dataclasses

from .estimate import CUDA_CONTEXT, FRAGMENTATION, GIB, Estimate, PlanInput, describe


def _gib(n: float) -> str:
    return f"{n / GIB:8.2f} GiB"


def format_plan(est: Estimate, shape, switches: list[str], fixed: PlanInput | None, fixed_est: Estimate | None) -> str:
    p = est.inputs
    shards = p.gpus if p.sharding == "fsdp" else 1
    answer = p.seq_len if p.answer_tokens is None else p.answer_tokens
    plain, ckpt = est.activations_plain, est.activations_checkpointed
    mark = (" *", "  ") if not p.checkpointing else ("  ", " *")
    div = f" / {shards} (fsdp)" if shards > 1 else ""

    def row(label: str, value: float, note: str = "", chosen: str = "  ") -> str:
        return f"{chosen}{label:<44}{_gib(value)}{('  ' + note) if note else ''}"

    lines = [
        f"ademvl plan: {p.method} on {p.llm} + {p.vision}, batch {p.batch}/device x {p.seq_len} text "
        f"+ {shape.input_tokens} extra tokens ({answer} with a loss), {p.precision}, quantization {p.quantization}, "
        f"{p.sharding} on {p.gpus} x {p.gpu_gb:g} GiB",
        "",
        row("frozen weights" + div, est.frozen_weights),
        row(f"trainable {shape.trainable:,} x 16 B (w+grad+AdamW){div}", est.trainable_state),
        row("activations, plain", plain.saved, chosen=mark[0]),
        row("activations, checkpointed", ckpt.saved + ckpt.recompute_peak,
            f"({_gib(ckpt.recompute_peak).strip()} of it: one block recomputed in backward)", chosen=mark[1]),
        row("visual memory (method's visual inputs)", est.activations.visual_memory),
        row("CUDA/framework overhead", est.overhead,
            f"({CUDA_CONTEXT / GIB:.1f} GiB CUDA context + {FRAGMENTATION:.0%} allocator/transients"
            f"{' + 2 gathered FSDP blocks' if shards > 1 else ''})"),
        row("total per device (* = chosen)", est.total, f"of {p.gpu_gb:g} GiB"),
        "",
    ]
    if est.fits:
        lines.append(f"FITS ({_gib(est.capacity - est.total).strip()} to spare)")
    else:
        lines.append(f"DOES NOT FIT (over by {_gib(est.total - est.capacity).strip()})")
        if fixed is None:
            lines.append("  no switch in the order checkpointing → bf16 → 4bit → smaller batch → fsdp (to 64 GPUs) fits")
        else:
            lines.append(f"  fits with: {' + '.join(switches)} → {_gib(fixed_est.total).strip()}")
            lines.append(f"  re-plan: {describe(fixed)}")
    return "\n".join(lines)


def plan_json(est: Estimate, switches: list[str], fixed: PlanInput | None, fixed_est: Estimate | None) -> dict:
    def acts(a):
        return {"saved": a.saved, "visual_memory": a.visual_memory, "recompute_peak": a.recompute_peak,
                "total": a.total}

    return {
        "inputs": dataclasses.asdict(est.inputs), "unit": "bytes per device",
        "frozen_weights": est.frozen_weights, "trainable_params": est.trainable_params,
        "trainable_state": est.trainable_state,
        "activations_plain": acts(est.activations_plain), "activations_checkpointed": acts(est.activations_checkpointed),
        "activations_chosen": "checkpointed" if est.inputs.checkpointing else "plain",
        "visual_memory": est.activations.visual_memory, "overhead": est.overhead, "total": est.total,
        "capacity": est.capacity, "fits": est.fits, "switches": switches,
        "fits_with": dataclasses.asdict(fixed) if fixed is not None and not est.fits else None,
        "fits_with_total": fixed_est.total if fixed_est is not None and not est.fits else None,
    }
