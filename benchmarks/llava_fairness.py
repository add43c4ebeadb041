"""Is the LLaVA-LoRA baseline fair? This library's LLaVA-LoRA against Hugging Face's own
`transformers.LlavaForConditionalGeneration` + `peft` LoRA, on the same backbones, side by side.

Both models compute on the same frozen tensors (the same random LLaMA and CLIP tower, built once
by `ademvl.bench.timing.build_backbones`), with the same LoRA (rank, alpha, dropout, q_proj/v_proj
of the LLM only), the same 256 visual tokens placed after the first token, the same batch, text
length, answer loss and AdamW step. The HF model's projector is replaced by ours (the tower's
post-layernorm, then fc1 → SiLU → fc2, hidden 128: LLaVA's own d_v → d → d MLP would train 21M
weights at 7B instead of 0.66M), so the two compute the same function: their logits are compared
before any timing. Two pairs are timed:

- with the vision adapters (this library's default llava-lora, the paper's baseline framework):
  the HF tower gets copies of the same adapters, so both back-propagate through the tower;
- without them (`vision_adapters=False` for ours; stock HF LLaVA + peft LoRA): no backward through
  the tower in either.

ADEM-VL runs in the same interleaved loop, so its ratio to either LLaVA-LoRA is measured too.
Each repeat runs every model × {train step, generate}; medians over repeats.

    python benchmarks/llava_fairness.py --out benchmarks            # small, then 7b-proportional
    python benchmarks/llava_fairness.py --profile 7b-proportional --append --out benchmarks   # one profile again
    python benchmarks/llava_fairness.py --quick --out /tmp/fair     # tiny, seconds (tests)
"""
from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from ademvl.bench.inputs import answer_targets, synthetic_batch  # noqa: E402
from ademvl.bench.machine import machine_info  # noqa: E402
from ademvl.bench.steps import VLSteps, _loss  # noqa: E402
from ademvl.bench.timing import PROFILES, bench_method_config, build_backbones, share_frozen_copy  # noqa: E402

IMAGE_TOKEN = 2  # synthetic text ids are drawn from [3, vocab): the placeholder id never occurs in the text

# name → (kind, with vision adapters)
MODELS = {
    "ademvl": ("ademvl", True),
    "ours-llava-lora": ("ours", True),
    "hf-llava-lora+adapters": ("hf", True),
    "ours-llava-lora-noadapters": ("ours", False),
    "hf-llava-lora": ("hf", False),
}


def timed(fn) -> tuple[float, float]:
    """Wall-clock and process CPU seconds of `fn()`. On one torch thread the CPU time is the work
    done whatever else the machine runs; the wall-clock also holds the time other processes took."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def frozen_copy(module: nn.Module) -> nn.Module:
    """A structural copy sharing the frozen tensors; trainable ones (adapters) are copied."""
    memo = {id(t): t for t in module.parameters() if not t.requires_grad}
    memo.update({id(b): b for b in module.buffers()})
    return copy.deepcopy(module, memo)


class HFProjector(nn.Module):
    """Ours, in HF's projector slot: the tower's post-layernorm (frozen), then our low-rank MLP."""

    def __init__(self, post_norm: nn.Module, projector: nn.Module):
        super().__init__()
        self.post_norm = post_norm
        self.projector = projector

    def forward(self, features):
        return self.projector(self.post_norm(features))


def build_hf(llm, ours, settings) -> nn.Module:
    """HF Llava over `llm` (a structural copy) and `ours`' tower + projector, peft LoRA on the LLM."""
    from peft import LoraConfig, get_peft_model
    from transformers import LlavaConfig, LlavaForConditionalGeneration

    tower = ours.vision.model  # the CLIPVisionModel, with or without our adapters in its MLPs
    config = LlavaConfig(text_config=llm.config.to_dict(), vision_config=tower.config.to_dict(),
                         image_token_index=IMAGE_TOKEN, image_seq_length=ours.method.num_patches,
                         vision_feature_layer=settings.feature_layer, vision_feature_select_strategy="default",
                         projector_hidden_act="silu")
    config.text_config._attn_implementation = llm.config._attn_implementation
    config.vision_config._attn_implementation = tower.config._attn_implementation
    with torch.device("meta"):
        model = LlavaForConditionalGeneration(config)
    llm_copy = share_frozen_copy(llm)
    model.model.language_model = llm_copy.model
    model.lm_head = llm_copy.lm_head
    model.model.vision_tower = frozen_copy(tower)
    model.model.multi_modal_projector = HFProjector(frozen_copy(ours.vision.post_norm), copy.deepcopy(ours.method.projector))
    meta = [n for n, p in model.named_parameters() if p.is_meta]
    assert not meta, f"HF Llava left on meta: {meta[:3]}"
    model.generation_config.pad_token_id = 0
    lora = LoraConfig(r=settings.lora_rank, lora_alpha=settings.lora_alpha, lora_dropout=settings.lora_dropout,
                      target_modules=r".*language_model.*\.(q_proj|v_proj)", bias="none", task_type="CAUSAL_LM")
    model = get_peft_model(model, lora)
    base = model.base_model.model
    base.model.multi_modal_projector.projector.requires_grad_(True)
    for module in base.model.vision_tower.modules():  # our adapters, if present
        if getattr(module, "_ademvl_trainable", False):
            module.requires_grad_(True)
    return model


class HFSteps:
    """`VLSteps`' train step and generate for the HF model, on the same ids with image placeholders."""

    def __init__(self, model, inputs: dict, num_visual: int, answer_len: int):
        self.model = model
        ids = inputs["input_ids"].clone()
        ids[:, 1:1 + num_visual] = IMAGE_TOKEN  # ours: visual tokens at slot 1 (after bos), same positions
        self.inputs = {"input_ids": ids, "attention_mask": inputs["attention_mask"], "pixel_values": inputs["pixel_values"]}
        vocab = model.config.get_text_config().vocab_size
        self.targets = answer_targets(ids.shape[0], answer_len, vocab, ids.device)
        self.answer_len = answer_len

    def mode(self, training: bool):
        if self.model.training != training:
            self.model.train(training)

    def logits(self):
        with torch.no_grad():
            return self.model(**self.inputs).logits

    def train(self, optimizer=None):
        logits = self.model(**self.inputs, logits_to_keep=self.answer_len).logits
        loss = _loss(logits, self.targets)
        loss.backward()
        if optimizer is not None:
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        return loss

    def generate(self, new_tokens: int):
        return self.model.generate(**self.inputs, max_new_tokens=new_tokens, min_new_tokens=new_tokens,
                                   do_sample=False, pad_token_id=0, eos_token_id=None)


def trainable(model) -> list[nn.Parameter]:
    return [p for p in model.parameters() if p.requires_grad]


def build(cfg, names, log):
    from ademvl.model import VLModel

    llm, vision = build_backbones(cfg)
    runners, info, ours_by_adapters = {}, {}, {}
    for name in [n for n in names if MODELS[n][0] != "hf"] + [n for n in names if MODELS[n][0] == "hf"]:
        kind, adapters = MODELS[name]
        if kind == "hf":
            ours = ours_by_adapters.get(adapters)
            if ours is None:  # the HF row needs our model of the same setting for its tower/projector
                ours = VLModel.from_backbones(share_frozen_copy(llm), share_frozen_copy(vision), method="llava-lora",
                                              method_config={"vision_adapters": adapters})
            settings = ours.method.settings
            model = build_hf(llm, ours, settings)
            model.train()
            steps = HFSteps(model, synthetic_batch(ours, cfg.batch_size, cfg.text_len), ours.method.num_patches,
                            cfg.answer_len)
        else:
            method = "ademvl" if kind == "ademvl" else "llava-lora"
            config = bench_method_config(method, cfg) if kind == "ademvl" else {"vision_adapters": adapters}
            model = VLModel.from_backbones(share_frozen_copy(llm), share_frozen_copy(vision), method=method,
                                           method_config=config)
            model.train()
            steps = VLSteps(model, synthetic_batch(model, cfg.batch_size, cfg.text_len), cfg.answer_len)
            if kind == "ours":
                ours_by_adapters[adapters] = model
        params = trainable(model)
        info[name] = {"trainable": sum(p.numel() for p in params),
                      "sequence": int(steps.inputs["input_ids"].shape[1])}
        runners[name] = (steps, torch.optim.AdamW(params, lr=1e-4))
        log(f"  built {name}: {info[name]['trainable']:,} trainable, sequence {info[name]['sequence']}")
    return runners, info


def check_same_function(runners) -> dict:
    """Eval-mode logits of each HF model against ours of the same setting (before any optimizer step)."""
    out = {}
    for hf_name, ours_name in (("hf-llava-lora+adapters", "ours-llava-lora"), ("hf-llava-lora", "ours-llava-lora-noadapters")):
        if hf_name in runners and ours_name in runners:
            hf, ours = runners[hf_name][0], runners[ours_name][0]
            hf.mode(False)
            ours.mode(False)
            with torch.no_grad():
                a = hf.logits()[:, -8:].float()
                b = ours.model(**ours.inputs).logits[:, -8:].float()
            out[hf_name] = {"max_abs_logit_diff": float((a - b).abs().max()), "logit_scale": float(b.abs().max())}
    return out


def run_profile(profile: str, cfg, names, log) -> dict:
    log(f"{profile}: d={cfg.hidden}, {cfg.layers} layers, tower {cfg.vision_hidden}×{cfg.vision_layers}, batch "
        f"{cfg.batch_size}, text {cfg.text_len}, {cfg.new_tokens} new tokens, {cfg.repeats} repeats")
    runners, info = build(cfg, names, log)
    check = check_same_function(runners)
    for name, c in check.items():
        log(f"  same function: {name} vs ours, max |Δ logits| {c['max_abs_logit_diff']:.2e} (scale {c['logit_scale']:.2f})")
    kinds = {"train": lambda s, o: (s.mode(True), s.train(o)),
             "generate": lambda s, o: (s.mode(False), s.generate(cfg.new_tokens))}
    samples = {name: {k + c: [] for k in kinds for c in ("", "_cpu")} for name in runners}
    for repeat in range(cfg.warmup + cfg.repeats):
        for name, (steps, optimizer) in runners.items():
            for kind, fn in kinds.items():
                wall, cpu = timed(lambda: fn(steps, optimizer))
                if repeat >= cfg.warmup:
                    samples[name][kind].append(wall)
                    samples[name][kind + "_cpu"].append(cpu)
        log(f"  repeat {repeat + 1}/{cfg.warmup + cfg.repeats} done")
    rows = {name: {**info[name], **{k: statistics.median(v) for k, v in samples[name].items()},
                   **{k + "_samples": v for k, v in samples[name].items()}} for name in runners}
    ratios = {}
    pairs = {"ours ÷ HF (vision adapters)": ("ours-llava-lora", "hf-llava-lora+adapters"),
             "ours ÷ HF (no vision adapters)": ("ours-llava-lora-noadapters", "hf-llava-lora"),
             "ADEM-VL ÷ ours LLaVA-LoRA": ("ademvl", "ours-llava-lora"),
             "ADEM-VL ÷ HF LLaVA-LoRA + adapters": ("ademvl", "hf-llava-lora+adapters"),
             "ADEM-VL ÷ HF LLaVA-LoRA (stock, no adapters)": ("ademvl", "hf-llava-lora")}
    for label, (a, b) in pairs.items():
        if a in rows and b in rows:
            ratios[label] = {k: rows[a][k] / rows[b][k] for k in samples[a]}
    return {"profile": profile, "config": asdict(cfg), "rows": rows, "ratios": ratios, "same_function": check}


def markdown(record: dict) -> str:
    m = record["machine"]
    lines = ["# LLaVA-LoRA fairness: ours against Hugging Face's LLaVA + peft LoRA", "",
             f"Machine: {m['cpu']}, {m['cores']} cores, torch {m['torch']}, transformers "
             f"{record['versions']['transformers']}, peft {record['versions']['peft']}. Written {record['date']}.", ""]
    lines += ["Same frozen LLaMA and CLIP tensors, same LoRA (rank, alpha, dropout; q_proj and v_proj of the LLM), "
              "same projector (ours, in HF's slot: LLaVA's own d_v → d → d MLP would train 21M weights at 7B against "
              "ours' 0.66M), same 256 visual tokens after the first token, same batch, text, "
              "answer loss and AdamW step. *train* = forward + loss on the answer + backward + optimizer step; "
              "*generate* = greedy decoding, prefill included. Medians of interleaved repeats, as wall-clock and as "
              "process CPU time (on one torch thread the CPU time is the work done, whatever else the machine runs; "
              "on a shared machine it is the steadier of the two).", ""]
    for result in record["results"]:
        cfg = result["config"]
        lines += [f"## {result['profile']}: LLaMA d={cfg['hidden']}, d_ff={cfg['intermediate']}, {cfg['layers']} layers, "
                  f"vocab {cfg['vocab']}; CLIP width {cfg['vision_hidden']}, {cfg['vision_layers']} blocks, "
                  f"{cfg['image_size'] // cfg['patch_size']}² grid; batch {cfg['batch_size']}, text {cfg['text_len']}, "
                  f"answer {cfg['answer_len']}, {cfg['new_tokens']} new tokens; median of {cfg['repeats']} repeats", ""]
        rm = result.get("machine", m)
        lines += [f"Run {result.get('date', record['date'])}, {rm['torch_threads']} torch thread(s), load average at "
                  f"the start {rm.get('load_average')}." + (f" {result['note']}" if result.get("note") else ""), "",
                  "| model | trainable | sequence | train step ms | generate ms | train CPU ms | generate CPU ms |",
                  "| --- | --- | --- | --- | --- | --- | --- |"]
        for name, row in result["rows"].items():
            lines.append(f"| {name} | {row['trainable']:,} | {row['sequence']} | {row['train'] * 1e3:.1f} | "
                         f"{row['generate'] * 1e3:.1f} | {row['train_cpu'] * 1e3:.1f} | {row['generate_cpu'] * 1e3:.1f} |")
        lines += ["", "| ratio | train (wall) | generate (wall) | train (CPU) | generate (CPU) |",
                  "| --- | --- | --- | --- | --- |"]
        for label, r in result["ratios"].items():
            lines.append(f"| {label} | {r['train']:.3f} | {r['generate']:.3f} | {r['train_cpu']:.3f} | "
                         f"{r['generate_cpu']:.3f} |")
        for name, c in result["same_function"].items():
            lines += ["", f"Same function: {name} against ours, eval mode, before any step: max |Δ logits| "
                      f"{c['max_abs_logit_diff']:.2e} (logits up to {c['logit_scale']:.2f})."]
        lines.append("")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="benchmarks", help="folder for llava_fairness.json and .md")
    parser.add_argument("--quick", action="store_true", help="tiny backbones, 1 repeat (seconds; for tests)")
    parser.add_argument("--profile", action="append", dest="profiles", choices=["small", "7b-proportional"],
                        help="backbones (repeatable; default: small and 7b-proportional)")
    parser.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS))
    parser.add_argument("--repeats", type=int, default=None, help="measured repeats per profile")
    parser.add_argument("--text-len", type=int, default=None)
    parser.add_argument("--new-tokens", type=int, default=None)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--note", default="")
    parser.add_argument("--append", action="store_true",
                        help="keep the other profiles' results already in --out (a profile run again is replaced)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    def log(message):
        print(message, flush=True)

    import peft
    import transformers

    record = {"date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "machine": machine_info(), "note": args.note,
              "versions": {"transformers": transformers.__version__, "peft": peft.__version__}, "results": []}
    start = time.perf_counter()
    profiles = ["quick"] if args.quick else (args.profiles or ["small", "7b-proportional"])
    for profile in profiles:
        defaults = {"quick": {"repeats": 1, "warmup": 0}, "small": {"repeats": 5}, "7b-proportional": {"repeats": 3}}
        overrides = {**defaults.get(profile, {}), **{k: v for k, v in (("repeats", args.repeats), ("text_len", args.text_len),
                                                                       ("new_tokens", args.new_tokens)) if v is not None}}
        cfg = replace(PROFILES[profile], **overrides)
        result = run_profile(profile, cfg, args.models, log)
        result.update(date=record["date"], machine=record["machine"], note=args.note)
        record["results"].append(result)
    record["seconds"] = time.perf_counter() - start
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.append and (out / "llava_fairness.json").exists():
        old = json.loads((out / "llava_fairness.json").read_text(encoding="utf-8"))
        kept = [{"date": old["date"], "machine": old["machine"], "note": old.get("note", ""), **r}
                for r in old["results"] if r["profile"] not in profiles]
        record["results"] = kept + record["results"]
    (out / "llava_fairness.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    text = markdown(record)
    (out / "llava_fairness.md").write_text(text, encoding="utf-8")
    print(text)
    print(f"wrote {out / 'llava_fairness.json'} and {out / 'llava_fairness.md'} in {record['seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
