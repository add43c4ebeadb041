"""Answer one prompt about one image (or none) with a saved adapter and print the answer.

--prompt is wrapped the way training wrapped its questions (the template the adapter
records, e.g. "Question: {prompt}\\nAnswer:" for easy-VQA or
"Instruction: {prompt}\\nResponse:" for LLaVA-instruct); --template '{prompt}'
passes it verbatim, e.g. a whole ScienceQA "Context: … Response:" prompt.
"""
from __future__ import annotations

from .eval import add_model_arguments, add_sampling_arguments, sampling_kwargs


def add_arguments(parser) -> None:
    add_model_arguments(parser)
    parser.add_argument("--image", metavar="PATH", help="image file (omit for a text-only prompt)")
    parser.add_argument("--prompt", required=True, help="text after the image prefix (\\n is a newline)")
    parser.add_argument("--template", default=None,
                        help="wrapping for --prompt, e.g. 'Instruction: {prompt}\\nResponse:' "
                             "(default: the one the adapter was trained with, else '{prompt}')")
    parser.add_argument("--max-new-tokens", type=int, default=64, help="longest answer, in tokens")
    add_sampling_arguments(parser)


def run(args) -> int:
    from ..data import load_image
    from ..integrations import AdemVLChat
    from ..integrations.chat import check_template

    if args.max_new_tokens < 1:
        raise ValueError(f"--max-new-tokens must be at least 1, got {args.max_new_tokens}")
    gen = sampling_kwargs(args)
    template = args.template and check_template(args.template.replace("\\n", "\n"), "--template")
    image = load_image(args.image) if args.image is not None else None  # fail before loading the model
    chat = AdemVLChat.from_checkpoint(args.checkpoint, llm=args.llm, vision=args.vision, tokenizer=args.tokenizer,
                                      image_processor=args.image_processor, device=args.device, dtype=args.dtype,
                                      quantization=args.quantization, prompt_template=template)
    print(chat.answer(image, args.prompt.replace("\\n", "\n"), max_new_tokens=args.max_new_tokens, **gen))
    return 0
