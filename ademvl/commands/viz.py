"""Draw ADEM-VL's per-scale fusion maps for one image and prompt (the paper's Fig. 3).

Generates the answer greedily, reruns prompt + answer once while recording,
in every decoder layer, the scores silu(n)·Kᵀ of each visual feature and the
adaptive drop's mask, and saves: the image | one heat map per scale (dropped
features hatched in cyan) | a colour bar.
"""
from __future__ import annotations

from .options import parse_overrides


def _layer(value: str):
    return value if value == "mean" else int(value)


def _token(value: str):
    return value if value == "answer" else int(value)


def add_arguments(parser) -> None:
    parser.add_argument("--image", required=True, help="image file")
    parser.add_argument("--prompt", required=True, help="question or instruction about the image")
    parser.add_argument("--checkpoint", help="trained adapter directory (from training); omit for an untrained model")
    parser.add_argument("--llm", help="LLM dir or hub id (required without --checkpoint; overrides the recorded one)")
    parser.add_argument("--vision", help="vision tower dir or hub id (required without --checkpoint)")
    parser.add_argument("--set", dest="overrides", action="append", metavar="KEY=VALUE",
                        help="ADEM-VL setting for an untrained model, e.g. --set scales=[256,64] (repeatable)")
    parser.add_argument("--template", default=None,
                        help="wrapping for --prompt (default: the one the adapter was trained with, else '{prompt}')")
    parser.add_argument("--layer", type=_layer, default="mean", help="decoder layer index, or 'mean' over layers")
    parser.add_argument("--token", type=_token, default="answer",
                        help="position in prompt+answer (negative from the end), or 'answer' to average the answer")
    parser.add_argument("--output", default="fusion_map.png", help="PNG to write")
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--dpi", type=int, default=100)


def build_model(args):
    from ..model import VLModel

    if args.checkpoint:
        if args.overrides:
            raise ValueError("--set applies to an untrained model only; a checkpoint brings its own settings")
        return VLModel.from_adapter(args.checkpoint, llm=args.llm, vision=args.vision)
    if not (args.llm and args.vision):
        raise ValueError("without --checkpoint, give both --llm and --vision (an untrained ADEM-VL model)")
    return VLModel.from_backbones(args.llm, args.vision, method="ademvl", **parse_overrides(args.overrides))


def run(args) -> int:
    from transformers import AutoTokenizer

    from ..data.images import load_image
    from ..integrations.chat import resolve_template
    from ..loading import load_image_processor
    from ..visualize.fusion_figure import render_fusion_figure

    load_image(args.image)  # a missing or corrupt image fails before any model is built
    model = build_model(args).eval()
    try:
        tokenizer = AutoTokenizer.from_pretrained(model.config.llm_name_or_path)
    except (OSError, TypeError) as error:
        raise ValueError(f"cannot load a tokenizer from '{model.config.llm_name_or_path}': {error}") from error
    image_processor = load_image_processor(model.config.vision_name_or_path)
    template = resolve_template(model, args.template and args.template.replace("\\n", "\n"), name="--template")
    question = args.prompt.replace("\\n", "\n")
    prompt = template.format(prompt=question)
    result = render_fusion_figure(model, tokenizer, image_processor, args.image, prompt, args.output, question=question,
                                  layer=args.layer, token=args.token, max_new_tokens=args.max_new_tokens,
                                  dpi=args.dpi)
    print(f"answer: {result.answer}")
    print(f"wrote {result.figure.path} ({result.figure.size[0]}x{result.figure.size[1]} px)")
    return 0
