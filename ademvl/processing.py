"""`VLProcessor`: tokenizer + image processor + ademvl's prompt layout, as transformers' processors are.

    processor = AutoProcessor.from_pretrained("my-ademvl-model")
    model = AutoModel.from_pretrained("my-ademvl-model")
    inputs = processor(images=[image], text=["What is shown?"])
    answer = processor.batch_decode(model.generate(**inputs)[:, inputs["input_ids"].shape[1]:])

It lays prompts out exactly as training did (`ademvl.prompting`: placeholders for the method's
visual and prefix tokens, the adapter's prompt template around each question), left-padded for
generation, so that `generate` needs nothing else.
"""
from __future__ import annotations

from transformers import BatchFeature, ProcessorMixin


class VLProcessor(ProcessorMixin):
    attributes = ["image_processor", "tokenizer"]
    image_processor_class = "AutoImageProcessor"
    tokenizer_class = "AutoTokenizer"

    def __init__(self, image_processor=None, tokenizer=None, num_visual_tokens: int = 0, num_prefix_tokens: int = 0,
                 prompt_template: str | None = None, max_length: int | None = None, prompt_layout: str = "plain",
                 **kwargs):
        """`num_visual_tokens` / `num_prefix_tokens`: the method's placeholders; `prompt_template`:
        how training wrapped a question ("{prompt}" marks it); `max_length`: the longest prompt."""
        self.num_visual_tokens = num_visual_tokens
        self.num_prefix_tokens = num_prefix_tokens
        self.prompt_template = prompt_template
        self.max_length = max_length
        self.prompt_layout = prompt_layout
        super().__init__(image_processor, tokenizer, **kwargs)

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

    def __call__(self, images=None, text=None, return_tensors: str = "pt", **kwargs) -> BatchFeature:
        """One row per prompt; `images` gives one PIL image (or None: text-only) per prompt.

        A prompt is a question, or a conversation ``[(role, text), ...]`` ending with a user turn, laid out
        as `AdemVLChat` and `ademvl serve` lay it out (`ademvl.prompting.conversation_prompt`)."""
        from .data.example import VLExample
        from .evaluation.generation import GenerationCollator
        from .prompting import check_template, conversation_prompt

        if text is None:
            raise ValueError("VLProcessor needs text: one prompt (or a list of prompts)")
        one_conversation = isinstance(text, (list, tuple)) and bool(text) and isinstance(text[0], tuple)
        prompts = [text] if isinstance(text, str) or one_conversation else list(text)
        if images is None or not isinstance(images, (list, tuple)):
            images = [images] * len(prompts)
        if len(images) != len(prompts):
            raise ValueError(f"{len(images)} images for {len(prompts)} prompts: give one (or None) per prompt")
        template = check_template(self.prompt_template or "{prompt}")
        examples = [VLExample(id=str(i), prompt=conversation_prompt(template, prompt), answer="", image=image)
                    for i, (image, prompt) in enumerate(zip(images, prompts))]
        collator = GenerationCollator(self.tokenizer, self.image_processor, self.num_visual_tokens,
                                      self.max_length, num_prefix_tokens=self.num_prefix_tokens,
                                      prompt_layout=self.prompt_layout)
        return BatchFeature(collator(examples), tensor_type=return_tensors)
