"""ademvl: ADEM-VL and its baselines on frozen Hugging Face backbones."""
__version__ = "0.1.0"
