"""YAML from recipe files and KEY=VALUE overrides, bounded, and bad values echoed short.

`yaml.safe_load` builds no Python objects, but it still expands aliases: nine
levels of `&a [*b, *b, …]` are a few hundred bytes that become a value of
billions of items the moment anything copies or prints it (the recipe's
`to_dict`, an error line's `repr`). So the text is capped, the node graph is
measured as it would expand before anything is built, and error messages show
values through `shown`, which never walks more than a few items.
"""
from __future__ import annotations

import reprlib
from typing import Any

import yaml

MAX_BYTES = 1024 * 1024  # a recipe is a few kB
MAX_NODES = 100_000  # scalars + collections after every alias is expanded


class YAMLLimitError(ValueError):
    """The YAML is larger, expands further or nests deeper than a recipe can; the message says which."""


def _expanded_size(node: yaml.Node, what: str) -> int:
    """How many nodes `node` stands for once every alias is expanded (shared sub-graphs counted once each
    time they are used, measured once each); refuses a graph that refers to itself."""
    sizes: dict[int, int] = {}
    active: set[int] = set()

    def size(n: yaml.Node) -> int:
        key = id(n)
        if key in sizes:
            return sizes[key]
        if key in active:
            raise YAMLLimitError(f"{what}: a YAML alias refers to the collection that holds it")
        active.add(key)
        total = 1
        if isinstance(n, yaml.SequenceNode):
            children = n.value
        elif isinstance(n, yaml.MappingNode):
            children = [child for pair in n.value for child in pair]
        else:
            children = []
        for child in children:
            total += size(child)
            if total > MAX_NODES:
                break
        active.discard(key)
        sizes[key] = total
        return total

    return size(node)


def load_yaml(text: str, what: str) -> Any:
    """`yaml.safe_load(text)`, refused (`YAMLLimitError`, or `yaml.YAMLError` for bad YAML) when `text` is
    over `MAX_BYTES`, expands to over `MAX_NODES` nodes, or nests deeper than the parser can follow."""
    if len(text) > MAX_BYTES:
        raise YAMLLimitError(f"{what}: {len(text)} characters of YAML, more than a recipe can hold ({MAX_BYTES})")
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        if _expanded_size(node, what) > MAX_NODES:
            raise YAMLLimitError(f"{what}: its YAML aliases expand to more than {MAX_NODES} values")
        return loader.construct_document(node)
    except RecursionError:
        raise YAMLLimitError(f"{what}: YAML nested too deeply") from None
    finally:
        loader.dispose()


def yaml_problem(error: yaml.YAMLError) -> str:
    """The first line of a YAML error (PyYAML adds the position and a quote of the text below it)."""
    text = str(error).splitlines()[0] if str(error) else type(error).__name__
    return text[:200]


_REPR = reprlib.Repr()  # (keyword arguments only from Python 3.12)
for _name, _value in (("maxlevel", 3), ("maxtuple", 4), ("maxlist", 4), ("maxdict", 4), ("maxset", 4),
                      ("maxstring", 60), ("maxlong", 40), ("maxother", 60)):
    setattr(_REPR, _name, _value)


def shown(value: Any, limit: int = 120) -> str:
    """`repr(value)` as an error line shows it: at most a few items per level, at most `limit` characters."""
    text = _REPR.repr(value)
    return text if len(text) <= limit else text[:limit - 1] + "…"


def parse_overrides(items: list[str] | None) -> dict:
    """`key=value` strings → dict, values parsed as YAML (`scales=[256,64]`, `use_cls=false`), bounded
    (`load_yaml`): no Python tags, no alias bombs."""
    result = {}
    for item in items or []:
        if "=" not in item:
            raise ValueError(f"override '{item}' is not of the form key=value")
        key, value = item.split("=", 1)
        try:
            result[key.strip()] = load_yaml(value, f"override '{key.strip()}'")
        except yaml.YAMLError as error:  # e.g. a !!python/... tag: refused, never built
            raise ValueError(f"override '{key.strip()}' is not a plain YAML value: {yaml_problem(error)}") from None
    return result
