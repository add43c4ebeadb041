"""OpenAI messages → the one prompt (and the one image) the adapter was trained on.

The adapter saw single turns laid out as ``[bos] "Image: " <visual> "\\n" PROMPT``,
where PROMPT is its template around a question (e.g. ``"Question: {q}\\nAnswer:"``)
and the answer followed after a space. A conversation is laid out as the same
turns one after another, each earlier one closed by its answer::

    SYSTEM TEXT                                  (system/developer messages, if any)
    Question: what shape is in the image?\\nAnswer: circle
    Question: what colour is it?\\nAnswer:        (the last user turn: the model answers it)

joined by newlines; consecutive user messages are one question, their texts joined by
newlines. A one-message conversation is therefore exactly the prompt `ademvl generate`
builds, and every conversation is the prompt `AdemVLChat` builds for the same turns
(`ademvl.prompting.conversation_prompt` lays out both). The model takes one image per sample, so a
conversation may carry at most one `image_url` part (in any user turn); it sits
in the image slot at the start, before every turn.
"""
from __future__ import annotations

from ..prompting import conversation_prompt as layout
from .errors import RequestError
from .schema import ImagePart, Message


def valid_unicode(text: str, where: str) -> str:
    """`text` if it can be encoded: JSON lets a string carry a lone surrogate (\\ud800), which no tokenizer takes."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        raise RequestError(f"{where}: the text holds a lone surrogate (U+{ord(text[error.start]):04X} at character "
                           f"{error.start}), which is not valid Unicode", where, "invalid_text") from None
    return text


def _text(message: Message, where: str) -> tuple[str, list[tuple[str, str]]]:
    """The message's text (parts joined by newlines) and its image URLs with where they were."""
    if message.content is None:
        return "", []
    if isinstance(message.content, str):
        return valid_unicode(message.content, f"{where}.content"), []
    texts, images = [], []
    for j, part in enumerate(message.content):
        if isinstance(part, ImagePart):
            images.append((part.image_url.url, f"{where}.content.{j}.image_url"))
        else:
            texts.append(valid_unicode(part.text, f"{where}.content.{j}.text"))
    return "\n".join(texts), images


def conversation_prompt(messages: list[Message], template: str) -> tuple[str, tuple[str, str] | None]:
    """`(prompt, (image URL, its field path) or None)` for a chat; `RequestError` when it cannot be laid out.

    The messages become ``(role, text)`` turns (developer messages are system turns) laid out by
    `ademvl.prompting.conversation_prompt`, the one conversation layout AdemVLChat uses too."""
    if messages[-1].role != "user":
        raise RequestError(f"messages.{len(messages) - 1}: the last message must come from the user "
                           f"(got role '{messages[-1].role}')", f"messages.{len(messages) - 1}.role")
    turns: list[tuple[str, str]] = []
    images: list[tuple[str, str]] = []
    for i, message in enumerate(messages):
        where = f"messages.{i}"
        if message.name:  # OpenAI shows the model who spoke; this layout has no place to say it
            raise RequestError(f"{where}.name: this model's prompt layout has no place for participant names; "
                               "leave it out", f"{where}.name", "unsupported_parameter")
        text, found = _text(message, where)
        if found and message.role != "user":
            raise RequestError(f"{where}: only user messages may carry images", f"{where}.content")
        images += found
        turns.append(("system" if message.role == "developer" else message.role, text))
    if not turns[-1][1].strip():
        raise RequestError(f"messages.{len(messages) - 1}: the last user message has no text to answer",
                           f"messages.{len(messages) - 1}.content")
    if len(images) > 1:
        raise RequestError(f"{images[1][1]}: this model takes one image per conversation, got {len(images)}",
                           images[1][1], "too_many_images")
    try:
        prompt = layout(template, turns)
    except ValueError as error:  # an assistant message with no question before it
        raise RequestError(str(error).replace("conversation turn ", "messages.", 1), "messages") from None
    return prompt, images[0] if images else None
