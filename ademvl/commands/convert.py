"""Convert the official ADEM-VL release into what the library loads.

  ademvl convert llama weights/7B --output weights/llama-7b-hf --python /path/to/venv-transformers4/bin/python
      Meta's LLaMA layout (consolidated.00.pth, params.json, tokenizer.model) → a Hugging Face
      directory, by transformers' own convert_llama_weights_to_hf.py (see --script/--python).
  ademvl convert official checkpoint_7B_sqa.pth --llm weights/llama-7b-hf \\
          --vision openai/clip-vit-large-patch14 --output adapters/adem-7b-sqa
      A released checkpoint → an adapter directory for `ademvl eval`/`generate` and
      VLModel.from_adapter, set to the official preprocessing, prompt layout and protocol.
      Settings: the options below, else the file's `args`, else the official evaluation's
      defaults (a file holding only `model` converts; say --scales etc. as you ran eval_*.py).
The official code's CLIP ViT-L/14 (OpenAI's `clip` package) is openai/clip-vit-large-patch14.
"""
from __future__ import annotations


def add_arguments(parser) -> None:
    sub = parser.add_subparsers(dest="what", required=True)
    official = sub.add_parser("official", help="a released .pth (official save_model format) → an adapter directory")
    official.add_argument("checkpoint", metavar="CHECKPOINT.pth")
    official.add_argument("--llm", required=True, metavar="DIR", help="the LLaMA in Hugging Face layout (see 'convert llama')")
    official.add_argument("--vision", required=True, metavar="DIR",
                          help="CLIP ViT-L/14 in Hugging Face layout: openai/clip-vit-large-patch14 (or its local copy)")
    official.add_argument("--output", required=True, metavar="ADAPTER_DIR", help="new adapter directory")
    official.add_argument("--task", choices=("scienceqa", "caption", "instruction"),
                          help="official layout to record (default: from the checkpoint's args.dataset)")
    given = official.add_argument_group(
        "settings", "as eval_sqa.py / eval_caption.py / eval_mme.py take them; each overrides the checkpoint's "
                    "args, which override the official evaluation defaults shown")
    given.add_argument("--alpha", type=float, help="scale α of the fused visual read-out (default 0.1)")
    given.add_argument("--beta", type=float, help="scale β of the visual memory (default 0.01)")
    given.add_argument("--drop-ratio", type=float, help="adaptive fusion drop ratio γ (default 0.1)")
    given.add_argument("--scales", "--down-sample-num", dest="down_sample_num", type=int, nargs="+", metavar="N",
                       help="visual prompt tokens per scale (default 256 64)")
    given.add_argument("--adapter-dim", type=int, help="vision adapter width (default 12)")
    given.add_argument("--hidden-proj", type=int, help="projector hidden width (default 128)")
    given.add_argument("--no-cls", action="store_const", const=True, default=None,
                       help="the run had no [cls] prompt (official --no_cls; default: it had one)")
    llama = sub.add_parser("llama", help="Meta-layout LLaMA → Hugging Face directory (transformers' script)")
    llama.add_argument("input_dir", metavar="DIR", help="folder with consolidated.00.pth and params.json "
                                                        "(tokenizer.model there or one folder up)")
    llama.add_argument("--output", required=True, metavar="HF_DIR", help="new Hugging Face directory")
    llama.add_argument("--python", metavar="PATH",
                       help="python of an environment whose transformers (4.x) ships convert_llama_weights_to_hf")
    llama.add_argument("--script", metavar="PATH", help="the convert_llama_weights_to_hf.py file itself")
    llama.add_argument("--model-size", help="the script's --model_size (default: 7B/13B/30B/65B from the shard count)")


def run(args) -> int:
    if args.what == "official":
        from ..official.convert import convert_official

        given = {name: getattr(args, name) for name in
                 ("alpha", "beta", "drop_ratio", "down_sample_num", "adapter_dim", "hidden_proj", "no_cls")}
        out = convert_official(args.checkpoint, args.llm, args.vision, args.output, task=args.task, given=given,
                               report=print)
    else:
        from ..official.llama import convert_llama

        out = convert_llama(args.input_dir, args.output, script=args.script, python=args.python,
                            model_size=args.model_size)
    print(f"wrote {out}")
    return 0
