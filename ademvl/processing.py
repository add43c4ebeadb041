"""`VLProcessor`: tokenizer + image processor + ademvl's prompt layout, as transformers' processors are.

    processor = AutoProcessor.from_pretrained("my-adapter")      # an adapter directory or Hub repo
    model = AutoModelForImageTextToText.from_pretrained("my-adapter")
    inputs = processor(images=[image], text=["What is shown?"])
    answer = processor.batch_decode(model.generate(**inputs)[:, inputs["input_ids"].shape[1]:])

It lays prompts out exactly as training did (`ademvl.prompting`: placeholders for the method's
visual and prefix tokens, the adapter's prompt template around each question), left-padded for
generation, so that `generate` needs nothing else. It carries a chat template of the layout the
model was trained in (`ademvl.chat_template`), so `apply_chat_template` and
`pipeline("image-text-to-text", text=messages)` give the same tokens as `AdemVLChat` and `ademvl serve`.
From an adapter, the tokenizer is the recorded LLM's and the image processor the recorded vision
tower's (as `load_for_eval` takes them); nothing of either is stored with the adapter.
"""
from __future__ import annotations

import json

from transformers import BatchFeature, ProcessorMixin

from .chat_template import chat_template_for, generation_prompt_ids, is_ademvl_template, read_rendered


class VLProcessor(ProcessorMixin):
    attributes = ["image_processor", "tokenizer"]  # loaded by AutoImageProcessor / AutoTokenizer

    def __init__(self, image_processor=None, tokenizer=None, num_visual_tokens: int = 0, num_prefix_tokens: int = 0,
                 prompt_template: str | None = None, max_length: int | None = None, prompt_layout: str = "plain",
                 chat_template: str | None = None, **kwargs):
        """`num_visual_tokens` / `num_prefix_tokens`: the method's placeholders; `prompt_template`:
        how training wrapped a question ("{prompt}" marks it); `max_length`: the longest prompt;
        `chat_template`: None (or the tokenizer's own, as a saved directory hands it back) for the
        one rendering `prompt_layout`."""
        self.num_visual_tokens = num_visual_tokens
        self.num_prefix_tokens = num_prefix_tokens
        self.prompt_template = prompt_template
        self.max_length = max_length
        self.prompt_layout = prompt_layout
        own = getattr(tokenizer, "chat_template", None)
        if tokenizer is not None and (chat_template is None or chat_template == own or is_ademvl_template(chat_template)):
            chat_template = chat_template_for(prompt_layout, prompt_template, tokenizer, num_visual_tokens)
        super().__init__(image_processor, tokenizer, chat_template=chat_template, **kwargs)

    @classmethod
    def for_model(cls, model, tokenizer, image_processor) -> "VLProcessor":
        """The processor matching `model`'s method, prompt template and context length."""
        from .context import prompt_token_limit
        from .prompting import encoder_settings, prompt_spec_of

        settings = encoder_settings(model)
        return cls(image_processor, tokenizer, num_visual_tokens=settings["num_visual_tokens"],
                   num_prefix_tokens=settings["num_prefix_tokens"],
                   prompt_template=prompt_spec_of(model).template,
                   max_length=prompt_token_limit(model),
                   prompt_layout=settings["prompt_layout"])

    @classmethod
    def from_adapter(cls, adapter) -> "VLProcessor":
        """The processor of an adapter (`ademvl.checkpoint.ResolvedAdapter`): its settings from the
        `processor_config.json` saved with it, the tokenizer and image processor from its backbones."""
        from .auto import PROCESSOR_CONFIG
        from .checkpoint import AdapterError
        from .evaluation.loading import load_image_processor
        from .loading import load_tokenizer
        from .prompting import PromptSpec

        path = adapter.directory / PROCESSOR_CONFIG
        if not path.is_file():
            raise AdapterError(f"adapter '{adapter}' has no {PROCESSOR_CONFIG} (saved before ademvl wrote one): "
                               "load it with VLModel.from_adapter and save_adapter it again")
        try:
            settings = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise AdapterError(f"'{path}' is not valid JSON ({error})") from None
        settings = {k: settings[k] for k in ("num_visual_tokens", "num_prefix_tokens", "prompt_template",
                                             "max_length", "prompt_layout") if k in settings}
        saved = adapter.config
        tokenizer = load_tokenizer(saved.get("llm_name_or_path"), hint="give the LLM path a tokenizer")
        official = PromptSpec.from_saved(saved).official
        if official is not None:
            from .official.preprocess import official_image_processor

            image_processor = official_image_processor(official, saved["vision"]["image_size"])
        else:
            image_processor = load_image_processor(saved.get("vision_name_or_path"))
        return cls(image_processor, tokenizer, **settings)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, **kwargs):
        """A saved processor, or the processor of an adapter directory / Hub repo (`from_adapter`):
        what `AutoProcessor` and `pipeline` call."""
        from .auto import adapter_at

        hub = {k: kwargs[k] for k in ("cache_dir", "token", "local_files_only", "force_download") if k in kwargs}
        adapter = adapter_at(pretrained_model_name_or_path, revision=kwargs.get("revision"),
                             whole=("tokenizer_config.json", "tokenizer.json"), **hub)
        if adapter is None:
            return super().from_pretrained(pretrained_model_name_or_path, **kwargs)
        return cls.from_adapter(adapter)

    def save_pretrained(self, save_directory, **kwargs):
        """As transformers saves a processor, without writing the layout's chat template over the
        tokenizer's own `chat_template.jinja` (the layout's is made again on loading)."""
        template = self.chat_template
        if is_ademvl_template(template):
            self.chat_template = None
        try:
            return super().save_pretrained(save_directory, **kwargs)
        finally:
            self.chat_template = template

    def __call__(self, images=None, text=None, return_tensors: str = "pt", **kwargs) -> BatchFeature:
        """One row per prompt; `images` gives one PIL image (or None: text-only) per prompt.

        A prompt is a question, a conversation ``[(role, text), ...]`` ending with a user turn, laid out
        as `AdemVLChat` and `ademvl serve` lay it out (`ademvl.prompting.conversation_prompt`), or a
        prompt this processor's chat template rendered (`apply_chat_template`, the pipeline)."""
        from .data.example import VLExample
        from .evaluation.generation import GenerationCollator
        from .prompting import check_template, conversation_prompt

        if text is None:
            raise ValueError("VLProcessor needs text: one prompt (or a list of prompts)")
        one_conversation = isinstance(text, (list, tuple)) and bool(text) and isinstance(text[0], tuple)
        prompts = [text] if isinstance(text, str) or one_conversation else list(text)
        if images is None or not isinstance(images, (list, tuple)):
            images = [images] * len(prompts)
        images = [_one_image(image, n) for n, image in enumerate(images)]
        if len(images) != len(prompts):
            raise ValueError(f"{len(images)} images for {len(prompts)} prompts: give one (or None) per prompt")
        template = check_template(self.prompt_template or "{prompt}")
        examples = []
        for n, (image, prompt) in enumerate(zip(images, prompts)):
            rendered = read_rendered(prompt, self.prompt_layout, self.tokenizer, self.num_visual_tokens)
            if rendered is None:
                prompt = conversation_prompt(template, prompt)
            else:
                prompt, has_image = rendered
                if has_image is not None and has_image != (image is not None):
                    raise ValueError(f"prompt {n} was rendered {'with' if has_image else 'without'} an image but "
                                     f"{'none' if image is None else 'one'} was given")
            examples.append(VLExample(id=str(n), prompt=prompt, answer="", image=image))
        collator = GenerationCollator(self.tokenizer, self.image_processor, self.num_visual_tokens,
                                      self.max_length, num_prefix_tokens=self.num_prefix_tokens,
                                      prompt_layout=self.prompt_layout)
        return BatchFeature(collator(examples), tensor_type=return_tensors)

    def post_process_image_text_to_text(self, generated_outputs, skip_special_tokens=True, **kwargs):
        """Decoded sequences, with the answer after one space: `pipeline` returns a string prompt
        followed by this text, which then reads "question answer" in every layout (the plain layout's
        answers start with a space as trained; the chat layout's start a new assistant turn)."""
        rows = generated_outputs.tolist() if hasattr(generated_outputs, "tolist") else list(generated_outputs)
        single = bool(rows) and not isinstance(rows[0], (list, tuple))
        rows = [rows] if single else rows
        marker = generation_prompt_ids(self.prompt_layout, self.tokenizer)
        texts = []
        for row in rows:
            cut = _end_of(marker, row)
            text = self.tokenizer.decode(row[:cut], skip_special_tokens=skip_special_tokens, **kwargs)
            answer = self.tokenizer.decode(row[cut:], skip_special_tokens=skip_special_tokens, **kwargs)
            texts.append(text + " " + answer.lstrip() if answer.strip() else text)
        return texts[0] if single else texts


def _end_of(marker: list[int], row: list[int]) -> int:
    """Index just after the first occurrence of `marker` in `row`; the row's length when absent (or no marker)."""
    width = len(marker)
    for start in range(len(row) - width + 1) if width else ():
        if row[start:start + width] == marker:
            return start + width
    return len(row)


def _one_image(image, n: int):
    """A prompt's image: None, one image, or a list of at most one (as `apply_chat_template` passes them)."""
    if not isinstance(image, (list, tuple)):
        return image
    if len(image) > 1:
        raise ValueError(f"prompt {n} has {len(image)} images: ademvl takes one image per prompt")
    return image[0] if image else None
