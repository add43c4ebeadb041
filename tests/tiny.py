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
    elif arch in MORE_ARCHS:
        model = _more_llm(arch, common)
    else:
        raise ValueError(arch)
    return model.eval()


LLM_ARCHS = ["llama", "qwen2", "mistral", "gpt2"]

# Every block shape (`ademvl.architectures`): pre-norm, post-norm (Gemma 2/3, OLMo 2), mixture of
# experts, parallel (GPT-NeoX, Phi-1/2); "gpt_neox_sequential" is GPT-NeoX without parallel residual.
# Sliding windows of 8 tokens, so that the tests' sequences cross them.
MORE_ARCHS = ["qwen3", "phi3", "gemma2", "gemma3_text", "olmo2", "mixtral", "qwen2_moe", "qwen3_moe", "gpt_oss",
              "gpt_neox", "gpt_neox_sequential", "phi"]
ALL_LLM_ARCHS = LLM_ARCHS + MORE_ARCHS


def _more_llm(arch: str, common: dict):
    import transformers as t

    ids = dict(pad_token_id=0, bos_token_id=1, eos_token_id=2)
    moe = dict(num_experts_per_tok=2, output_router_logits=False)
    sliding = dict(sliding_window=8, layer_types=["sliding_attention", "full_attention"])
    parallel = dict(vocab_size=common["vocab_size"], hidden_size=HIDDEN, intermediate_size=96, num_hidden_layers=2,
                    num_attention_heads=4, max_position_embeddings=128, **ids)
    configs = {
        "qwen3": lambda: t.Qwen3ForCausalLM(t.Qwen3Config(**common, head_dim=12)),
        "phi3": lambda: t.Phi3ForCausalLM(t.Phi3Config(**common, **ids)),
        # Gemma 2's real checkpoints cap the final logits (tested in test_block_shapes); uncapped here.
        "gemma2": lambda: t.Gemma2ForCausalLM(t.Gemma2Config(**common, **ids, **sliding, head_dim=12,
                                                             final_logit_softcapping=None)),
        "gemma3_text": lambda: t.Gemma3ForCausalLM(t.Gemma3TextConfig(**common, **ids, **sliding, head_dim=12)),
        "olmo2": lambda: t.Olmo2ForCausalLM(t.Olmo2Config(**common, **ids)),
        "mixtral": lambda: t.MixtralForCausalLM(t.MixtralConfig(**common, **moe, num_local_experts=4)),
        "qwen2_moe": lambda: t.Qwen2MoeForCausalLM(t.Qwen2MoeConfig(
            **common, **moe, num_experts=4, moe_intermediate_size=32, shared_expert_intermediate_size=48)),
        "qwen3_moe": lambda: t.Qwen3MoeForCausalLM(t.Qwen3MoeConfig(
            **common, **moe, head_dim=12, num_experts=4, moe_intermediate_size=32)),
        "gpt_oss": lambda: t.GptOssForCausalLM(t.GptOssConfig(**common, **ids, **moe, **sliding, head_dim=12,
                                                              num_local_experts=4)),
        "gpt_neox": lambda: t.GPTNeoXForCausalLM(t.GPTNeoXConfig(**parallel, use_parallel_residual=True)),
        "gpt_neox_sequential": lambda: t.GPTNeoXForCausalLM(t.GPTNeoXConfig(**parallel, use_parallel_residual=False)),
        "phi": lambda: t.PhiForCausalLM(t.PhiConfig(**parallel, resid_pdrop=0.0, embd_pdrop=0.0)),
    }
    return configs[arch]()


def tiny_vision(kind: str = "clip", seed: int = 1, layers: int = 3):
    torch.manual_seed(seed)
    common = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=layers, num_attention_heads=4,
                  image_size=32, patch_size=8)  # 4×4 grid
    if kind == "clip":
        return CLIPVisionModel(CLIPVisionConfig(**common)).eval()
    if kind == "siglip":
        return SiglipVisionModel(SiglipVisionConfig(**common)).eval()
    if kind == "siglip2":  # NaFlex tower, run at its 4×4 position-embedding grid
        from transformers import Siglip2VisionConfig, Siglip2VisionModel

        config = {k: v for k, v in common.items() if k != "image_size"}
        return Siglip2VisionModel(Siglip2VisionConfig(**config, num_patches=16)).eval()
    if kind in ("dinov2", "dinov2_reg"):  # layer scale 0.5, so that it is not the identity
        from transformers import Dinov2Config, Dinov2Model, Dinov2WithRegistersConfig, Dinov2WithRegistersModel

        dino = {k: v for k, v in common.items() if k != "intermediate_size"}
        dino.update(mlp_ratio=2, layerscale_value=0.5)
        if kind == "dinov2":
            return Dinov2Model(Dinov2Config(**dino)).eval()
        return Dinov2WithRegistersModel(Dinov2WithRegistersConfig(**dino, num_register_tokens=2)).eval()
    raise ValueError(kind)


VISION_KINDS = ["clip", "siglip", "siglip2", "dinov2", "dinov2_reg"]


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
