"""lrbench-plugin-sr: super-resolution backends as an input-side method, SR quality metrics, SR4IR training."""

__version__ = "0.2.0"
