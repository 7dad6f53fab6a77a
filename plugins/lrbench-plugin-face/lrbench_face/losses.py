"""Margin softmax heads (ArcFace, CosFace) and the feature distances the training strategies pull HR/LR pairs with.

Distances act on L2-normalised embeddings x, y in R^D, per sample, averaged over the batch:

- ``cosine``: 1 - cos(x, y)  (Knoche et al. eq. 6, weight 25 in ST)
- ``logexp``: 1/(p D) log(1 + sum_i (exp(|x_i - y_i|^p) - 1))  (the LogExp paper's README formula, per sample)
- ``l1`` / ``l2``: the L_p family with the same scaling, 1/(p D) sum_i |x_i - y_i|^p, so that with a single non-zero
  error dimension LogExp's gradient equals L_p's and the difference comes from the other dimensions (paper Fig. 4).
"""

from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn


class MarginHead(nn.Module):
    """Normalised linear classifier with an additive margin on the target class; ``forward`` returns scaled logits."""

    def __init__(self, embedding_size: int, num_classes: int, s: float, m: float):
        super().__init__()
        self.s, self.m = float(s), float(m)
        self.weight = nn.Parameter(torch.empty(num_classes, embedding_size))
        nn.init.normal_(self.weight, std=0.01)

    def cosine(self, emb: torch.Tensor) -> torch.Tensor:
        return F.linear(F.normalize(emb.float(), dim=1), F.normalize(self.weight.float(), dim=1)).clamp(-1, 1)

    def target_logit(self, cos_t: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, emb: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        cos = self.cosine(emb)
        target = cos.gather(1, labels[:, None])
        cos = cos.scatter(1, labels[:, None], self.target_logit(target))
        return self.s * cos


class ArcFaceHead(MarginHead):
    """ArcFace: target logit s * cos(theta + m); past theta = pi - m it falls back to cos(theta) - m sin(m) (keeps the
    logit monotonic in theta, as the insightface implementation does)."""

    def __init__(self, embedding_size: int, num_classes: int, s: float = 64.0, m: float = 0.5):
        super().__init__(embedding_size, num_classes, s, m)

    def target_logit(self, cos_t: torch.Tensor) -> torch.Tensor:
        sin_t = torch.sqrt((1.0 - cos_t * cos_t).clamp_min(1e-9))
        phi = cos_t * math.cos(self.m) - sin_t * math.sin(self.m)
        return torch.where(cos_t > math.cos(math.pi - self.m), phi, cos_t - math.sin(math.pi - self.m) * self.m)


class CosFaceHead(MarginHead):
    """CosFace: target logit s * (cos(theta) - m); the LogExp paper uses s = 48, m = 0.4."""

    def __init__(self, embedding_size: int, num_classes: int, s: float = 48.0, m: float = 0.4):
        super().__init__(embedding_size, num_classes, s, m)

    def target_logit(self, cos_t: torch.Tensor) -> torch.Tensor:
        return cos_t - self.m


HEADS = {"arcface": ArcFaceHead, "cosface": CosFaceHead}


def cosine_distance_loss(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return (1.0 - F.cosine_similarity(x.float(), y.float(), dim=1)).mean()


def logexp_loss(x: torch.Tensor, y: torch.Tensor, p: float = 1.0) -> torch.Tensor:
    """LogExp on normalised embeddings, per sample then averaged (log1p/expm1 keep small errors exact)."""
    x, y = F.normalize(x.float(), dim=1), F.normalize(y.float(), dim=1)
    d = x.shape[1]
    per_sample = torch.log1p(torch.expm1((x - y).abs().pow(p)).sum(dim=1)) / (p * d)
    return per_sample.mean()


def lp_loss(x: torch.Tensor, y: torch.Tensor, p: float) -> torch.Tensor:
    x, y = F.normalize(x.float(), dim=1), F.normalize(y.float(), dim=1)
    return ((x - y).abs().pow(p).sum(dim=1) / (p * x.shape[1])).mean()


def distance_fn(name: str, p: float = 1.0) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """The feature distance by name: cosine, logexp (with exponent p), l1, l2."""
    if name == "cosine":
        return cosine_distance_loss
    if name == "logexp":
        return lambda x, y: logexp_loss(x, y, p)
    if name == "l1":
        return lambda x, y: lp_loss(x, y, 1.0)
    if name == "l2":
        return lambda x, y: lp_loss(x, y, 2.0)
    raise ValueError(f"unknown distance {name!r}; choices: cosine, logexp, l1, l2")
