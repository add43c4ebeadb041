"""Tiny artefacts in the official ADEM-VL layouts, built by the tests: a SentencePiece
tokenizer.model, LLaMA in Meta's layout (consolidated.00.pth + params.json), CLIP in
OpenAI's, and a checkpoint in the exact structure of the official `save_model`."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
import torch

spm = pytest.importorskip("sentencepiece", reason="the official tokenizer.model needs sentencepiece")
pytest.importorskip("google.protobuf", reason="transformers reads tokenizer.model through protobuf")

from transformers import CLIPVisionConfig, CLIPVisionModel, LlamaConfig, LlamaForCausalLM  # noqa: E402

CORPUS = [
    "Context: N/A\nQuestion: Which is a mammal?\nOptions: (A) cat (B) fish (C) frog\nResponse:The answer is A.",
    "Question: What is the capital of France?\nContext: The map shows Europe.\nOptions: (A) Paris (B) Rome",
    "Image: N/A", "Image: ", "Instruction: describe the picture\nResponse: a red circle",
    "a picture of a dog on a bed", "Which word would you find on a dictionary page? (D) dune (E) zebra",
]
DIM, HEADS, LAYERS = 64, 4, 2
VISION_LAYERS, VISION_HEADS = 3, 4


def sentencepiece_model(directory: Path) -> Path:
    """A BPE tokenizer.model with LLaMA's normaliser settings (dummy prefix, byte fallback, no
    whitespace folding), ids unk 0 / bos 1 / eos 2 as LLaMA's."""
    directory.mkdir(parents=True, exist_ok=True)
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(CORPUS * 20), model_prefix=str(directory / "tokenizer"), vocab_size=360,
        model_type="bpe", byte_fallback=True, add_dummy_prefix=True, remove_extra_whitespaces=False,
        split_digits=True, normalization_rule_name="identity", unk_id=0, bos_id=1, eos_id=2, pad_id=-1,
        minloglevel=2)
    return directory / "tokenizer.model"


def processor(model_file: Path):
    return spm.SentencePieceProcessor(model_file=str(model_file))


def tiny_hf_llama(vocab: int, seed: int = 0) -> LlamaForCausalLM:
    """LLaMA-1 shaped (no GQA, RMS eps 1e-6); FFN width as the official `multiple_of` rule gives (32)."""
    torch.manual_seed(seed)
    hidden = 32 * ((int(2 * 4 * DIM / 3) + 31) // 32)
    config = LlamaConfig(vocab_size=vocab, hidden_size=DIM, intermediate_size=hidden, num_hidden_layers=LAYERS,
                         num_attention_heads=HEADS, num_key_value_heads=HEADS, rms_norm_eps=1e-6,
                         max_position_embeddings=256, bos_token_id=1, eos_token_id=2, tie_word_embeddings=False)
    model = LlamaForCausalLM(config)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.uniform_(0.5, 1.5)
    return model.eval()


def _unpermute(w: torch.Tensor, heads: int) -> torch.Tensor:
    """HF q/k rows (rotate-half order) → Meta's (interleaved pairs): the inverse of the HF script's permute."""
    rows, cols = w.shape
    return w.view(heads, 2, rows // heads // 2, cols).transpose(1, 2).reshape(rows, cols)


def meta_layout(llm: LlamaForCausalLM) -> tuple[dict, dict]:
    """(consolidated state dict, params.json) of `llm` in Meta's original layout."""
    sd, cfg = llm.state_dict(), llm.config
    meta = {"tok_embeddings.weight": sd["model.embed_tokens.weight"], "norm.weight": sd["model.norm.weight"],
            "output.weight": sd["lm_head.weight"]}
    for i in range(cfg.num_hidden_layers):
        p, q = f"model.layers.{i}", f"layers.{i}"
        meta.update({
            f"{q}.attention.wq.weight": _unpermute(sd[f"{p}.self_attn.q_proj.weight"], cfg.num_attention_heads),
            f"{q}.attention.wk.weight": _unpermute(sd[f"{p}.self_attn.k_proj.weight"], cfg.num_attention_heads),
            f"{q}.attention.wv.weight": sd[f"{p}.self_attn.v_proj.weight"],
            f"{q}.attention.wo.weight": sd[f"{p}.self_attn.o_proj.weight"],
            f"{q}.feed_forward.w1.weight": sd[f"{p}.mlp.gate_proj.weight"],
            f"{q}.feed_forward.w2.weight": sd[f"{p}.mlp.down_proj.weight"],
            f"{q}.feed_forward.w3.weight": sd[f"{p}.mlp.up_proj.weight"],
            f"{q}.attention_norm.weight": sd[f"{p}.input_layernorm.weight"],
            f"{q}.ffn_norm.weight": sd[f"{p}.post_attention_layernorm.weight"],
        })
    params = {"dim": cfg.hidden_size, "multiple_of": 32, "n_heads": cfg.num_attention_heads,
              "n_layers": cfg.num_hidden_layers, "norm_eps": cfg.rms_norm_eps, "vocab_size": -1}
    return {k: v.clone().contiguous() for k, v in meta.items()}, params


def write_meta_llama(directory: Path, llm: LlamaForCausalLM, tokenizer_model: Path, size: str = "7B") -> Path:
    """The official users' layout: DIR/tokenizer.model and DIR/7B/{consolidated.00.pth, params.json}."""
    meta, params = meta_layout(llm)
    (directory / size).mkdir(parents=True, exist_ok=True)
    torch.save(meta, directory / size / "consolidated.00.pth")
    (directory / size / "params.json").write_text(json.dumps(params))
    (directory / "tokenizer.model").write_bytes(Path(tokenizer_model).read_bytes())
    return directory


def tiny_clip(seed: int = 1) -> CLIPVisionModel:
    torch.manual_seed(seed)
    model = CLIPVisionModel(CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=VISION_LAYERS,
                                             num_attention_heads=VISION_HEADS, image_size=32, patch_size=8,
                                             hidden_act="quick_gelu"))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.normal_(1.0 if name.endswith("weight") else 0.0, 0.2)
    return model.eval()


def openai_layout(vision: CLIPVisionModel) -> dict:
    """`visual.*` of OpenAI's CLIP (clip/model.py VisionTransformer) for the HF tower `vision`."""
    sd = {k.removeprefix("vision_model."): v for k, v in vision.state_dict().items()}
    out = {"conv1.weight": sd["embeddings.patch_embedding.weight"],
           "class_embedding": sd["embeddings.class_embedding"],
           "positional_embedding": sd["embeddings.position_embedding.weight"]}
    for ours, theirs in (("pre_layrnorm", "ln_pre"), ("post_layernorm", "ln_post")):
        out[f"{theirs}.weight"], out[f"{theirs}.bias"] = sd[f"{ours}.weight"], sd[f"{ours}.bias"]
    for i in range(vision.config.num_hidden_layers):
        p, q = f"encoder.layers.{i}", f"transformer.resblocks.{i}"
        for kind in ("weight", "bias"):
            out[f"{q}.attn.in_proj_{kind}"] = torch.cat([sd[f"{p}.self_attn.{x}_proj.{kind}"] for x in "qkv"])
            out[f"{q}.attn.out_proj.{kind}"] = sd[f"{p}.self_attn.out_proj.{kind}"]
            out[f"{q}.ln_1.{kind}"] = sd[f"{p}.layer_norm1.{kind}"]
            out[f"{q}.ln_2.{kind}"] = sd[f"{p}.layer_norm2.{kind}"]
            out[f"{q}.mlp.c_fc.{kind}"] = sd[f"{p}.mlp.fc1.{kind}"]
            out[f"{q}.mlp.c_proj.{kind}"] = sd[f"{p}.mlp.fc2.{kind}"]
    return out


def official_args(**changes) -> argparse.Namespace:
    """`train.py`'s args for the README's ScienceQA command (what `save_model` pickles)."""
    args = dict(dataset="sqa", data_root="./data", clip="ViT-L/14", clip_root="./clip", llm_model="7B",
                output_dir="./output_dir", log_dir="./output_dir", prompt_format="CQM-A",
                options=["A", "B", "C", "D", "E"], caption_file="./data/captions.json", use_caption=False,
                num_workers=10, pin_mem=True, adapter_dim=12, hidden_proj=128, max_seq_len=512, seed=42,
                resume="", down_sample_num=[16, 4], alpha=0.1, beta=0.01, drop_ratio=0.1, no_cls=False,
                epochs=20, start_epoch=0, batch_size=2, accum_iter=2, lr=0.001125, blr=9e-3, min_lr=0.0,
                warmup_epochs=2.0, weight_decay=0.02, clip_grad=None, device="cuda", cpu_load=False,
                gradient_checkpointing=False, world_size=8, local_rank=-1, dist_on_itp=False, dist_url="env://",
                rank=0, gpu=0, distributed=True, dist_backend="nccl", is_train=True)
    args.update(changes)
    return argparse.Namespace(**args)


def official_adapters(args: argparse.Namespace, dim: int = DIM, width: int = 32, layers: int = VISION_LAYERS,
                      seed: int = 3) -> dict[str, torch.Tensor]:
    """Every parameter the official `create_model` trains (names containing 'adapter'), random, non-zero."""
    g = torch.Generator().manual_seed(seed)
    rand = lambda *shape, std=0.5: torch.randn(*shape, generator=g) * std  # noqa: E731
    n = sum(args.down_sample_num)
    out = {"adapter_emb1": rand(1, n, dim, std=0.3), "adapter_emb2": rand(1, n, dim, std=0.3)}
    for name in ("adapter_proj",) + (() if args.no_cls else ("adapter_proj_cls",)):
        out.update({f"{name}.fc1.weight": rand(args.hidden_proj, width, std=0.2), f"{name}.fc1.bias": rand(args.hidden_proj),
                    f"{name}.fc2.weight": rand(dim, args.hidden_proj, std=0.2), f"{name}.fc2.bias": rand(dim)})
    for i in range(layers):
        out[f"backbone.visual.transformer.resblocks.{i}.adapter_mlp.fc1.weight"] = rand(args.adapter_dim, width)
        out[f"backbone.visual.transformer.resblocks.{i}.adapter_mlp.fc2.weight"] = rand(width, args.adapter_dim)
    return out


def write_official_checkpoint(path: Path, adapters: dict, args: argparse.Namespace, ddp: bool = True,
                              model_only: bool = False) -> Path:
    """`util/misc.py save_model`'s file: model (DDP names), optimizer, epoch, scaler, args.
    `model_only`: `{'model': ...}` alone, all the official evaluation scripts read."""
    if model_only:
        torch.save({"model": {("module." if ddp else "") + k: v for k, v in adapters.items()}}, path)
        return path
    params = [torch.nn.Parameter(t.clone()) for t in adapters.values()]
    optimizer = torch.optim.AdamW(params, lr=args.lr, betas=(0.9, 0.95), weight_decay=args.weight_decay)
    sum(p.sum() for p in params).backward()
    optimizer.step()
    torch.save({"model": {("module." if ddp else "") + k: v for k, v in adapters.items()},
                "optimizer": optimizer.state_dict(), "epoch": 19,
                "scaler": {"scale": 65536.0, "growth_factor": 2.0, "backoff_factor": 0.5, "growth_interval": 2000,
                           "_growth_tracker": 17},
                "args": args}, path)
    return path


def hf_backbones(root: Path, tokenizer_model: Path, seed: int = 0):
    """(llm_dir, vision_dir, llm, vision): the HF LLaMA (+ its tokenizer converted from tokenizer.model
    by transformers) and the HF CLIP tower, saved as from_pretrained directories."""
    from transformers import LlamaTokenizer

    sp_dir = root / "spm"
    sp_dir.mkdir(parents=True, exist_ok=True)
    (sp_dir / "tokenizer.model").write_bytes(Path(tokenizer_model).read_bytes())
    tokenizer = LlamaTokenizer.from_pretrained(str(sp_dir))
    llm = tiny_hf_llama(len(tokenizer), seed)
    vision = tiny_clip(seed + 1)
    llm.save_pretrained(root / "llm")
    tokenizer.save_pretrained(root / "llm")
    vision.save_pretrained(root / "vision")
    return root / "llm", root / "vision", llm, vision
