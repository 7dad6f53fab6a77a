"""lrbench plugin for low-resolution face recognition (Knoche et al. 2022; the LogExp / MAug paper)."""

__version__ = "0.1.0"
