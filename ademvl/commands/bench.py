"""FLOPs (meta device, named presets) and interleaved wall-clock (small random backbones built
in-process) of every registered method and of the bare frozen LLM; writes results.json and
results.md into --out."""
from __future__ import annotations

import time
from dataclasses import replace


def add_arguments(parser) -> None:
    parser.add_argument("--out", default="benchmarks", help="folder for results.json and results.md")
    parser.add_argument("--quick", action="store_true",
                        help="tiny wall-clock config, FLOPs of the first --llm preset only (for tests)")
    parser.add_argument("--profile", action="append", dest="profiles", choices=["small", "7b-width", "7b-proportional"],
                        help="wall-clock backbones (repeatable): 'small' = narrow LLaMA/CLIP with 7B-like ratios; "
                             "'7b-width' = LLaMA-7B layers and ViT-L/14 blocks, 2 and 6 of them; "
                             "'7b-proportional' = the same widths, 4 layers and 3 blocks (LLaMA-7B + ViT-L's "
                             "32 : 24), so wall-clock ratios weigh the tower as the real model does (default: small)")
    parser.add_argument("--llm", action="append", dest="llms", metavar="PRESET",
                        help="LLM preset(s) for the FLOP table (default: llama-7b and llama-13b)")
    parser.add_argument("--vision", default="clip-vit-l-14", help="vision preset for the FLOP table")
    parser.add_argument("--text-len", type=int, default=256, help="text length of the FLOP count")
    parser.add_argument("--methods", nargs="+", default=None, help="methods to run (default: all registered)")
    parser.add_argument("--exact-flops", action="store_true",
                        help="count the full-depth models (slow) instead of extrapolating from 1 and 2 blocks")
    parser.add_argument("--no-flops", action="store_true", help="skip the FLOP tables")
    parser.add_argument("--no-timing", action="store_true", help="skip the wall-clock table")
    parser.add_argument("--device", default=None, help="wall-clock device (default: cuda if available, else cpu)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (1 is far faster on a CPU shared with other processes)")
    parser.add_argument("--repeats", type=int, default=None, help="measured repeats (median taken)")
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--text-len-timing", type=int, default=None, help="text length of the wall-clock batch")
    parser.add_argument("--note", default="", help="free text stored with the results (e.g. machine load)")


def run(args) -> int:
    import torch

    from ..bench.flops import flops_table
    from ..bench.machine import machine_info
    from ..bench.report import write_results
    from ..bench.timing import PROFILES, wall_clock
    from ..methods import METHODS

    if args.threads:
        torch.set_num_threads(args.threads)
    methods = args.methods or list(METHODS)
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ValueError(f"unknown method(s) {unknown}; available: {sorted(METHODS)}")
    record = {"date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "machine": machine_info(), "note": args.note,
              "methods": methods, "flops": [], "wall_clock": []}
    start = time.perf_counter()
    if not args.no_flops:
        llms = args.llms or (["llama-7b"] if args.quick else ["llama-7b", "llama-13b"])
        for llm in llms:
            print(f"counting FLOPs on {llm} + {args.vision} …", flush=True)
            record["flops"].append(flops_table(llm, args.vision, args.text_len, methods,
                                               exact=args.exact_flops))
    profiles = [] if args.no_timing else ["quick"] if args.quick else (args.profiles or ["small"])
    for profile in profiles:
        overrides = {k: v for k, v in (("repeats", args.repeats), ("batch_size", args.batch_size),
                                       ("text_len", args.text_len_timing)) if v is not None}
        cfg = replace(PROFILES[profile], **overrides)
        print(f"timing {', '.join(methods)} and the bare LLM ({profile} backbones) …", flush=True)
        result = wall_clock(cfg, methods, args.device, log=lambda m: print("  " + m, flush=True), profile=profile)
        record["wall_clock"].append(result)
    record["seconds"] = time.perf_counter() - start
    json_path, md_path = write_results(record, args.out)
    print(open(md_path, encoding="utf-8").read())
    print(f"wrote {json_path} and {md_path} in {record['seconds']:.0f} s")
    return 0
