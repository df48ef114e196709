"""minillm: a compact transformer for social-media posts, written to be read.

The public entry points are `ModelConfig` and `MiniLM` (see `minillm/model.py`); the
NumPy oracle is `minillm.reference`.
"""

from minillm.model import MiniLM, ModelConfig

__all__ = ["MiniLM", "ModelConfig"]
__version__ = "0.1.0"
