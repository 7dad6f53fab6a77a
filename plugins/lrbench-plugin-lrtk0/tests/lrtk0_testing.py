"""Tiny random-init open_clip models and a minimal zero-shot adapter: everything runs offline in seconds."""

from __future__ import annotations

import open_clip
import pytest
import torch
from open_clip.model import CLIP, CLIPTextCfg, CLIPVisionCfg

from lrbench.models import ModelAdapter, Preprocess

IMAGE_SIZE, PATCH, LAYERS, WIDTH, CONTEXT = 32, 8, 3, 32, 16

# tiny models gain nothing from intra-op threads, and on a shared 2-core machine they thrash (10x slower measured)
torch.set_num_threads(1)


def tiny_clip(seed: int = 0, image_size: int = IMAGE_SIZE) -> CLIP:
    torch.manual_seed(seed)
    model = CLIP(
        embed_dim=16,
        vision_cfg=CLIPVisionCfg(layers=LAYERS, width=WIDTH, head_width=16, patch_size=PATCH, image_size=image_size),
        text_cfg=CLIPTextCfg(context_length=CONTEXT, vocab_size=49408, width=32, heads=2, layers=1),
    )
    return model.eval()


class TinyClipAdapter(ModelAdapter):
    """The smallest honest zero-shot adapter around an open_clip CLIP (what the openclip plugin does for real)."""

    kind = "zero-shot"

    def __init__(self, seed: int = 0, image_size: int = IMAGE_SIZE):
        self.module = tiny_clip(seed, image_size)
        self.preprocess = Preprocess(image_size=image_size)
        self.logit_scale = float(self.module.logit_scale.detach().exp())
        self.seed, self.device = seed, torch.device("cpu")

    def identity(self):
        return {"family": "test-tiny-clip", "seed": self.seed, "image_size": self.preprocess.image_size}

    def encode_image(self, x):
        return self.module.encode_image(x)

    def encode_text(self, texts):
        return self.module.encode_text(open_clip.tokenize(texts, context_length=CONTEXT).to(self.device))


class TinyEvaAdapter(ModelAdapter):
    """Image side of an EVA-02 CLIP tower as open_clip builds it for EVA02-B/16 (timm ``Eva``: rotary embeddings,
    SwiGLU, class-token pooling), cut to 2 blocks at 28 px with random weights: the paper's Table 4 architecture."""

    kind = "zero-shot"

    def __init__(self, seed: int = 0):
        from timm.models.eva import eva02_tiny_patch14_224

        torch.manual_seed(seed)
        self.module = torch.nn.Module()
        self.module.trunk = eva02_tiny_patch14_224(
            pretrained=False, img_size=28, depth=2, ref_feat_shape=(2, 2), num_classes=0, global_pool="token"
        ).eval()
        self.preprocess = Preprocess(image_size=28)
        self.seed, self.device = seed, torch.device("cpu")

    def identity(self):
        return {"family": "test-tiny-eva02", "seed": self.seed}

    def encode_image(self, x):
        return self.module.trunk(x)


@pytest.fixture
def adapter() -> TinyClipAdapter:
    return TinyClipAdapter()


@pytest.fixture
def images() -> torch.Tensor:
    """A normalized input batch at the tiny model's size."""
    torch.manual_seed(1)
    return torch.randn(4, 3, IMAGE_SIZE, IMAGE_SIZE)
