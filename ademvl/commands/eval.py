"""Evaluate a saved adapter on ScienceQA, COCO captions, easy-VQA or LLaVA-instruct.

Generates an answer for every record (batched, greedy unless --do-sample), scores
them with the dataset's metric (ScienceQA: the paper's per-category accuracy
table; COCO: BLEU-4 and CIDEr; easy-VQA: exact match by question type;
LLaVA-instruct: predictions only) and writes every prediction to a JSON file.

An adapter converted from the official release (`ademvl convert official`) is evaluated
the official way unless --no-official: official preprocessing and prompt layout, and
for ScienceQA the official protocol (QCM-A prompt with DATA_ROOT/captions.json in the
context, "The answer is" + one token, first capital letter), for COCO "a picture of"
+ 20 tokens. --official applies all of it to any ADEM-VL adapter.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..data import SPECS

DATASETS = tuple(sorted(SPECS))  # every registered dataset (`ademvl.data.registry`), in a stable order


def add_model_arguments(parser, checkpoint_default: str | None = None) -> None:
    """Options shared by `eval`, `generate` and `serve`: which adapter, on which backbones, where.

    `checkpoint_default` makes --checkpoint optional (`serve` defaults to the demo's adapter)."""
    parser.add_argument("--checkpoint", required=checkpoint_default is None, default=checkpoint_default, metavar="DIR",
                        help="adapter directory written by save_adapter / training (ademvl_adapter.json + weights)")
    parser.add_argument("--llm", metavar="PATH", help="LLM path or hub id (if omitted: the one recorded in the adapter)")
    parser.add_argument("--vision", metavar="PATH",
                        help="vision tower path or hub id (if omitted: the one recorded in the adapter)")
    parser.add_argument("--tokenizer", metavar="PATH", help="tokenizer path (if omitted: the LLM path)")
    parser.add_argument("--image-processor", metavar="PATH", help="image processor path (if omitted: the vision path)")
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:1, ... ('auto': cuda when available)")
    parser.add_argument("--dtype", choices=("float32", "bfloat16", "float16"),
                        help="backbone dtype (if omitted: as saved in the backbone checkpoints); bfloat16 runs on "
                             "CPUs too, the adapter's weights stay as trained")
    parser.add_argument("--quantization", choices=("4bit", "8bit"),
                        help="load the frozen LLM's linear layers in 4-bit NF4 or 8-bit through bitsandbytes "
                             "(GPU, else CPU; needs ademvl[quant])")


def add_sampling_arguments(parser) -> None:
    parser.add_argument("--do-sample", action="store_true", help="sample instead of greedy decoding")
    parser.add_argument("--top-p", type=float, help="nucleus sampling threshold (with --do-sample), e.g. 0.75")
    parser.add_argument("--temperature", type=float, help="sampling temperature (with --do-sample), e.g. 0.1")
    parser.add_argument("--seed", type=int, default=0, help="random seed (matters with --do-sample)")


def sampling_kwargs(args) -> dict:
    if not args.do_sample and (args.top_p is not None or args.temperature is not None):
        raise ValueError("--top-p/--temperature only apply with --do-sample")
    if args.do_sample:
        import torch

        torch.manual_seed(args.seed)
        return {"do_sample": True, "top_p": args.top_p, "temperature": args.temperature}
    return {}


def add_arguments(parser) -> None:
    add_model_arguments(parser)
    parser.add_argument("--dataset", required=True, choices=DATASETS, help="which evaluation to run")
    parser.add_argument("--data-root", metavar="DIR",
                        help="ScienceQA: folder with problems.json, pid_splits.json, images/ (required); "
                             "easy-VQA: its data folder (if omitted: the installed easy-vqa package)")
    parser.add_argument("--json", metavar="FILE",
                        help="COCO: Karpathy dataset_coco.json or BLIP coco_karpathy_test.json (required); "
                             "LLaVA-instruct: the conversations JSON (required)")
    parser.add_argument("--image-root", metavar="DIR",
                        help="COCO: folder holding train2014/ val2014/ (required); LLaVA-instruct: image folder; "
                             "ScienceQA: DATA_ROOT/images if omitted")
    parser.add_argument("--split", default="test", help="split to evaluate (ScienceQA: from pid_splits.json; "
                                                        "COCO/easy-VQA: train, val or test; ignored for LLaVA-instruct)")
    parser.add_argument("--prompt-format", default=None,
                        help="ScienceQA prompt format (if omitted: CQM-A, as the library trains; QCM-A, as the "
                             "official evaluation, for an official adapter)")
    parser.add_argument("--captions", metavar="FILE",
                        help="ScienceQA: LaVIN's captions.json, whose captions join the context (the official "
                             "protocol reads DATA_ROOT/captions.json if omitted)")
    parser.add_argument("--official", action=argparse.BooleanOptionalAction, default=None,
                        help="official preprocessing, prompt layout and protocol (if omitted: as the adapter records)")
    parser.add_argument("--prompt", help="COCO/easy-VQA prompt template, as used in training (if omitted: the loader's)")
    parser.add_argument("--limit", type=int, metavar="N", help="evaluate only the first N records (COCO: images)")
    parser.add_argument("--skip-bad-images", action="store_true",
                        help="drop records whose image is missing or corrupt (counted) instead of stopping")
    parser.add_argument("--batch-size", type=int, default=8, help="records generated together")
    parser.add_argument("--max-new-tokens", type=int,
                        help="generation length (if omitted: scienceqa 32, coco 32, easyvqa 8, llava_instruct 256; "
                             "raise it for ScienceQA formats that explain before answering, e.g. CQM-LEA)")
    parser.add_argument("--output", metavar="FILE.json",
                        help="where to write metrics + every prediction (if omitted: CHECKPOINT/eval_DATASET_SPLIT.json)")
    parser.add_argument("--resume", action="store_true",
                        help="finish an interrupted evaluation: keep the predictions its OUTPUT.partial.jsonl holds "
                             "and generate only the rest (same settings required)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    add_sampling_arguments(parser)


def _need(value, option: str, dataset: str):
    if value is None:
        raise ValueError(f"--dataset {dataset} needs {option}")
    return value


def load_examples(args) -> list:
    """The records of `args.dataset` from the command-line paths."""
    from ..data import load_dataset

    name, kw = args.dataset, {"limit": args.limit}
    if args.limit is not None and args.limit < 1:
        raise ValueError(f"--limit must be at least 1, got {args.limit}")
    if name == "scienceqa":
        root = _need(args.data_root, "--data-root", name)
        for file in ("problems.json", "pid_splits.json"):
            if not (Path(root) / file).is_file():
                raise FileNotFoundError(f"ScienceQA file not found: {Path(root) / file}")
        kw.update(root=root, split=args.split, prompt_format=args.prompt_format, image_root=args.image_root,
                  captions=args.captions)
    elif name == "coco":
        kw.update(karpathy_json=_need(args.json, "--json", name), image_root=_need(args.image_root, "--image-root", name),
                  split=args.split)
    elif name == "easyvqa":
        kw.update(split=args.split, data_dir=args.data_root)
    elif name == "llava_instruct":
        kw.update(json_path=_need(args.json, "--json", name), image_root=args.image_root)
    else:  # a dataset registered since: its options need a line here
        raise ValueError(f"--dataset {name}: the eval command does not map its options yet")
    if args.prompt is not None and name in ("coco", "easyvqa"):
        kw["prompt"] = args.prompt.replace("\\n", "\n")
    for key in ("karpathy_json", "json_path"):
        if key in kw and not Path(kw[key]).is_file():
            raise FileNotFoundError(f"annotation file not found: {kw[key]}")
    return load_dataset(name, **kw)


def open_checkpoint(args):
    """The adapter of --checkpoint, found and its config read once (`ademvl.checkpoint.ResolvedAdapter`),
    then passed as it is to `official_choice` and `load_for_eval`."""
    from ..hub import open_adapter

    if not Path(args.checkpoint).is_dir():
        raise FileNotFoundError(f"checkpoint directory not found: {args.checkpoint}")
    return open_adapter(args.checkpoint)


def official_choice(args, adapter) -> str | None:
    """The official task this evaluation follows (None: the library's way) for the resolved `adapter`,
    and the ScienceQA prompt format and captions that go with it."""
    from ..official import choose_task

    task = choose_task(adapter.config.get("official"), args.official, args.dataset)
    if args.dataset == "scienceqa":
        official = task is not None
        if args.prompt_format is None:
            args.prompt_format = "QCM-A" if official else "CQM-A"
        if official and args.captions is None and args.data_root is not None:
            args.captions = str(Path(args.data_root) / "captions.json")
            if not Path(args.captions).is_file():
                raise FileNotFoundError(f"the official ScienceQA protocol puts captions in the context: "
                                        f"{args.captions} not found (pass --captions FILE, or --no-official)")
    return task


def run(args) -> int:
    from ..data import filter_loadable
    from ..evaluation import evaluate, load_for_eval
    from ..evaluation.evaluators import journal_settings
    from ..evaluation.journal import PredictionJournal

    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be at least 1, got {args.batch_size}")
    if args.max_new_tokens is not None and args.max_new_tokens < 1:
        raise ValueError(f"--max-new-tokens must be at least 1, got {args.max_new_tokens}")
    gen = sampling_kwargs(args)
    adapter = open_checkpoint(args)
    task = official_choice(args, adapter)
    examples = load_examples(args)
    if not examples:
        raise ValueError(f"no {args.dataset} records in split {args.split!r}")
    examples, skipped = filter_loadable(examples, skip_bad=args.skip_bad_images)
    if not Path(args.checkpoint).is_dir():
        raise FileNotFoundError(f"checkpoint directory not found: {args.checkpoint}")
    split = "" if args.dataset == "llava_instruct" else f"_{args.split}"
    output = Path(args.output) if args.output else Path(args.checkpoint) / f"eval_{args.dataset}{split}.json"
    # Where the predictions go is checked (and their journal started) before anything is generated.
    settings = journal_settings(args.dataset, args.max_new_tokens, gen, {
        "checkpoint": str(Path(args.checkpoint).resolve()), "split": args.split, "prompt_format": args.prompt_format,
        "prompt": args.prompt, "llm": args.llm, "vision": args.vision, "dtype": args.dtype,
        **({"quantization": args.quantization} if args.quantization else {}),
        "seed": args.seed if args.do_sample else None,
        **{key: value for key, value in (("official", task), ("captions", args.captions)) if value is not None}})
    journal = PredictionJournal.open(output, settings, resume=args.resume,
                                     option="--output" if args.output else "the default output")
    if journal.done:
        kept = sum(ex.id in journal.done for ex in examples)
        print(f"resuming: {kept} of {len(examples)} predictions already in {journal.path}", flush=True)
    try:
        model, tokenizer, processor = load_for_eval(adapter, llm=args.llm, vision=args.vision,
                                                    tokenizer=args.tokenizer, image_processor=args.image_processor,
                                                    device=args.device, dtype=args.dtype, official=task or False,
                                                    quantization=args.quantization)
        result = evaluate(model, tokenizer, processor, args.dataset, examples, batch_size=args.batch_size,
                          max_new_tokens=args.max_new_tokens, progress=not args.no_progress, output=output,
                          journal=journal, **gen)
    except BaseException:
        journal.discard_if_empty()  # keep every prediction made, but no empty journal for a run that never began
        raise
    print(f"{args.dataset} ({len(examples)} records{f', {skipped} skipped for bad images' if skipped else ''})")
    if args.dataset == "scienceqa":
        print(result["table"])
    elif args.dataset == "coco":
        print("  ".join(f"{k} {v:.2f}" for k, v in result["metrics"].items()))
    elif args.dataset == "easyvqa":
        metrics = result["metrics"]
        by_type = "  ".join(f"{k} {v:.2f}" for k, v in metrics["by_type"].items())
        print(f"exact match {metrics['overall']:.2f}  ({by_type})")
    else:
        print(json.dumps(result["predictions"][0], ensure_ascii=False))
    print(f"predictions: {output}")
    return 0
