"""The offline demo: easy-VQA on SmolLM2-135M + a tiny CLIP tower, every method against the no-image floor."""
from .report import format_table, plot_results
from .run import DemoConfig, demo_method_config, run_demo

__all__ = ["DemoConfig", "run_demo", "demo_method_config", "format_table", "plot_results"]
