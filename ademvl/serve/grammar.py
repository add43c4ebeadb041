"""`response_format` → a grammar the answer is decoded under (xgrammar), or a 400 naming it.

`json_object` is any JSON object and `json_schema` the schema given, both compiled
by xgrammar without free whitespace between tokens (a small model otherwise pads
its answer with it); `RowSampler` applies them through xgrammar's transformers
logits processor, one per row. The compiler is built once per server (it caches compiled
grammars) from the tokenizer and the width of the LLM's logits; without the
`xgrammar` package a grammar request is refused, never answered unconstrained.
"""
from __future__ import annotations

import json
import threading

from .errors import RequestError

MAX_SCHEMA_CHARS = 32_000


class Grammars:
    """Compiles a request's `response_format` for the served tokenizer (thread-safe, built on first use)."""

    def __init__(self, tokenizer, vocab_size: int):
        self.tokenizer = tokenizer
        self.vocab_size = vocab_size
        self._compiler = None
        self._lock = threading.Lock()

    def compiler(self):
        with self._lock:
            if self._compiler is None:
                try:
                    import xgrammar as xgr
                except ImportError:
                    raise RequestError("response_format: json_object and json_schema need the xgrammar package on "
                                       "the server (pip install 'ademvl[serve]'); only 'text' is served without it",
                                       "response_format", "unsupported_parameter") from None
                info = xgr.TokenizerInfo.from_huggingface(self.tokenizer, vocab_size=self.vocab_size,
                                                          stop_token_ids=[self.tokenizer.eos_token_id])
                self._compiler = xgr.GrammarCompiler(info)
            return self._compiler

    def compile(self, response_format) -> object | None:
        """The compiled grammar for `response_format` (a schema model), None for plain text."""
        if response_format is None or response_format.type == "text":
            return None
        compiler = self.compiler()
        if response_format.type == "json_object":  # OpenAI's JSON mode: one JSON object
            return compiler.compile_json_schema('{"type": "object"}', any_whitespace=False)
        spec = response_format.json_schema
        if spec is None or spec.schema_ is None:
            raise RequestError("response_format.json_schema.schema: a JSON schema is required",
                               "response_format.json_schema.schema", "invalid_value")
        text = json.dumps(spec.schema_)
        if len(text) > MAX_SCHEMA_CHARS:  # compiling costs time in proportion to the schema: bound it
            raise RequestError(f"response_format.json_schema.schema: {len(text)} characters as JSON, the limit is "
                               f"{MAX_SCHEMA_CHARS}", "response_format.json_schema.schema", "invalid_value")
        try:
            return compiler.compile_json_schema(text, any_whitespace=False,
                                                strict_mode=bool(spec.strict))
        except Exception as error:  # xgrammar's message names what in the schema it cannot take
            message = " ".join(str(error).split())[:300]
            raise RequestError(f"response_format.json_schema.schema: not a schema this server can decode under: "
                               f"{message}", "response_format.json_schema.schema", "invalid_value") from None
