"""`ademvl compare`: methods and ADEM-VL ablations on learning curves over seeds, through the demo's pipeline."""
from .run import CompareConfig, run_compare
from .variants import GROUPS, VARIANTS, parse_variants

__all__ = ["CompareConfig", "run_compare", "GROUPS", "VARIANTS", "parse_variants"]
