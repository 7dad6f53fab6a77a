"""One intra-op thread: the tests' tensors are tiny, and on a shared CPU OpenMP threads spin-waiting on each other made
them up to ten times slower."""

import torch

torch.set_num_threads(1)
