"""``python -m lrbench`` (and ``torchrun -m lrbench run ...``)."""

from .cli import main

main()
