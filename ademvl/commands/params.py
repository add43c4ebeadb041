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


def run(args) -> int:
    settings = parse_overrides(args.overrides)
    model = build_on_meta(args.llm, args.vision, args.method, **settings)
    counts = model.parameter_counts()
    extra = f" ({', '.join(f'{k}={v}' for k, v in settings.items())})" if settings else ""
    print(f"method {args.method}{extra} on {args.llm} + {args.vision}")
    print(f"  trainable: {counts['trainable']:,}")
    print(f"  frozen:    {counts['frozen']:,}")
    print(f"  extra input tokens per image: {model.method.extra_input_tokens}")
    return 0
