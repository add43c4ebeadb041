"""Where a per-layer visual read (ADEM-VL's fusion, MemVP's memory) takes its query and adds its
result inside a decoder block, on every block shape (`ademvl.architectures`).

Four points of a block, in the order a block computes them:

    attn_in   the attention's input (the pre-attention norm's output; the raw h on OLMo 2)
    attn_out  the attention's contribution to the residual stream (after its post-norm, if any)
    mlp_in    the feed-forward's input n (the whole sparse block's input on MoE models)
    mlp_out   the feed-forward's contribution to the residual stream (after its post-norm, if any)

The query is read at one point and α·F(query) added at the same or a later one; the query
travels between the two through the block call in progress (`LayerCall.scratch`), never through
a module attribute. On blocks that normalise a branch output again (Gemma 2/3, OLMo 2),
`add_before_post_norm` moves an add at attn_out / mlp_out before that norm (it is then
renormalised with the branch).
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from ..architectures import DecoderLayout, decoder_blocks, decoder_layout, get_attr
from .base import VisualInputs
from .layer_call import current_layer_call

POINTS = ("attn_in", "attn_out", "mlp_in", "mlp_out")
QUERY = "query"


def check_points(query_from: str, add_to: str) -> None:
    """One-line ValueError for an unknown point or an add that comes before the query in the block."""
    for name, value in (("query_from", query_from), ("add_to", add_to)):
        if value not in POINTS:
            raise ValueError(f"{name} must be one of {', '.join(POINTS)}, got {value!r}")
    if POINTS.index(add_to) < POINTS.index(query_from):
        raise ValueError(f"add_to={add_to} comes before query_from={query_from} in the block: "
                         "the result cannot be added before its query is computed")


def replace_hidden_states(args: tuple, kwargs: dict, change: Callable) -> tuple[tuple, dict]:
    """The call's hidden states (keyword `hidden_states` or the first positional) passed through `change`."""
    if "hidden_states" in kwargs:
        return args, {**kwargs, "hidden_states": change(kwargs["hidden_states"])}
    return (change(args[0]), *args[1:]), kwargs


def _first_output(out, change: Callable):
    """A module's output with its hidden states (the output, or its first item) passed through `change`."""
    if isinstance(out, tuple):
        return (change(out[0]), *out[1:])
    return change(out)


class BlockSite(nn.Module):
    """One module of a decoder block wrapped where a visual read takes its query and/or adds its result.

    `query` / `add`: "input", "output" or None - the side of `base_layer` where the query is read /
    `scale · read(query)` is added. Subclasses define `read`. Outside a call with visual inputs
    (text only, or the LLM called on its own) the module is exactly `base_layer`.
    """

    def __init__(self, base_layer: nn.Module, scale: float, query: str | None = None, add: str | None = None):
        super().__init__()
        self.base_layer = base_layer
        self.scale = scale
        self.query = query
        self.add = add

    def read(self, query: torch.Tensor, visual: VisualInputs) -> torch.Tensor:
        raise NotImplementedError

    def _visit(self, call, x: torch.Tensor, side: str) -> torch.Tensor:
        if self.query == side:
            call.scratch[QUERY] = x
        if self.add == side:
            x = x + self.scale * self.read(call.scratch[QUERY], call.visual).to(x.dtype)
        return x

    def forward(self, *args, **kwargs):
        call = current_layer_call()
        if call is None or call.visual.keys is None:
            return self.base_layer(*args, **kwargs)
        if "input" in (self.query, self.add):
            args, kwargs = replace_hidden_states(args, kwargs, lambda x: self._visit(call, x, "input"))
        out = self.base_layer(*args, **kwargs)
        if "output" in (self.query, self.add):
            out = _first_output(out, lambda x: self._visit(call, x, "output"))
        return out


def point_site(layout: DecoderLayout, point: str, adding: bool, add_before_post_norm: bool) -> tuple[str, str]:
    """(attribute of the block, side of that module) where `point` is read or added to."""
    if point == "attn_in":
        return (layout.attention_norm, "output") if layout.attention_norm else (layout.attention, "input")
    if point == "mlp_in":
        return layout.mlp, "input"
    branch, post_norm = ((layout.attention, layout.attention_out_norm) if point == "attn_out"
                         else (layout.mlp, layout.mlp_out_norm))
    if post_norm is None or (adding and add_before_post_norm):
        return branch, "output"
    return post_norm, "output"


def place_sites(llm: nn.Module, make_site: Callable[[nn.Module, str, str | None, str | None], nn.Module],
                query_from: str = "mlp_in", add_to: str = "mlp_out", add_before_post_norm: bool = False) -> None:
    """Wrap, in every decoder block, the module(s) at the query and add points:
    `make_site(module, attribute, query_side, add_side)` returns the wrapper."""
    check_points(query_from, add_to)
    layout = decoder_layout(llm)
    query_at = point_site(layout, query_from, False, add_before_post_norm)
    add_at = point_site(layout, add_to, True, add_before_post_norm)
    if add_to == query_from and add_at != query_at:
        raise ValueError(f"add_to={add_to} with add_before_post_norm comes before query_from={query_from} (after "
                         "the post-norm) in this block: the result cannot be added before its query is computed")
    if query_at[0] == add_at[0]:  # one module: query and add on the same side, or input then output (the default)
        sites = {query_at[0]: (query_at[1], add_at[1])}
    else:
        sites = {query_at[0]: (query_at[1], None), add_at[0]: (None, add_at[1])}
    for block in decoder_blocks(llm):
        for attribute, (query_side, add_side) in sites.items():
            setattr(block, attribute, make_site(get_attr(block, attribute), attribute, query_side, add_side))
