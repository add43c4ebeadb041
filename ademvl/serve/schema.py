"""The request bodies (OpenAI's field names), validated by pydantic.

Every parameter of OpenAI's chat-completions and completions APIs is either a
field here, served as OpenAI defines it, or listed in `REFUSED` and answered
with a 400 naming it (`refused_parameters`); a field OpenAI does not have is a
400 too, as OpenAI answers it. Nothing a client sends is silently dropped.
"""
from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field

MAX_N = 16  # choices per request (also capped by --max-batch: a request's choices share one batch)


class ImageURL(BaseModel):
    url: str
    detail: str | None = None


class TextPart(BaseModel):
    type: Literal["text"]
    text: str


class ImagePart(BaseModel):
    type: Literal["image_url"]
    image_url: ImageURL


StopString = Annotated[str, Field(max_length=1000)]
Part = Annotated[Union[TextPart, ImagePart], Field(discriminator="type")]
Penalty = Annotated[float, Field(ge=-2, le=2)]


class Message(BaseModel):
    """One turn. Fields of tool calls and audio are accepted only empty (as clients echo an earlier reply
    back); anything else a message carries is a 400 naming it."""

    model_config = ConfigDict(extra="forbid")

    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[Part] | None = None
    name: str | None = None
    refusal: None = None
    tool_calls: Annotated[list, Field(max_length=0)] | None = None
    function_call: None = None
    audio: None = None
    annotations: Annotated[list, Field(max_length=0)] | None = None


class StreamOptions(BaseModel):
    include_usage: bool = False
    include_obfuscation: bool | None = None  # OpenAI's padding against side channels: no such fields are sent


class JSONSchemaFormat(BaseModel):
    name: str = Field(max_length=64)
    description: str | None = None
    schema_: dict[str, Any] | None = Field(None, alias="schema")
    strict: bool | None = None


class ResponseFormat(BaseModel):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JSONSchemaFormat | None = None


# OpenAI parameters this model cannot honour: a 400 naming the parameter, with why.
REFUSED = {
    "tools": "this model was not trained to call tools",
    "tool_choice": "this model was not trained to call tools",
    "parallel_tool_calls": "this model was not trained to call tools",
    "functions": "this model was not trained to call functions",
    "function_call": "this model was not trained to call functions",
    "audio": "this model answers in text only",
    "reasoning_effort": "this model does not reason before answering",
    "verbosity": "this model has no verbosity setting",
    "prediction": "predicted outputs are not served",
    "web_search_options": "this server has no web search",
    "moderation": "this server runs no moderation",
    "prompt_cache_options": "this server keeps no prompt cache",
    "prompt_cache_retention": "this server keeps no prompt cache",
    "metadata": "this server stores no completions (metadata tags stored ones)",
    "best_of": "best_of is not served (n is)",
    "suffix": "insertion (suffix) is not served",
}
HARMLESS = {("best_of", 1), ("suffix", "")}  # values of refused parameters that ask for nothing
# Parameters that do not change an answer by OpenAI's own definition (identifiers, cache keys): accepted.
NO_EFFECT = ("user", "safety_identifier", "prompt_cache_key")


class _Common(BaseModel):
    """The sampling parameters both endpoints share."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)  # extras: refused by `refused_parameters`

    model: str
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    stop: StopString | Annotated[list[StopString], Field(max_length=16)] | None = None  # each checked every token
    stream: bool = False
    stream_options: StreamOptions | None = None
    n: int = Field(1, ge=1, le=MAX_N)
    seed: int | None = Field(None, ge=-(2**63), lt=2**64)
    presence_penalty: Penalty | None = None
    frequency_penalty: Penalty | None = None
    logit_bias: dict[str, Annotated[float, Field(ge=-100, le=100)]] | None = Field(None, max_length=1024)
    user: str | None = None
    safety_identifier: str | None = None
    prompt_cache_key: str | None = None

    def stop_strings(self) -> list[str]:
        stops = [self.stop] if isinstance(self.stop, str) else list(self.stop or [])
        return [s for s in stops if s]

    def refused_parameters(self) -> list[tuple[str, str]]:
        """(parameter, why) for each parameter given that is refused or not OpenAI's."""
        extra = self.model_extra or {}
        found = [(name, why) for name, why in REFUSED.items() if extra.get(name) is not None
                 and not any(name == n and extra[name] == v for n, v in HARMLESS)]
        found += [(name, "unrecognized request argument") for name in extra if name not in REFUSED]
        if self.stream_options is not None and not self.stream:
            found.append(("stream_options", "stream_options is only allowed with stream=true"))
        return found


class ChatRequest(_Common):
    messages: list[Message] = Field(min_length=1, max_length=4096)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    logprobs: bool | None = None
    top_logprobs: int | None = Field(None, ge=0, le=20)
    response_format: ResponseFormat | None = None
    store: bool | None = None
    service_tier: str | None = None
    modalities: list[str] | None = None

    def requested_max_tokens(self) -> int | None:
        return self.max_completion_tokens if self.max_completion_tokens is not None else self.max_tokens

    def refused_parameters(self) -> list[tuple[str, str]]:
        found = super().refused_parameters()
        if self.store:
            found.append(("store", "this server stores no completions"))
        if self.service_tier not in (None, "auto", "default"):
            found.append(("service_tier", "this server has one tier: 'auto' or 'default'"))
        if self.modalities is not None and self.modalities != ["text"]:
            found.append(("modalities", "this model answers in text only: ['text']"))
        if self.top_logprobs and not self.logprobs:
            found.append(("top_logprobs", "top_logprobs needs logprobs=true"))
        return found


class CompletionRequest(_Common):
    """OpenAI's legacy completions: a plain prompt, continued as is (no template), plus one optional image
    given as chat requests give it: ``"image_url": {"url": "data:image/png;base64,..."}``."""

    prompt: str | Annotated[list[str], Field(min_length=1, max_length=1)]
    image_url: ImageURL | None = None
    max_tokens: int | None = Field(16, ge=1)  # OpenAI's default for completions
    logprobs: int | None = Field(None, ge=0, le=5)
    echo: bool = False

    def text(self) -> str:
        return self.prompt if isinstance(self.prompt, str) else self.prompt[0]

    def requested_max_tokens(self) -> int | None:
        return self.max_tokens

    def refused_parameters(self) -> list[tuple[str, str]]:
        found = super().refused_parameters()
        if self.echo:
            found.append(("echo", "echoing the prompt is not served"))
        return found
