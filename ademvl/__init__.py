"""ademvl: ADEM-VL and its baselines on frozen Hugging Face backbones.

Importing the package stays light (no torch, no transformers); it arranges that transformers' Auto
classes and `pipeline` know ademvl from the moment they are imported (`ademvl.auto`).
"""
__version__ = "0.1.0"

from .auto import register_when_transformers_loads as _register_when_transformers_loads

_register_when_transformers_loads()
