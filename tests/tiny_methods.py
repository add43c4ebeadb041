"""Tiny baselines (bottleneck, lavin, memvp, llava-lora) for the tests/test_methods_*.py files."""
import torch

from ademvl.model import VLModel
from tiny import batch, tiny_llm, tiny_vision

PAD = 0
# Tiny towers have 3 blocks and a 4×4 grid: every block's [cls], 20 memory slots.
TINY = {
    "bottleneck": dict(neck_every=1),
    "lavin": dict(neck_every=1),
    "memvp": dict(num_slots=20),
    "llava-lora": dict(),
}
METHODS = sorted(TINY)
ALL_METHODS = ["ademvl", *METHODS]  # ADEM-VL with the tiny grid's scales (16, 4)
PREFIXED = ("bottleneck", "lavin")  # a modality placeholder before the text (column 0)


def build(method, arch="llama", seed=0, **settings):
    llm = tiny_llm(arch, seed)
    tiny = TINY.get(method, {"scales": (16, 4)})
    model = VLModel.from_backbones(llm, tiny_vision("clip", seed + 1), method=method, **{**tiny, **settings})
    return model.eval()


def liven(model, seed=2):
    """Make zero-initialised weights non-zero so that every path is at work."""
    torch.manual_seed(seed)
    with torch.no_grad():
        for p in model.trainable_parameters().values():
            if not p.abs().any():
                p.normal_(0, 0.3)
    return model


def inputs(method, image_rows=(1, 0), length=12):
    n = {"llava-lora": 16, "ademvl": 1}.get(method, 3)  # 4×4 patches, ADEM-VL's [cls], or 3 [cls]
    ids, pixels, has_image, slot = batch(batch_size=2, length=length + n, image_rows=image_rows, slot=2)
    if method in PREFIXED:
        ids = torch.cat([torch.full_like(ids[:, :1], 1), ids], dim=1)  # not PAD: generate would mask it
        slot = torch.where(slot >= 0, slot + 1, slot)
    return dict(input_ids=ids, pixel_values=pixels, has_image=has_image, image_slot=slot)


def text_columns(method, tensor):
    """The columns after the modality placeholder (all of them for methods without one)."""
    return tensor[:, 1:] if method in PREFIXED else tensor




def trace_llm_side(model, input_ids, pixel_values, has_image, image_slot):
    """Dynamo's account of the forward once the images are encoded (the part compile sees every step),
    with the eager logits and the logits compiled with the eager backend: ``(explained, eager, compiled)``."""
    with torch.no_grad():
        visual = model.encode_images(pixel_values, has_image, 2)
        kwargs = dict(input_ids=input_ids, attention_mask=torch.ones_like(input_ids), image_slot=image_slot,
                      **visual.as_model_kwargs())
        torch._dynamo.reset()
        explained = torch._dynamo.explain(model)(**kwargs)
        eager = model(**kwargs).logits
        compiled = torch.compile(model, backend="eager")(**kwargs).logits
    return explained, eager, compiled
