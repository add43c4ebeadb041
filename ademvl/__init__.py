"""ademvl: ADEM-VL and its baselines on frozen Hugging Face backbones."""
__version__ = "0.1.0"

from .auto import register as _register_with_transformers

_register_with_transformers()
