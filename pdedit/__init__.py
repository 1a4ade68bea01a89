"""pdedit: zero-shot video editing and sketch-conditioned video generation with PixelDance.

The public API (what a notebook imports) is re-exported here.
"""

from pdedit.errors import BadInput, MissingModel, PdeditError, Unsupported

__version__ = "0.1.0"

__all__ = ["PdeditError", "BadInput", "MissingModel", "Unsupported", "__version__"]
