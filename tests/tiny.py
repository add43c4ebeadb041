"""Tiny random backbones of every supported architecture, built by the tests themselves."""
from __future__ import annotations

import torch
from transformers import (
    CLIPVisionConfig, CLIPVisionModel, GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM,
    MistralConfig, MistralForCausalLM, Qwen2Config, Qwen2ForCausalLM, SiglipVisionConfig, SiglipVisionModel,
)

from ademvl.model import VLModel

VOCAB = 120
HIDDEN = 48


def tiny_llm(arch: str = "llama", seed: int = 0, vocab: int = VOCAB):
    torch.manual_seed(seed)
    common = dict(vocab_size=vocab, hidden_size=HIDDEN, intermediate_size=96, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128)
    if arch == "llama":
        model = LlamaForCausalLM(LlamaConfig(**common))
    elif arch == "qwen2":
        model = Qwen2ForCausalLM(Qwen2Config(**common))
    elif arch == "mistral":
        model = MistralForCausalLM(MistralConfig(**common))
    elif arch == "gpt2":
        model = GPT2LMHeadModel(GPT2Config(vocab_size=vocab, n_embd=HIDDEN, n_layer=2, n_head=4, n_positions=128,
                                           resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0))
    else:
        raise ValueError(arch)
    return model.eval()


LLM_ARCHS = ["llama", "qwen2", "mistral", "gpt2"]


def tiny_vision(kind: str = "clip", seed: int = 1, layers: int = 3):
    torch.manual_seed(seed)
    common = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=layers, num_attention_heads=4,
                  image_size=32, patch_size=8)  # 4×4 grid
    if kind == "clip":
        return CLIPVisionModel(CLIPVisionConfig(**common)).eval()
    if kind == "siglip":
        return SiglipVisionModel(SiglipVisionConfig(**common)).eval()
    raise ValueError(kind)


def tiny_model(arch: str = "llama", vision: str = "clip", seed: int = 0, **settings) -> VLModel:
    settings.setdefault("scales", (16, 4))
    model = VLModel.from_backbones(tiny_llm(arch, seed), tiny_vision(vision, seed + 1), **settings)
    torch.manual_seed(seed + 2)
    # Make the zero-initialised parts non-zero so that the tests see the fusion at work.
    with torch.no_grad():
        for name, p in model.trainable_parameters().items():
            if name.endswith("pos_values") or "adapter.fc2" in name:
                p.normal_(0, 0.5)
    return model.eval()


def batch(batch_size: int = 2, length: int = 9, seed: int = 0, image_rows=(1, 0), slot: int = 2):
    """input_ids, pixel_values, has_image, image_slot for a mixed image/text-only batch."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, VOCAB, (batch_size, length), generator=g)
    pixels = torch.randn(batch_size, 3, 32, 32, generator=g)
    has_image = torch.tensor(list(image_rows)[:batch_size])
    image_slot = torch.where(has_image.bool(), torch.tensor(slot), torch.tensor(-1))
    return ids, pixels, has_image, image_slot


CORPUS = [
    "Image: N/A", "Image: ", "Question: what colour is the shape?", "Answer: red", "The answer is A.",
    "Context: N/A Question: Which is a mammal? Options: (A) cat (B) fish Response:",
    "Write a short caption for the image. a red circle on a white background",
]


def tiny_tokenizer():
    """A byte-level BPE tokenizer (vocab ≤ 300) trained in memory, wrapped as a HF fast tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["<pad>", "<s>", "</s>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(CORPUS * 5, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>")


def tiny_image_processor(size: int = 32):
    from transformers import CLIPImageProcessorPil

    return CLIPImageProcessorPil(size={"shortest_edge": size}, crop_size={"height": size, "width": size})


def write_image(path, color=(255, 0, 0), size=40):
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (size, size), color).save(path)
    return str(path)
