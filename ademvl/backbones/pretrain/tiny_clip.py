"""Pretraining of the easy-VQA demo's tiny CLIP vision tower, on TRAIN images only.

``ademvl.backbones.tiny_clip_path`` calls :func:`build_tower` once, when its cache is missing or
stale; this module is the whole pipeline behind it: labels, augmentation, the contrastive training
loop, the export of the vision half, and the linear probes that check the result.

Data: the ``easy-vqa`` package (``pip install --no-deps easy-vqa``) ships 64x64
RGB images, each showing one shape (circle/rectangle/triangle) in one of eight
colours. We only ever read ``data/train`` here; test images are never touched.

Labels. easy-vqa has no label file, so each train image's (shape, colour) is
recovered from its *train* questions by constraint propagation
(:func:`derive_labels`):

* an answer that is a shape word ("what shape is in the image?" -> "circle")
  fixes the shape; a colour-word answer fixes the colour;
* a "what colour is the <shape>?" question names the true shape and a
  "what is the <colour> shape?" question names the true colour;
* a yes/no question mentioning exactly one shape or colour word is true iff
  (answer == "yes") XOR (the question is negated: " not " / "is no ...");
  true -> that value is the image's attribute, false -> that value is ruled out.

Shape: an image is used only if its questions leave exactly one shape (and
never contradict). Colour: from the questions when they fix it; otherwise the
dominant exact palette colour among the pixels (easy-vqa draws shapes in exact
named RGB values), accepted only if the questions still allow it. On the 4,000
train images the questions fix both for 3,578 images and the pixel rule agrees
with all of those 3,578 colours; it fills the colour of 259 more; 163 images
with an ambiguous shape are skipped -> 3,837 labelled train images.

Pretext. A ``CLIPModel`` (vision: 64 px, patch 8 -> 8x8 grid + [cls]; tiny
word-level text tower) is trained contrastively against the caption
"a <colour> <shape>". Because only 24 distinct captions exist, in-batch CLIP
negatives would mostly be false negatives (two "a red circle" images in one
batch), so the image->text InfoNCE uses the full set of 24 caption embeddings
(computed by the text tower at every step) as candidates, and the text->image
direction is, for each caption present in the batch, an InfoNCE over the batch
images with all images of that caption as positives. A small
auxiliary linear head applied to *every patch token* (shape + colour
cross-entropy against the image's labels, ``aux_target="image"``) keeps the patch features, which ADEM-VL
consumes, linearly informative too, and speeds up learning a lot (dense
supervision of the patch embedding).
A fixed hold-out of train images (``recipe.holdout``) is never used for
pretraining; :func:`probe_tower` fits/evaluates linear probes on it.

Output: :func:`build_tower` saves only the vision half, as a ``CLIPVisionModel`` together with a
``CLIPImageProcessor`` (PIL backend, size 64, crop 64), into the directory it is given
(``tiny_clip_path`` passes a temporary one beside its cache and renames it into place).
"""
from __future__ import annotations

import functools
import json
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from ...data.easyvqa import COLOR_NAMES as COLORS  # class index = position
from ...data.easyvqa import SHAPE_NAMES as SHAPES
from ...data.easyvqa import derive_candidates
from ...package_data import package_dirs
from .._cache import BackboneNotAvailableError

INSTALL_HINT = "pip install --no-deps easy-vqa"
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


@dataclass(frozen=True)
class TinyClipRecipe:
    """Everything that determines the built tower (stored next to it as JSON)."""
    image_size: int = 64
    patch_size: int = 8
    hidden_size: int = 128
    num_layers: int = 4
    num_heads: int = 4
    intermediate_size: int = 256
    text_hidden_size: int = 64
    text_layers: int = 2
    projection_dim: int = 64
    epochs: float = 30.0         # passes over the pretraining images (10 left shapes at a 0.79 linear probe, 30 gives 0.93)
    max_steps: int | None = None  # overrides epochs when set
    batch_size: int = 32
    lr: float = 4e-3
    weight_decay: float = 0.05
    warmup_frac: float = 0.1
    aux_patch_weight: float = 0.5
    # per-image augmentation ops, comma separated, from: "translate" (keep the
    # shape's bounding box in frame, fill with the image's background colour),
    # "scale" (resize by 1 +- scale_range), "hflip", "vflip", "transpose"
    # ("hflip,vflip,transpose" = all 8 dihedral symmetries). "" = none.
    augment: str = ""
    scale_range: float = 0.2
    contrastive_weight: float = 1.0
    sup_weight: float = 0.0      # CE heads (shape, colour) on [cls] + patch mean, see _sup_loss
    sup_layers: str = "last"     # "last", "penultimate" or "both" (post_layernorm applied)
    label_smoothing: float = 0.0
    aux_target: str = "image"    # per-patch targets: "image" labels, "local" pixels, "mean" patch
    n_images: int | None = None  # use the first n train images (None: all)
    holdout: int = 1000          # train images never used for pretraining

    # torch threads for the build: $ADEMVL_BUILD_THREADS or 2. Not part of the
    # recipe stamp (it only changes float summation order, not the recipe).


# ----------------------------------------------------------------------------
# data
# ----------------------------------------------------------------------------

def _candidate_dirs() -> list[Path]:
    return package_dirs("easy_vqa")


def easy_vqa_data_dir() -> Path:
    """``<site-packages>/easy_vqa/data`` without importing easy_vqa."""
    for d in _candidate_dirs():
        if (d / "data" / "train" / "questions.json").is_file():
            return d / "data"
    raise BackboneNotAvailableError(
        f"easy-vqa data not found: the 'easy-vqa' package is not installed; run: {INSTALL_HINT}")


PALETTE = {  # exact RGB the easy-vqa generator draws each colour with
    "red": (255, 0, 0), "green": (0, 255, 0), "blue": (0, 0, 255), "black": (0, 0, 0),
    "gray": (128, 128, 128), "teal": (0, 128, 128), "yellow": (255, 255, 0),
    "brown": (165, 42, 42)}


def derive_labels(questions) -> dict[int, tuple[int, int]]:
    """``{image_id: (shape_idx, colour_idx)}`` for the images whose questions
    alone pin down exactly one shape and one colour."""
    out = {}
    for img, sc in derive_candidates(questions).items():
        if sc is not None and len(sc[0]) == 1 and len(sc[1]) == 1:
            out[img] = (SHAPES.index(next(iter(sc[0]))), COLORS.index(next(iter(sc[1]))))
    return out


@functools.lru_cache(maxsize=2)
def _train_candidates(questions_file: str):
    with open(questions_file, encoding="utf-8") as f:
        return derive_candidates(json.load(f))


def pixel_colour(img_u8) -> int:
    """Colour index whose exact palette RGB covers most pixels of an image."""
    import numpy as np

    flat = np.asarray(img_u8, dtype=np.int32).reshape(-1, 3)
    key = (flat[:, 0] << 16) | (flat[:, 1] << 8) | flat[:, 2]
    pal = np.array([(r << 16) | (g << 8) | b for r, g, b in (PALETTE[c] for c in COLORS)])
    return int(np.argmax((key[:, None] == pal[None, :]).sum(0)))


def load_train_set(n_images: int | None = None, return_stats: bool = False):
    """``(ids, images uint8 [N,64,64,3], shape_idx [N], colour_idx [N])`` for the
    labelled easy-vqa TRAIN images, sorted by id (first ``n_images`` labelled ids).

    Shape comes from the questions only (images with an ambiguous shape are
    skipped). Colour comes from the questions; where they leave it ambiguous,
    the dominant exact palette colour of the pixels is used if it is one of the
    remaining candidates (the pixel rule is checked against every image whose
    colour the questions fix; ``return_stats`` reports the agreement).
    """
    import numpy as np
    import torch
    from PIL import Image

    root = easy_vqa_data_dir() / "train"
    cands = _train_candidates(str(root / "questions.json"))
    ids = sorted(i for i, sc in cands.items() if sc is not None and len(sc[0]) == 1)
    shape_of = {i: SHAPES.index(next(iter(cands[i][0]))) for i in ids}
    keep, colours, imgs = [], [], []
    stats = {"questions_fix_colour": 0, "pixel_agrees": 0, "colour_from_pixels": 0,
             "dropped": len(cands) - len(ids)}
    for i in ids:
        if n_images is not None and len(keep) >= n_images:
            break
        with Image.open(root / "images" / f"{i}.png") as im:
            im = im.convert("RGB")
            if im.size != (64, 64):
                im = im.resize((64, 64), Image.BICUBIC)
            a = np.asarray(im, dtype=np.uint8)
        px = pixel_colour(a)
        cset = cands[i][1]
        if len(cset) == 1:
            c = COLORS.index(next(iter(cset)))
            stats["questions_fix_colour"] += 1
            stats["pixel_agrees"] += int(px == c)
        elif COLORS[px] in cset:
            c = px
            stats["colour_from_pixels"] += 1
        else:
            stats["dropped"] += 1
            continue
        keep.append(i)
        colours.append(c)
        imgs.append(a)
    out = (torch.tensor(keep), torch.from_numpy(np.stack(imgs)),
           torch.tensor([shape_of[i] for i in keep]), torch.tensor(colours))
    return (*out, stats) if return_stats else out


def to_pixel_values(images_u8):
    """uint8 ``[N,H,W,3]`` -> normalised float ``[N,3,H,W]`` exactly as the saved
    ``CLIPImageProcessor`` does for 64x64 inputs (rescale + CLIP mean/std)."""
    import torch

    x = images_u8.permute(0, 3, 1, 2).float() / 255.0
    mean = torch.tensor(CLIP_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD).view(1, 3, 1, 1)
    return (x - mean) / std


def foreground_boxes(images_u8, tol: int = 10):
    """``[N,4]`` (y0, y1, x0, x1), end-exclusive, of the pixels that differ from
    the image's background (its top-left pixel: easy-vqa backgrounds are one
    flat, lightly tinted colour) by more than ``tol`` in some channel."""
    import torch

    fg = (images_u8.int() - images_u8[:, :1, :1].int()).abs().amax(-1) > tol  # [N,H,W]
    n, h, w = fg.shape
    rows, cols = fg.any(2), fg.any(1)
    ar_h, ar_w = torch.arange(h), torch.arange(w)
    y0 = torch.where(rows, ar_h, h).amin(1)
    y1 = torch.where(rows, ar_h + 1, 0).amax(1)
    x0 = torch.where(cols, ar_w, w).amin(1)
    x1 = torch.where(cols, ar_w + 1, 0).amax(1)
    empty = ~rows.any(1)
    box = torch.stack([y0, y1, x0, x1], 1)
    box[empty] = torch.tensor([0, h, 0, w])
    return box


AUGMENT_OPS = ("translate", "scale", "hflip", "vflip", "transpose")


def parse_augment(spec: str) -> tuple[str, ...]:
    ops = tuple(o.strip() for o in spec.split(",") if o.strip())
    bad = [o for o in ops if o not in AUGMENT_OPS]
    if bad:
        raise ValueError(f"unknown augment op(s) {bad}; choose from {AUGMENT_OPS}")
    return ops


def augment_batch(x, boxes, ops, g, scale_range: float = 0.2):
    """Label-preserving random transform of each image of ``x`` ``[B,3,H,W]``
    (normalised pixels) given its foreground ``boxes``. The shape stays fully in
    frame and uncovered pixels take the image's own background value, so the
    result looks like another easy-vqa image of the same shape and colour."""
    import torch
    import torch.nn.functional as F

    if not ops:
        return x
    b, _, h, w = x.shape
    out = torch.empty_like(x)
    rnd = torch.rand(b, 6, generator=g)
    for i in range(b):
        img = x[i]
        bg = img[:, :1, :1]
        y0, y1, x0, x1 = (int(v) for v in boxes[i])
        if "scale" in ops:
            s = 1.0 + (2 * float(rnd[i, 0]) - 1) * scale_range
            hs = ws = max(8, round(h * s))
            img = F.interpolate(img[None], size=(hs, ws), mode="bilinear",
                                align_corners=False, antialias=s < 1)[0]
            y0, x0 = math.floor(y0 * hs / h), math.floor(x0 * ws / w)
            y1, x1 = min(hs, math.ceil(y1 * hs / h)), min(ws, math.ceil(x1 * ws / w))
        hs, ws = img.shape[1:]
        if "transpose" in ops and rnd[i, 1] < 0.5:
            img = img.transpose(1, 2)
            y0, y1, x0, x1, hs, ws = x0, x1, y0, y1, ws, hs
        if "hflip" in ops and rnd[i, 2] < 0.5:
            img = img.flip(2)
            x0, x1 = ws - x1, ws - x0
        if "vflip" in ops and rnd[i, 3] < 0.5:
            img = img.flip(1)
            y0, y1 = hs - y1, hs - y0
        # offset of img's top-left corner in the output; keep the box in frame
        lo_y, hi_y = -y0, h - y1
        lo_x, hi_x = -x0, w - x1
        if "translate" in ops and hi_y >= lo_y and hi_x >= lo_x:
            oy = lo_y + int(float(rnd[i, 4]) * (hi_y - lo_y + 1))
            ox = lo_x + int(float(rnd[i, 5]) * (hi_x - lo_x + 1))
        else:  # centre the resized image, nudged to keep the box in frame
            oy = min(max((h - hs) // 2, lo_y), max(hi_y, lo_y))
            ox = min(max((w - ws) // 2, lo_x), max(hi_x, lo_x))
        canvas = bg.expand(-1, h, w).clone()
        sy0, sx0 = max(0, -oy), max(0, -ox)
        sy1, sx1 = min(hs, h - oy), min(ws, w - ox)
        if sy1 > sy0 and sx1 > sx0:
            canvas[:, oy + sy0:oy + sy1, ox + sx0:ox + sx1] = img[:, sy0:sy1, sx0:sx1]
        out[i] = canvas
    return out


def split_indices(n: int, holdout: int, seed: int):
    """Deterministic (pretrain_idx, holdout_idx) split of ``range(n)``."""
    import torch

    g = torch.Generator().manual_seed(10_000 + seed)
    perm = torch.randperm(n, generator=g)
    holdout = min(holdout, n // 2)
    return perm[holdout:].sort().values, perm[:holdout].sort().values


# ----------------------------------------------------------------------------
# model
# ----------------------------------------------------------------------------

# word-level caption vocabulary for the tiny text tower
_VOCAB = ["<pad>", "<bos>", "<eos>", "a", *COLORS, *SHAPES]
_PAD, _BOS, _EOS = 0, 1, 2


def caption_ids():
    """Token ids ``[24, 5]`` of "a <colour> <shape>" for shape-major class index
    ``shape * 8 + colour``."""
    import torch

    rows = []
    for s in SHAPES:
        for c in COLORS:
            rows.append([_BOS, _VOCAB.index("a"), _VOCAB.index(c), _VOCAB.index(s), _EOS])
    return torch.tensor(rows)


def make_clip_config(r: TinyClipRecipe):
    from transformers import CLIPConfig, CLIPTextConfig, CLIPVisionConfig

    vision = CLIPVisionConfig(
        hidden_size=r.hidden_size, intermediate_size=r.intermediate_size,
        num_hidden_layers=r.num_layers, num_attention_heads=r.num_heads,
        image_size=r.image_size, patch_size=r.patch_size, num_channels=3,
        projection_dim=r.projection_dim)
    text = CLIPTextConfig(
        vocab_size=len(_VOCAB), hidden_size=r.text_hidden_size,
        intermediate_size=4 * r.text_hidden_size, num_hidden_layers=r.text_layers,
        num_attention_heads=2, max_position_embeddings=8, projection_dim=r.projection_dim,
        pad_token_id=_PAD, bos_token_id=_BOS, eos_token_id=_EOS)
    return CLIPConfig(text_config=text.to_dict(), vision_config=vision.to_dict(),
                      projection_dim=r.projection_dim)


def make_image_processor(r: TinyClipRecipe):
    try:
        from transformers import CLIPImageProcessorPil as Proc
    except ImportError:  # older transformers: the slow class is PIL based
        from transformers import CLIPImageProcessor as Proc
    return Proc(size={"shortest_edge": r.image_size},
                crop_size={"height": r.image_size, "width": r.image_size},
                image_mean=list(CLIP_MEAN), image_std=list(CLIP_STD))


def _num_steps(r: TinyClipRecipe, n_train: int) -> int:
    if r.max_steps is not None:
        return int(r.max_steps)
    return max(1, math.ceil(r.epochs * n_train / r.batch_size))


def _sup_layer_names(r: TinyClipRecipe) -> tuple[str, ...]:
    names = {"last": ("last",), "penultimate": ("penultimate",),
             "both": ("last", "penultimate")}
    if r.sup_layers not in names:
        raise ValueError(f"sup_layers must be one of {sorted(names)}, not {r.sup_layers!r}")
    return names[r.sup_layers]


def _sup_loss(vision_model, heads, out, r: TinyClipRecipe, y_shape, y_color):
    """Shape + colour cross-entropy on the [cls] token and on the patch mean of
    the chosen block outputs, after ``post_layernorm`` -- the features ADEM-VL
    reads (penultimate block, post-LN) and the usual CLIP pooler (last)."""
    import torch.nn.functional as F

    total = 0.0
    for layer in _sup_layer_names(r):
        hs = out.hidden_states[-1 if layer == "last" else -2]
        hs = vision_model.post_layernorm(hs)
        for tok, feat in (("cls", hs[:, 0]), ("patch", hs[:, 1:].mean(1))):
            logit = heads[f"{layer}_{tok}"](feat)
            total = total + F.cross_entropy(logit[:, :len(SHAPES)], y_shape,
                                            label_smoothing=r.label_smoothing) \
                + F.cross_entropy(logit[:, len(SHAPES):], y_color,
                                  label_smoothing=r.label_smoothing)
    return total


def train_clip(r: TinyClipRecipe, seed: int = 0, progress: bool = True, data=None,
               callback=None, callback_every: int = 100):
    """Pretrain the tiny CLIP; returns ``(clip_model, info)``. ``data`` is the
    output of :func:`load_train_set` (loaded here when None)."""
    import torch
    import torch.nn.functional as F
    from transformers import CLIPModel

    ids, imgs, shape, color = data if data is not None else load_train_set(r.n_images)
    tr_idx, _ = split_indices(len(ids), r.holdout, seed)
    x_all = to_pixel_values(imgs[tr_idx])  # preload once: [N,3,64,64]
    y_shape, y_color = shape[tr_idx], color[tr_idx]
    y_cls = y_shape * len(COLORS) + y_color
    p = r.patch_size
    ops = parse_augment(r.augment)
    boxes = foreground_boxes(imgs[tr_idx])
    n = len(tr_idx)
    bs = min(r.batch_size, n)
    steps = _num_steps(r, n)

    torch.manual_seed(seed)
    model = CLIPModel(make_clip_config(r))
    aux = torch.nn.Linear(r.hidden_size, len(SHAPES) + 1 + len(COLORS))
    # supervised heads: one (shape+colour) linear head per (layer, [cls]/patch mean)
    heads = torch.nn.ModuleDict({f"{layer}_{tok}": torch.nn.Linear(r.hidden_size, len(SHAPES) + len(COLORS))
                                 for layer in _sup_layer_names(r) for tok in ("cls", "patch")})
    model.train()
    params = list(model.parameters()) + list(aux.parameters()) + list(heads.parameters())
    decay = [p for p in params if p.ndim >= 2]
    no_decay = [p for p in params if p.ndim < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": r.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=r.lr)
    warm = max(1, int(r.warmup_frac * steps))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: (s + 1) / warm if s < warm
        else 0.5 * (1 + math.cos(math.pi * (s - warm) / max(1, steps - warm))))
    caps = caption_ids()
    g = torch.Generator().manual_seed(seed)
    order = torch.randperm(n, generator=g)
    pos = 0
    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=steps, desc="easy-vqa tiny CLIP", unit="step", file=sys.stderr)
    t0 = time.perf_counter()
    last = {}
    for step in range(steps):
        if pos + bs > n:
            order = torch.randperm(n, generator=g)
            pos = 0
        b = order[pos:pos + bs]
        pos += bs
        xb = augment_batch(x_all[b], boxes[b], ops, g, r.scale_range)
        out = model.vision_model(pixel_values=xb, output_hidden_states=r.sup_weight > 0)
        img_emb = F.normalize(model.visual_projection(out.pooler_output), dim=-1)
        txt = model.text_model(input_ids=caps)
        txt_emb = F.normalize(model.text_projection(txt.pooler_output), dim=-1)
        scale = model.logit_scale.exp().clamp(max=100.0)
        logits = scale * img_emb @ txt_emb.t()            # [B, 24]
        yc = y_cls[b]
        loss_i2t = F.cross_entropy(logits, yc)
        # text->image: each caption present in the batch vs all batch images;
        # images sharing that caption are all positives (multi-positive InfoNCE)
        present = yc.unique()
        lt = logits.t()[present]                            # [P, B]
        pos_mask = (present[:, None] == yc[None, :]).float()
        loss_t2i = -(torch.log_softmax(lt, dim=-1) * pos_mask).sum(-1).div(pos_mask.sum(-1)).mean()
        patch = out.last_hidden_state[:, 1:]
        if r.aux_target == "image":  # every patch token must know the image's labels
            a = aux(patch).flatten(0, 1)
            k = patch.shape[1]
            loss_aux = F.cross_entropy(a[:, :len(SHAPES)], y_shape[b].repeat_interleave(k)) + \
                F.cross_entropy(a[:, len(SHAPES) + 1:], y_color[b].repeat_interleave(k))
        elif r.aux_target == "local":  # what does each patch itself show?
            # targets from the (augmented) pixels the model sees: a patch is
            # foreground if any pixel differs clearly from the background
            fg = ((xb - xb[:, :, :1, :1]).abs().amax(1, keepdim=True) > 0.3).float()
            pf = F.max_pool2d(fg, p, p).flatten(1) > 0       # [B, P]
            ps = torch.where(pf, y_shape[b][:, None], len(SHAPES))
            a = aux(patch)                                   # [B, P, 3+1+8]
            loss_aux = F.cross_entropy(a[..., :len(SHAPES) + 1].flatten(0, 1), ps.flatten())
            if pf.any():
                col = a[..., len(SHAPES) + 1:][pf]
                loss_aux = loss_aux + F.cross_entropy(
                    col, y_color[b][:, None].expand_as(pf)[pf])
        else:
            a = aux(patch.mean(1))
            loss_aux = F.cross_entropy(a[:, :len(SHAPES)], y_shape[b]) + \
                F.cross_entropy(a[:, len(SHAPES) + 1:], y_color[b])
        loss = r.contrastive_weight * 0.5 * (loss_i2t + loss_t2i) + r.aux_patch_weight * loss_aux
        if r.sup_weight > 0:
            loss = loss + r.sup_weight * _sup_loss(model.vision_model, heads, out, r,
                                                   y_shape[b], y_color[b])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        with torch.no_grad():
            last = {"loss": float(loss), "i2t_acc": float((logits.argmax(-1) == yc).float().mean())}
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{last['loss']:.3f}", acc=f"{last['i2t_acc']:.2f}")
        if callback is not None and (step + 1) % callback_every == 0:
            model.eval()
            callback(step + 1, model)
            model.train()
    if bar is not None:
        bar.close()
    model.eval()
    info = {"steps": steps, "n_pretrain_images": n, "train_seconds": time.perf_counter() - t0, **last}
    return model, info


def extract_vision_model(clip):
    """The vision half of a ``CLIPModel`` as a standalone ``CLIPVisionModel``."""
    from transformers import CLIPVisionModel

    vm = CLIPVisionModel(clip.config.vision_config)
    # transformers 5 flattens CLIPVisionModel; 4.x wraps it in `.vision_model`
    getattr(vm, "vision_model", vm).load_state_dict(clip.vision_model.state_dict(), strict=True)
    return vm.eval()


def build_tower(out_dir: Path, r: TinyClipRecipe, seed: int, progress: bool) -> dict:
    """Pretrain a tower by recipe `r` and save its vision half + image processor into `out_dir`
    (checked to load back identical); returns the build info also written there."""
    import torch
    from transformers import CLIPVisionModel

    old_threads = torch.get_num_threads()
    torch.set_num_threads(int(os.environ.get("ADEMVL_BUILD_THREADS", "2")))
    try:
        data = load_train_set(r.n_images)
        clip, info = train_clip(r, seed=seed, progress=progress, data=data)
        info["torch_threads"] = torch.get_num_threads()
        vm = extract_vision_model(clip)
        vm.config._name_or_path = ""
        vm.save_pretrained(out_dir)
        make_image_processor(r).save_pretrained(out_dir)
        # the saved tower must reproduce the in-memory one exactly
        x = to_pixel_values(data[1][:8])
        with torch.no_grad():
            ref = vm(pixel_values=x).last_hidden_state
            got = CLIPVisionModel.from_pretrained(out_dir).eval()(pixel_values=x).last_hidden_state
        if not torch.equal(ref, got):
            raise RuntimeError("tiny CLIP round-trip mismatch after save_pretrained")
        with open(Path(out_dir) / "ademvl_build_info.json", "w", encoding="utf-8") as f:
            json.dump(info, f, indent=2)
        return info
    finally:
        torch.set_num_threads(old_threads)


# ----------------------------------------------------------------------------
# evaluation
# ----------------------------------------------------------------------------

def _fit_logreg(xtr, ytr, xte, n_cls, l2=1e-3, iters=200):
    import torch

    mu, sd = xtr.mean(0), xtr.std(0) + 1e-6
    xtr, xte = (xtr - mu) / sd, (xte - mu) / sd
    lin = torch.nn.Linear(xtr.shape[1], n_cls)
    opt = torch.optim.LBFGS(lin.parameters(), lr=1.0, max_iter=iters, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(lin(xtr), ytr) + l2 * lin.weight.pow(2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        return lin(xte).argmax(-1)


def probe_tower(path, seed: int = 0, recipe: TinyClipRecipe | None = None,
                fit_on: str = "holdout") -> dict:
    """Linear (logistic-regression) probes for shape and colour on frozen
    features. Evaluation is always on held-out TRAIN images (never used in
    pretraining). ``fit_on="holdout"``: fit on the first half of the hold-out,
    evaluate on the second half; ``fit_on="pretrain"``: fit on the pretraining
    images, evaluate on the whole hold-out. Returns accuracies per feature."""
    import torch
    from transformers import CLIPVisionModel

    recipe = recipe or TinyClipRecipe()
    ids, imgs, shape, color = load_train_set(recipe.n_images)
    tr, ho = split_indices(len(ids), recipe.holdout, seed)
    if fit_on == "holdout":
        fit, ev = ho[:len(ho) // 2], ho[len(ho) // 2:]
    elif fit_on == "pretrain":
        fit, ev = tr, ho
    else:
        raise ValueError(f"fit_on must be 'holdout' or 'pretrain', not {fit_on!r}")
    vm = CLIPVisionModel.from_pretrained(path).eval()
    root = getattr(vm, "vision_model", vm)

    def features(idx):
        outs = []
        with torch.no_grad():
            for chunk in idx.split(500):
                o = vm(pixel_values=to_pixel_values(imgs[chunk]), output_hidden_states=True)
                last, pen = o.last_hidden_state, o.hidden_states[-2]
                pen_ln = root.post_layernorm(pen)  # what ADEM-VL reads
                outs.append({"cls": last[:, 0], "pooler": o.pooler_output,
                             "patch_mean": last[:, 1:].mean(1),
                             "penultimate_cls": pen[:, 0],
                             "penultimate_patch_mean": pen[:, 1:].mean(1),
                             "penultimate_ln_cls": pen_ln[:, 0],
                             "penultimate_ln_patch_mean": pen_ln[:, 1:].mean(1)})
        return {k: torch.cat([o[k] for o in outs]) for k in outs[0]}

    ffit, fev = features(fit), features(ev)
    res = {"fit_on": fit_on, "n_fit": len(fit), "n_eval": len(ev)}
    for name in ffit:
        for lab, y, k in (("shape", shape, len(SHAPES)), ("color", color, len(COLORS))):
            pred = _fit_logreg(ffit[name], y[fit], fev[name], k)
            res[f"{name}/{lab}"] = float((pred == y[ev]).float().mean())
    return res
