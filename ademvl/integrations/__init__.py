"""Running a trained model outside ademvl: a plain chat wrapper and adapters for external harnesses.

`AdemVLChat` has no optional dependency. The harness adapters
(`lmms_eval_model`, `vlmevalkit_model`) import their harness only when their
class is first requested and say which pip package is missing otherwise.
"""
from .chat import INSTRUCT_TEMPLATE, AdemVLChat

__all__ = ["AdemVLChat", "INSTRUCT_TEMPLATE"]
