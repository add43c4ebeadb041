"""`VLModel`: a frozen causal LM and a frozen vision tower joined by a fusion method.

It is a `PreTrainedModel` + `GenerationMixin` (as `LlavaForConditionalGeneration`
is) so that `generate()` drives the LLM's own KV cache. The visual inputs are
computed once per batch (once per `generate` call) and reach the decoder blocks
as an argument of each LLM call (`ademvl.methods.layer_call`): nothing about a
call is stored on the model, so gradient checkpointing, beams and threads work.
"""
from __future__ import annotations

import copy
import os

import torch
from torch import nn
import torch.nn.functional as F
from transformers import AutoModel, AutoModelForCausalLM, Cache, GenerationMixin, PreTrainedModel
from transformers.modeling_outputs import CausalLMOutputWithPast, MoeCausalLMOutputWithPast
from transformers.utils.deprecation import deprecate_kwarg

from .architectures import apply_head_transform, decoder_blocks
from .auto import register as register_auto_classes
from .config import ConfigError, VLConfig, settings_from_dict
from .sizes import check_sizes
from .input_stage import first_attended_columns, hide_prefix, masks_hiding_prefix, write_tokens
from .loading import load_llm, load_vision_tower, name_or_path_of
from .methods import VisualInputs, method_class
from .methods.layer_call import accept_visual_inputs
from .processing import VLProcessor
from .prompting import IGNORE_INDEX, PromptSpec
from .quantized import follow_training_mode, logical_numel
from .vision import VisionTower


class VLModel(PreTrainedModel, GenerationMixin):
    config_class = VLConfig
    base_model_prefix = "vlm"
    main_input_name = "input_ids"
    _supports_sdpa = True
    _supports_flash_attn = True
    _supports_attention_backend = True
    supports_gradient_checkpointing = True

    def __init__(self, config: VLConfig, llm: nn.Module | None = None, vision: nn.Module | None = None,
                 method_settings=None):
        """`method_settings`: `config.method_config` already built into its dataclass (`from_backbones`)."""
        if llm is None:
            llm = AutoModelForCausalLM.from_config(config.text_config)
        if vision is None:
            vision = AutoModel.from_config(config.vision_config)
        super().__init__(config)
        self.llm = llm
        self.vision = VisionTower(vision)
        method_cls = method_class(config.method)
        settings = method_settings if method_settings is not None else settings_from_dict(
            method_cls.settings_class, config.method_config, f"method '{config.method}'")
        vision_config = getattr(vision.config, "vision_config", None) or vision.config
        check_sizes(settings, llm.config, vision_config, f"method '{config.method}'")  # before anything is allocated
        self.method = method_cls(settings, self.llm, self.vision)
        accept_visual_inputs(decoder_blocks(self.llm))
        follow_training_mode(self.llm, False)  # the frozen LLM starts in eval mode (4-bit layers: `quantized`)
        if self.method.num_prefix_tokens and self.method.mask_prefix and "flash" in str(llm.config._attn_implementation):
            raise ValueError(f"method '{config.method}' hides its modality token with a mask function, which "
                             f"{llm.config._attn_implementation} cannot apply: load the LLM with sdpa or eager attention")
        if getattr(llm, "generation_config", None) is not None:
            self.generation_config = copy.deepcopy(llm.generation_config)
        self._set_trainable()
        self.post_init()

    # --- construction ------------------------------------------------------------------
    @classmethod
    def from_backbones(
        cls,
        llm: str | os.PathLike | nn.Module,
        vision: str | os.PathLike | nn.Module,
        method: str = "ademvl",
        method_config: dict | None = None,
        dtype=None,
        quantization: str | None = None,
        prompt: PromptSpec | None = None,
        **method_kwargs,
    ) -> "VLModel":
        """Load (or take) the two frozen backbones and attach `method` with its settings.

        `quantization="4bit"|"8bit"` loads the frozen LLM through bitsandbytes (NF4 / int8, on the GPU
        when there is one, else on the CPU); its trainable weights are fp32 as always.
        `prompt`: how the model is prompted (`ademvl.prompting.PromptSpec`: template, layout, official
        task), recorded in its config and saved with its adapter; default: the plain layout, no template.
        """
        llm_module = load_llm(llm, dtype, quantization=quantization)
        vision_module = load_vision_tower(vision, dtype)
        settings = {**(method_config or {}), **method_kwargs}
        method_cls = method_class(method)
        method_settings = settings_from_dict(method_cls.settings_class, settings, f"method '{method}'")  # fail early
        # A composite config resets its sub-configs' attention backend: keep the backbones' own.
        backends = {
            "text_config": llm_module.config._attn_implementation,
            "vision_config": vision_module.config._attn_implementation,
        }
        experts = getattr(llm_module.config, "_experts_implementation", None)  # MoE LLMs' expert kernels
        config = VLConfig(
            attn_implementation={"": backends["text_config"], **backends},
            **({"experts_implementation": {"text_config": experts}} if experts is not None else {}),
            text_config=llm_module.config,
            vision_config=vision_module.config,
            method=method,
            method_config=settings,
            llm_name_or_path=str(llm) if not isinstance(llm, nn.Module) else name_or_path_of(llm_module),
            vision_name_or_path=str(vision) if not isinstance(vision, nn.Module) else name_or_path_of(vision_module),
        )
        (prompt or PromptSpec()).record(config)
        return cls(config, llm=llm_module, vision=vision_module, method_settings=method_settings)

    def init_weights(self):
        """The backbones are loaded and the method's modules initialise themselves:
        nothing for transformers' generic initialiser to do (it would overwrite E2/fc2 zeros)."""

    def _set_trainable(self) -> None:
        self.requires_grad_(False)
        self.method.requires_grad_(True)
        for module in self.modules():
            if getattr(module, "_ademvl_trainable", False):
                module.requires_grad_(True)

    def train(self, mode: bool = True):
        """Frozen backbones stay in eval mode; only the method's modules follow `mode`."""
        super().train(mode)
        self.llm.eval()
        self.vision.eval()
        self.method.train(mode)
        for module in self.modules():
            if getattr(module, "_ademvl_trainable", False):
                module.train(mode)
        for block in decoder_blocks(self.llm):
            # Its own flag only: transformers checkpoints a block in training mode; its parts stay in eval.
            block.training = mode
        follow_training_mode(self.llm, mode)  # a 4-bit LLM's layers keep a layout gradients pass through
        return self

    def activation_checkpointing_enable(self, activation_checkpointing_kwargs=None, **kwargs):
        """Recompute each decoder block in the backward pass (transformers' checkpointing layers).

        Only non-reentrant checkpointing (transformers' default) carries gradients to the visual
        memory, which reaches the blocks as a keyword argument; reentrant checkpointing is refused.
        """
        if (activation_checkpointing_kwargs or {}).get("use_reentrant", False):
            raise ValueError("gradient checkpointing with use_reentrant=True cannot carry gradients to the visual "
                             "inputs (keyword arguments of each block): use the default use_reentrant=False")
        return super().activation_checkpointing_enable(activation_checkpointing_kwargs, **kwargs)

    def get_input_embeddings(self) -> nn.Module:
        return self.llm.get_input_embeddings()

    def get_output_embeddings(self) -> nn.Module:
        return self.llm.get_output_embeddings()

    def trainable_parameters(self) -> dict[str, nn.Parameter]:
        return {name: p for name, p in self.named_parameters() if p.requires_grad}

    def parameter_counts(self) -> dict[str, int]:
        trainable = sum(p.numel() for p in self.parameters() if p.requires_grad)
        total = sum(logical_numel(p) for p in self.parameters())
        return {"trainable": trainable, "frozen": total - trainable}

    # --- visual inputs -------------------------------------------------------------------
    def encode_images(
        self, pixel_values: torch.Tensor | None, has_image: torch.Tensor | None, batch_size: int
    ) -> VisualInputs:
        """Run the vision tower once on the rows that have an image, then the method's encoder
        (and what the method needs from the LLM itself: LaVIN's router weights)."""
        device = self.method_device
        if has_image is None:
            has_image = torch.full((batch_size,), pixel_values is not None, dtype=torch.bool, device=device)
        has_image = has_image.to(device).bool()
        features = None
        if pixel_values is not None and bool(has_image.any()):
            if pixel_values.shape[0] != batch_size:
                raise ValueError(
                    f"pixel_values has {pixel_values.shape[0]} rows for a batch of {batch_size}: "
                    "give one (possibly blank) image per sample and mark text-only rows with has_image=0"
                )
            rows = pixel_values[has_image.to(pixel_values.device)]
            features = self.vision(rows, self.method.feature_layers)
        return self.method.complete(self.method.encode(features, has_image, batch_size))

    @property
    def method_device(self) -> torch.device:
        return next(self.llm.parameters()).device

    # --- forward / generate --------------------------------------------------------------
    @deprecate_kwarg("past_key_values", "5.40.0", new_name="cache")
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        pixel_values: torch.Tensor | None = None,
        has_image: torch.Tensor | None = None,
        image_slot: torch.LongTensor | None = None,
        visual_tokens: torch.Tensor | None = None,
        visual_keys: torch.Tensor | None = None,
        visual_values: torch.Tensor | None = None,
        visual_routing: torch.Tensor | None = None,
        logits_to_keep: int = 0,
        num_items_in_batch: int | torch.Tensor | None = None,
        **kwargs,
    ) -> CausalLMOutputWithPast:
        """Causal-LM forward with visual inputs.

        Args:
            input_ids: (B, T) token ids with placeholders where the input-stage tokens go
                (`ademvl.prompting` lays them out); the cache holds exactly these tokens.
            pixel_values / has_image: one image per row (blank for text-only rows, has_image=0).
            image_slot: (B,) column of each row's first visual token, -1 for none. Given with
                the chunk that holds the prompt: the input-stage tokens are written there
                (`generate` passes it at the first step only).
            visual_tokens / visual_keys / visual_values / visual_routing: precomputed visual
                inputs (what `generate` passes at every step instead of the pixels).
            labels: (B, T) with -100 outside the answer; the loss is computed from the
                logits of the answer positions only, and `logits` is then None.
            num_items_in_batch: answer tokens in the whole optimizer step (all micro-batches,
                all processes), as transformers' Trainer passes it: the loss is then the sum
                over this batch's answer tokens divided by it, so accumulated micro-batches
                weigh every token equally. None: the mean over this batch's answer tokens.
        """
        if inputs_embeds is None:
            inputs_embeds = self.llm.get_input_embeddings()(input_ids)
        batch = inputs_embeds.shape[0]
        if visual_tokens is None and visual_keys is None and visual_routing is None:
            visual = self.encode_images(pixel_values, has_image, batch)
        else:
            visual = self.method.complete(VisualInputs(visual_tokens, visual_keys, visual_values, has_image, visual_routing))

        n_prefix = self.method.num_prefix_tokens
        prefix_start = first_attended_columns(attention_mask, batch, inputs_embeds.device)
        if image_slot is not None:
            if visual.tokens is not None:
                inputs_embeds = write_tokens(inputs_embeds, visual.tokens, image_slot)
            if n_prefix:
                inputs_embeds = write_tokens(inputs_embeds, self.method.prefix_tokens(visual.has_image), prefix_start)
        if position_ids is None and attention_mask is not None and attention_mask.dim() == 2:
            # Left-padded batches: count positions from each row's first real token.
            position_ids = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)[:, -inputs_embeds.shape[1]:]
        if n_prefix and self.method.mask_prefix:
            attention_mask = masks_hiding_prefix(
                self.llm.config, inputs_embeds=inputs_embeds, attention_mask=attention_mask, cache=cache,
                position_ids=position_ids, and_mask_function=hide_prefix(prefix_start, n_prefix))

        if labels is not None:
            kwargs.setdefault("use_cache", False)  # training: no cache to build
        out = self.llm.base_model(
            inputs_embeds=inputs_embeds,
            attention_mask=attention_mask,
            position_ids=position_ids,
            cache=cache,
            visual_inputs=visual,
            **kwargs,
        )
        loss, logits = self._loss_or_logits(out.last_hidden_state, labels, logits_to_keep, num_items_in_batch)
        rest = {key: value for key, value in out.items() if key != "last_hidden_state"}  # the cache, …
        if "router_logits" in rest:
            # A mixture-of-experts LLM asked for its router logits (output_router_logits): returned as its
            # *ForCausalLM returns them; their auxiliary loss is the caller's to add, not part of `loss`.
            return MoeCausalLMOutputWithPast(loss=loss, logits=logits, **rest)
        return CausalLMOutputWithPast(loss=loss, logits=logits, **rest)

    def _loss_or_logits(self, hidden: torch.Tensor, labels, logits_to_keep: int, num_items_in_batch=None):
        """With labels: the loss from the answer positions' logits only (logits None). Else the logits."""
        head = self.llm.get_output_embeddings()
        text_config = self.llm.config.get_text_config()
        if labels is None:
            keep = slice(-logits_to_keep, None) if isinstance(logits_to_keep, int) and logits_to_keep > 0 else slice(None)
            return None, apply_head_transform(text_config, head(hidden[:, keep]))
        targets = labels[:, 1:].to(hidden.device)
        answer = targets != IGNORE_INDEX
        if not answer.any():
            return hidden.sum() * 0.0, None
        answer_logits = apply_head_transform(text_config, head(hidden[:, :-1][answer]).float())
        if num_items_in_batch is None:
            return F.cross_entropy(answer_logits, targets[answer]), None
        total = F.cross_entropy(answer_logits, targets[answer], reduction="sum")
        return total / torch.as_tensor(num_items_in_batch, device=total.device, dtype=total.dtype), None

    @torch.no_grad()
    def generate(
        self,
        input_ids: torch.LongTensor | None = None,
        pixel_values: torch.Tensor | None = None,
        has_image: torch.Tensor | None = None,
        image_slot: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        **kwargs,
    ):
        """`GenerationMixin.generate` with the images encoded once, before the first step.

        The visual inputs go to every step as batch-first tensors, so beam search and
        `num_return_sequences` expand them with the prompt.
        """
        visual = self.encode_images(pixel_values, has_image, input_ids.shape[0])
        return super().generate(input_ids=input_ids, attention_mask=attention_mask, image_slot=image_slot,
                                **visual.as_model_kwargs(), **kwargs)

    def prepare_inputs_for_generation(self, input_ids, is_first_iteration: bool = False, **kwargs):
        """After the prompt the cache holds the input-stage tokens: later steps get no image slot."""
        inputs = super().prepare_inputs_for_generation(input_ids, is_first_iteration=is_first_iteration, **kwargs)
        if not is_first_iteration and kwargs.get("use_cache", True):
            inputs.pop("image_slot", None)
        return inputs

    # --- adapters (only the trainable weights) --------------------------------------------
    def save_adapter(self, directory: str | os.PathLike):
        """Write the trainable weights and the config that built them (atomically)."""
        from .checkpoint import save_adapter

        return save_adapter(self, directory)

    def push_adapter_to_hub(self, repo_id: str, private: bool | None = None, token: str | None = None) -> str:
        """Upload only the trainable weights, their config and a model card (never the backbones)."""
        from .hub import push_adapter_to_hub

        return push_adapter_to_hub(self, repo_id, private=private, token=token)

    def load_adapter(self, directory) -> "VLModel":
        """Load trainable weights saved for this same backbone pair and method settings."""
        from .checkpoint import load_adapter

        load_adapter(self, directory)
        return self

    @classmethod
    def from_adapter(
        cls,
        directory,
        llm: str | os.PathLike | nn.Module | None = None,
        vision: str | os.PathLike | nn.Module | None = None,
        dtype=None,
        quantization: str | None = None,
        revision: str | None = None,
        prompt: PromptSpec | None = None,
    ) -> "VLModel":
        """Rebuild a trained model: its saved method settings on the given (or recorded) backbones.

        `directory`: a local adapter directory or a Hub repo id (`user/repo`, at `revision`), or the
        `checkpoint.ResolvedAdapter` of one.
        `quantization="4bit"|"8bit"` loads the frozen LLM through bitsandbytes (GPU, else CPU).
        `prompt`: a `PromptSpec` in place of the one the adapter records (its `prompt_template`,
        `prompt_layout` and `official` keys).
        """
        from .checkpoint import AdapterError
        from .hub import open_adapter

        adapter = open_adapter(directory, revision)  # found and read once; passed down to load_adapter
        saved = adapter.config
        llm = llm if llm is not None else saved.get("llm_name_or_path")
        vision = vision if vision is not None else saved.get("vision_name_or_path")
        if llm is None or vision is None:
            raise AdapterError(f"adapter '{adapter}' does not record its backbones: pass llm= and vision=")
        try:
            if prompt is None:
                prompt = PromptSpec.from_saved(saved)
        except ValueError as error:  # an unknown prompt_layout in the adapter's JSON: name the file
            raise AdapterError(f"adapter '{adapter}': {error}") from None
        try:
            model = cls.from_backbones(llm, vision, method=saved["method"], method_config=saved["method_config"],
                                       dtype=dtype, quantization=quantization, prompt=prompt)
        except ConfigError as error:  # a setting in the adapter's JSON: name the file
            raise AdapterError(f"adapter '{adapter}': {error}") from None
        return model.load_adapter(adapter).eval()  # loaded for use, as from_pretrained: dropout off

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *model_args, **kwargs):
        """A whole saved model (`save_pretrained`), or an adapter directory / Hub repo: then the model is
        rebuilt on the backbones the adapter records (`from_adapter`), as transformers loads a peft
        adapter on its base model. This is what `AutoModel`, `AutoModelForImageTextToText` and
        `pipeline` call (`ademvl.auto`); for an adapter they may pass `dtype`, `device_map` (one device)
        and the Hub options (`revision`, `token`, `cache_dir`, `local_files_only`)."""
        from .auto import adapter_at

        hub = {k: kwargs[k] for k in ("cache_dir", "token", "local_files_only", "force_download") if k in kwargs}
        adapter = adapter_at(pretrained_model_name_or_path, revision=kwargs.get("revision"), **hub)
        if adapter is None:
            return super().from_pretrained(pretrained_model_name_or_path, *model_args, **kwargs)
        passed = {"config", "trust_remote_code", "adapter_kwargs", "_from_auto", "revision", "dtype", "torch_dtype",
                  "device_map", "cache_dir", "token", "local_files_only", "force_download", "proxies",
                  "code_revision", "use_safetensors"}  # what Auto classes and pipeline pass along
        unknown = sorted(set(kwargs) - passed) + (["positional arguments"] if model_args else [])
        if unknown:
            raise ValueError(f"from_pretrained of the ademvl adapter '{adapter}' takes dtype, device_map and the Hub "
                             f"options, not {', '.join(unknown)} (VLModel.from_adapter takes quantization)")
        dtype = kwargs.get("dtype", kwargs.get("torch_dtype"))
        model = cls.from_adapter(adapter, dtype=None if dtype == "auto" else dtype)
        device = kwargs.get("device_map")
        if isinstance(device, dict) and set(device) == {""}:
            device = device[""]
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else None
        if device is not None:
            if isinstance(device, dict):
                raise ValueError(f"the ademvl adapter '{adapter}' loads on one device: give device_map a device, "
                                 f"not {device}")
            model.to(device)
        return model


# Known to transformers' Auto classes from the moment the model class exists (`ademvl.auto`). A bare
# `import ademvl` stays light (harnesses import the package at every start-up): it enters stand-ins
# in transformers' tables that import this module when first used.
register_auto_classes(VLConfig, VLModel, VLProcessor)
