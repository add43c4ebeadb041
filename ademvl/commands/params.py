"""Count a method's trainable and frozen parameters on named backbones.

The model is built on the meta device: no weights are downloaded or allocated,
so the paper's 7B/13B configurations are counted in seconds.
"""
from __future__ import annotations

from ..presets import LLM_PRESETS, VISION_PRESETS, build_on_meta
from .options import parse_overrides


def add_arguments(parser) -> None:
    from ..methods import METHODS

    parser.add_argument("--method", default="ademvl", choices=sorted(METHODS), help="fusion method")
    parser.add_argument("--llm", default="llama-7b", choices=sorted(LLM_PRESETS), help="LLM configuration")
    parser.add_argument("--vision", default="clip-vit-l-14", choices=sorted(VISION_PRESETS), help="vision tower configuration")
    parser.add_argument("--set", dest="overrides", action="append", metavar="KEY=VALUE",
                        help="method setting, e.g. --set use_cls=false --set scales=[256] (repeatable)")


def llm_parameters(llm) -> str:
    """The frozen LLM's own weights, and for a mixture of experts those active per token: each block
    runs k of its E routed experts (config `num_experts_per_tok` of `num_experts` / `num_local_experts`),
    so every `experts` module counts k/E; routers and shared experts always run."""
    frozen = {id(p): p.numel() for p in llm.parameters() if not p.requires_grad}
    total = sum(frozen.values())
    config = llm.config.get_text_config()
    routed = getattr(config, "num_experts_per_tok", None)
    experts = getattr(config, "num_experts", None) or getattr(config, "num_local_experts", None)
    if not routed or not experts:
        return f"{total:,}"
    expert_weights = sum(frozen.get(id(p), 0) for name, module in llm.named_modules()
                         if name.rsplit(".", 1)[-1] == "experts" for p in module.parameters())
    active = total - expert_weights + expert_weights * routed // experts
    return f"{total:,} ({active:,} active per token: {routed} of {experts} experts)"


def run(args) -> int:
    settings = parse_overrides(args.overrides)
    model = build_on_meta(args.llm, args.vision, args.method, **settings)
    counts = model.parameter_counts()
    extra = f" ({', '.join(f'{k}={v}' for k, v in settings.items())})" if settings else ""
    tower = sum(p.numel() for p in model.vision.parameters() if not p.requires_grad)
    print(f"method {args.method}{extra} on {args.llm} + {args.vision}")
    print(f"  trainable: {counts['trainable']:,}")
    print(f"  frozen:    {counts['frozen']:,}")
    print(f"  frozen LLM: {llm_parameters(model.llm)}; vision tower: {tower:,}")
    print(f"  extra input tokens per image: {model.method.extra_input_tokens}")
    return 0
