"""Will a training run fit in GPU memory? Per-device frozen weights, trainable weights + gradients +
AdamW state, activations (plain and with gradient checkpointing), the method's visual memory and a
stated CUDA/framework overhead, all computed from the model built on the meta device (no download).
If it does not fit, the switches that make it fit, tried in the order gradient checkpointing → bf16 →
4bit → smaller batch with grad_accum → FSDP over more GPUs.
Exit code: 0 fits, 1 does not fit, 2 bad input (one line naming the problem)."""
from __future__ import annotations

import json

from .options import parse_overrides


def add_arguments(parser) -> None:
    from ..methods import METHODS

    parser.add_argument("--llm", default="llama-7b", help="LLM preset (see `ademvl params --help`) or local dir with config.json")
    parser.add_argument("--vision", default="clip-vit-l-14", help="vision tower preset or local dir with config.json")
    parser.add_argument("--method", default="ademvl", choices=sorted(METHODS), help="fusion method")
    parser.add_argument("--batch", type=int, default=4, help="per-device micro-batch")
    parser.add_argument("--seq-len", type=int, default=512, help="text tokens per sample (method's extra tokens on top)")
    parser.add_argument("--answer-tokens", type=int, default=None,
                        help="tokens with a loss per sample (their logits are kept); default: all of --seq-len")
    parser.add_argument("--precision", default="bf16", choices=["fp32", "bf16", "fp16"],
                        help="frozen backbones' dtype (trainable weights are always fp32)")
    parser.add_argument("--quantization", default="none", choices=["none", "4bit", "8bit"],
                        help="frozen LLM linear layers via bitsandbytes (NF4 + double quant / int8)")
    parser.add_argument("--sharding", default="none", choices=["none", "fsdp"], help="shard weights and optimizer state")
    parser.add_argument("--checkpointing", action="store_true", help="gradient checkpointing of the decoder blocks")
    parser.add_argument("--gpus", type=int, default=1, help="GPU count (divides weights/optimizer under fsdp)")
    parser.add_argument("--gpu-gb", type=float, default=80.0, help="memory per GPU in GiB (an 80 GB A100 = 80)")
    parser.add_argument("--grad-accum", type=int, default=1, help="gradient accumulation (only reported)")
    parser.add_argument("--set", dest="overrides", action="append", metavar="KEY=VALUE",
                        help="method setting, e.g. --set scales=[256] (repeatable)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of the table")


def run(args) -> int:
    from ..plan import PlanInput, format_plan, plan, plan_json, shape_for, suggest

    inputs = PlanInput(llm=args.llm, vision=args.vision, method=args.method, batch=args.batch, seq_len=args.seq_len,
                       answer_tokens=args.answer_tokens, precision=args.precision, quantization=args.quantization,
                       sharding=args.sharding, checkpointing=args.checkpointing, gpus=args.gpus, gpu_gb=args.gpu_gb,
                       grad_accum=args.grad_accum, method_config=parse_overrides(args.overrides))
    inputs.check()  # bad numbers fail before the model is built
    shape = shape_for(inputs.llm, inputs.vision, inputs.method, inputs.method_config)
    estimate = plan(shape, inputs)
    switches, fixed = suggest(shape, inputs)
    fixed_estimate = plan(shape, fixed) if fixed is not None else None
    if args.json:
        print(json.dumps(plan_json(estimate, switches, fixed, fixed_estimate), indent=2))
    else:
        print(format_plan(estimate, shape, switches, fixed, fixed_estimate))
    return 0 if estimate.fits else 1
