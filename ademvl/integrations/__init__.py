"""Running a trained model outside ademvl: a plain chat wrapper and adapters for external harnesses.

`AdemVLChat` has no optional dependency. The harness adapters
(`lmms_eval_model`, `vlmevalkit_model`) import their harness only when their
class is first requested and say how to install it otherwise. Nothing heavy is
imported with this package itself: lmms-eval imports
`ademvl.integrations.lmms_eval_model` at start-up (the `lmms_eval.models` entry
point) whatever model it runs.
"""
__all__ = ["AdemVLChat", "INSTRUCT_TEMPLATE", "conversation_prompt"]


def __getattr__(name):
    if name in __all__:
        from . import chat

        return getattr(chat, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
