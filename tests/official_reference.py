"""The official ADEM-VL forward, written for the tests in plain torch from the official code
(`adem/model.py`, `adem/adapter.py`, `clip/model.py`, `util/datasets.py`): nothing here
imports the library, so the library's converted checkpoints are checked against it.

Weights come in the official layouts: LLaMA in Meta's (`layers.{i}.attention.wq.weight`, …,
complex-number rotary on interleaved pairs), CLIP in OpenAI's (`transformer.resblocks.{i}.attn.
in_proj_weight`, …), the adapters by their official names.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

IMAGENET_DEFAULT_MEAN = (0.485, 0.456, 0.406)  # timm.data.constants
IMAGENET_DEFAULT_STD = (0.229, 0.224, 0.225)


# --- util/datasets.py: Resize((224, 224), BICUBIC) → ToTensor → Normalize ----------------------
def official_transform(image: Image.Image, size: int = 224, mean=IMAGENET_DEFAULT_MEAN, std=IMAGENET_DEFAULT_STD):
    image = image.convert("RGB").resize((size, size), Image.BICUBIC)  # torchvision resizes PIL images with PIL
    tensor = torch.from_numpy(np.array(image, dtype=np.uint8)).permute(2, 0, 1).float().div(255)  # ToTensor
    return tensor.sub(torch.tensor(mean)[:, None, None]).div(torch.tensor(std)[:, None, None])  # Normalize


# --- clip/model.py VisionTransformer.forward with adem/adapter.py forward_clip -------------------
def _layer_norm(x, sd, name):
    return F.layer_norm(x, x.shape[-1:], sd[f"{name}.weight"], sd[f"{name}.bias"], 1e-5)


def _mha(x, sd, prefix, heads):
    """nn.MultiheadAttention(x, x, x) on batch-first x (the official permutes to LND; same numbers)."""
    batch, length, width = x.shape
    q, k, v = F.linear(x, sd[f"{prefix}.in_proj_weight"], sd[f"{prefix}.in_proj_bias"]).chunk(3, dim=-1)
    split = lambda t: t.reshape(batch, length, heads, width // heads).transpose(1, 2)  # noqa: E731
    q, k, v = split(q), split(k), split(v)
    attn = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(width // heads), dim=-1)
    out = (attn @ v).transpose(1, 2).reshape(batch, length, width)
    return F.linear(out, sd[f"{prefix}.out_proj.weight"], sd[f"{prefix}.out_proj.bias"])


def _vision_adapter(x, adapters, index):
    fc1 = adapters[f"backbone.visual.transformer.resblocks.{index}.adapter_mlp.fc1.weight"]
    fc2 = adapters[f"backbone.visual.transformer.resblocks.{index}.adapter_mlp.fc2.weight"]
    return F.linear(F.gelu(F.linear(x, fc1)), fc2)  # dropout is off in eval


def official_visual(sd, adapters, images, layers: int, heads: int):
    """`backbone.encode_image`: all blocks but the last, then ln_post on every token (no proj)."""
    patch = sd["conv1.weight"]
    x = F.conv2d(images, patch, stride=patch.shape[-1])
    x = x.reshape(x.shape[0], x.shape[1], -1).permute(0, 2, 1)
    cls = sd["class_embedding"] + torch.zeros(x.shape[0], 1, x.shape[-1])
    x = torch.cat([cls, x], dim=1) + sd["positional_embedding"]
    x = _layer_norm(x, sd, "ln_pre")
    for i in range(layers - 1):
        p = f"transformer.resblocks.{i}"
        x = x + _mha(_layer_norm(x, sd, f"{p}.ln_1"), sd, f"{p}.attn", heads)
        y = _layer_norm(x, sd, f"{p}.ln_2")
        hidden = F.linear(y, sd[f"{p}.mlp.c_fc.weight"], sd[f"{p}.mlp.c_fc.bias"])
        hidden = hidden * torch.sigmoid(1.702 * hidden)  # QuickGELU
        mlp = F.linear(hidden, sd[f"{p}.mlp.c_proj.weight"], sd[f"{p}.mlp.c_proj.bias"])
        x = x + mlp + _vision_adapter(y, adapters, i) * 0.1
    return _layer_norm(x, sd, "ln_post")


# --- adem/model.py ------------------------------------------------------------------------------
def avg2d_sampler(x, down_sample_num):
    batch, n, c = x.shape
    side = int(n ** 0.5)
    x = x.reshape(batch, side, side, c).permute(0, 3, 1, 2)
    out = []
    for d in down_sample_num:
        gs = int(d ** 0.5)
        x_ = F.adaptive_avg_pool2d(x, gs) if gs != 16 else x  # (the official hard-codes ViT-L/14's grid)
        out.append(x_.reshape(batch, c, -1).permute(0, 2, 1))
    return torch.cat(out, dim=1)


def projector(x, adapters, name):
    h = F.silu(F.linear(x, adapters[f"{name}.fc1.weight"], adapters[f"{name}.fc1.bias"]))
    return F.linear(h, adapters[f"{name}.fc2.weight"], adapters[f"{name}.fc2.bias"])


def rms_norm(x, weight, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * weight


def precompute_freqs_cis(dim, end, theta=10000.0):
    freqs = 1.0 / (theta ** (torch.arange(0, dim, 2)[: dim // 2].float() / dim))
    freqs = torch.outer(torch.arange(end).float(), freqs)
    return torch.polar(torch.ones_like(freqs), freqs)


def apply_rotary(x, freqs_cis):
    xc = torch.view_as_complex(x.float().reshape(*x.shape[:-1], -1, 2))
    return torch.view_as_real(xc * freqs_cis[None, :, None, :]).flatten(3)


def fusion_adapter(x, vis, drop_ratio):
    """adem/adapter.py Adapter.forward with vis_weight (the LLaMA side)."""
    image_embeds, emb1, emb2 = vis
    x = F.silu(x) @ F.silu(image_embeds + emb1).permute(0, 2, 1)
    if drop_ratio > 0:
        score, _ = x.sort(dim=2)
        threshold = score[:, :, int(drop_ratio * score.size(2))].unsqueeze(2)
        mask = torch.ones_like(x)
        mask[torch.where(x < threshold.expand_as(x))] = 0
        x = x * mask
    return x @ (image_embeds + emb2)


def llama_forward(meta, params, h, mask, vis, alpha, drop_ratio):
    """Transformer blocks (forward_llama) + norm + output on input embeddings h (B, T, d)."""
    dim, heads, eps = params["dim"], params["n_heads"], params["norm_eps"]
    head_dim = dim // heads
    batch, length, _ = h.shape
    freqs = precompute_freqs_cis(head_dim, length * 2)[:length]
    for i in range(params["n_layers"]):
        p = f"layers.{i}"
        xn = rms_norm(h, meta[f"{p}.attention_norm.weight"], eps)
        q, k, v = (F.linear(xn, meta[f"{p}.attention.{w}.weight"]).view(batch, length, heads, head_dim)
                   for w in ("wq", "wk", "wv"))
        q, k = apply_rotary(q, freqs), apply_rotary(k, freqs)
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
        scores = torch.softmax(q @ k.transpose(2, 3) / math.sqrt(head_dim) + mask, dim=-1)
        h = h + F.linear((scores @ v).transpose(1, 2).reshape(batch, length, dim), meta[f"{p}.attention.wo.weight"])
        hn = rms_norm(h, meta[f"{p}.ffn_norm.weight"], eps)
        ff = F.linear(F.silu(F.linear(hn, meta[f"{p}.feed_forward.w1.weight"]))
                      * F.linear(hn, meta[f"{p}.feed_forward.w3.weight"]), meta[f"{p}.feed_forward.w2.weight"])
        h = h + ff + fusion_adapter(hn, vis, drop_ratio) * alpha
    return F.linear(rms_norm(h, meta["norm.weight"], eps), meta["output.weight"])


def official_generate_logits(meta, params, clip_sd, adapters, args, sp, prompts, images, indicators,
                             clip_layers, clip_heads):
    """Logits of `Transformer.generate`'s first step over the whole left-padded prompt batch.

    Returns (logits (B, T, V), real (B, T) bool: the columns holding prompt tokens, tokens (B, T)
    with 0 at the [cls] slot, as the official fills it)."""
    with_cls = not args.no_cls
    feats = official_visual(clip_sd, adapters, images, clip_layers, clip_heads)
    image_embeds = projector(avg2d_sampler(feats[:, 1:, :], args.down_sample_num), adapters, "adapter_proj")
    image_embeds = image_embeds * args.beta * torch.tensor(indicators).float().view(-1, 1, 1)
    vis = [image_embeds, adapters["adapter_emb1"], adapters["adapter_emb2"]]
    bos = sp.bos_id()
    prefix_img = [bos] + sp.encode("Image: ")
    prefix_nonimg = [bos] + sp.encode("Image: N/A")
    rows = []
    for x, indicator in zip(prompts, indicators):
        if with_cls:
            rows.append(prefix_img + [0] + sp.encode(x) if indicator == 1 else prefix_nonimg + sp.encode(x))
        else:
            rows.append([bos] + sp.encode(x))
    width = max(len(r) for r in rows)
    tokens = torch.zeros(len(rows), width, dtype=torch.long)
    mask = torch.triu(torch.full((len(rows), 1, width, width), float("-inf")), diagonal=1)
    real = torch.zeros(len(rows), width, dtype=torch.bool)
    for k, row in enumerate(rows):
        tokens[k, width - len(row):] = torch.tensor(row)
        mask[k, :, width - len(row):, :width - len(row)] = float("-inf")
        real[k, width - len(row):] = True
    h = F.embedding(tokens, meta["tok_embeddings.weight"])
    if with_cls:
        cls = projector(feats[:, [0], :], adapters, "adapter_proj_cls")
        for k, row in enumerate(rows):
            if indicators[k] == 1:
                pos = width - len(row) + len(prefix_img)
                h[k, pos:pos + 1] = cls[k]
    return llama_forward(meta, params, h, mask, vis, args.alpha, args.drop_ratio), real, tokens
