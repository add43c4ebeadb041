"""The units of work the benchmark measures, for a `VLModel` and for the bare LLM.

- forward: one inference forward over the whole prompt (text + the method's
  visual tokens + the vision tower), last-position logits only (a prefill).
- train: forward + cross-entropy over the last `answer_len` positions +
  backward (+ the optimizer step when one is given). The bare LLM has nothing
  to train: its "training step" back-propagates to the input embeddings, the
  least a frozen LLM must do for a trainable part below it.
- forward_llm: the same forward with the visual inputs already encoded (the LLM
  and the fusion only: what the fusion costs on top of the frozen LLM).
- decode: one new token with the KV cache of the prompt already filled.
- generate: `generate()` of `new_tokens` greedy tokens (prefill included).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .inputs import answer_targets, text_only


def _loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits.float().flatten(0, 1), targets.flatten())


class VLSteps:
    """Work units for a `VLModel` on a fixed synthetic batch."""

    def __init__(self, model, inputs: dict, answer_len: int = 8):
        self.model = model
        self.inputs = inputs
        vocab = model.llm.config.get_text_config().vocab_size
        self.targets = answer_targets(inputs["input_ids"].shape[0], answer_len, vocab, inputs["input_ids"].device)
        self.answer_len = answer_len

    def mode(self, training: bool):
        """Train mode for training steps (adapter dropout on), eval mode for inference."""
        if self.model.training != training:
            self.model.train(training)

    def forward(self):
        with torch.no_grad():
            return self.model(**self.inputs, logits_to_keep=1).logits

    def forward_llm(self):
        if not hasattr(self, "_visual"):
            b = self.inputs
            with torch.no_grad():
                self._visual = self.model.encode_images(b["pixel_values"], b["has_image"], b["input_ids"].shape[0])
        v, b = self._visual, self.inputs
        with torch.no_grad():
            return self.model(input_ids=b["input_ids"], attention_mask=b["attention_mask"], image_slot=b["image_slot"],
                              **v.as_model_kwargs(), logits_to_keep=1).logits

    def train(self, optimizer=None):
        logits = self.model(**self.inputs, logits_to_keep=self.answer_len).logits
        loss = _loss(logits, self.targets)
        loss.backward()
        if optimizer is not None:
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        return loss

    def prefill(self):
        """Encode the images and fill the KV cache (not counted in `decode`)."""
        with torch.no_grad():
            b = self.inputs
            visual = self.model.encode_images(b["pixel_values"], b["has_image"], b["input_ids"].shape[0])
            out = self.model(**b, use_cache=True, logits_to_keep=1)
        return visual, out.cache

    def decode(self, visual, cache):
        b = self.inputs
        ids = b["input_ids"][:, -1:]
        mask = torch.ones(ids.shape[0], b["input_ids"].shape[1] + 1, dtype=torch.long, device=ids.device)
        with torch.no_grad():
            return self.model(input_ids=ids, attention_mask=mask, cache=cache, use_cache=True,
                              **visual.as_model_kwargs(), logits_to_keep=1).logits

    def generate(self, new_tokens: int):
        return self.model.generate(**self.inputs, max_new_tokens=new_tokens, min_new_tokens=new_tokens,
                                   do_sample=False, pad_token_id=0, eos_token_id=None)


class BareSteps:
    """The same work for the frozen LLM alone on the same text (no visual tokens, no vision tower)."""

    def __init__(self, llm, inputs: dict, extra: int, answer_len: int = 8, prefix: int = 0):
        self.llm = llm
        self.inputs = text_only(inputs, extra, prefix)
        vocab = llm.config.get_text_config().vocab_size
        self.targets = answer_targets(inputs["input_ids"].shape[0], answer_len, vocab, inputs["input_ids"].device)
        self.answer_len = answer_len

    def forward(self):
        with torch.no_grad():
            return self.llm(**self.inputs, logits_to_keep=1).logits

    forward_llm = forward

    def mode(self, training: bool):
        """The frozen LLM always runs in eval mode."""

    def train(self, optimizer=None):
        embeds = self.llm.get_input_embeddings()(self.inputs["input_ids"]).detach().requires_grad_(True)
        logits = self.llm(inputs_embeds=embeds, attention_mask=self.inputs["attention_mask"],
                          logits_to_keep=self.answer_len).logits
        loss = _loss(logits, self.targets)
        loss.backward()
        return loss

    def prefill(self):
        with torch.no_grad():
            return None, self.llm(**self.inputs, use_cache=True, logits_to_keep=1).cache

    def decode(self, visual, cache):
        ids = self.inputs["input_ids"][:, -1:]
        mask = torch.ones(ids.shape[0], self.inputs["input_ids"].shape[1] + 1, dtype=torch.long, device=ids.device)
        with torch.no_grad():
            return self.llm(input_ids=ids, attention_mask=mask, cache=cache, use_cache=True,
                            logits_to_keep=1).logits

    def generate(self, new_tokens: int):
        return self.llm.generate(**self.inputs, max_new_tokens=new_tokens, min_new_tokens=new_tokens,
                                 do_sample=False, pad_token_id=0, eos_token_id=None)
