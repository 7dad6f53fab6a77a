"""Where LR tokens enter, block by block, for each ``start_block``; and the distillation loss against a hand-written
sum of CLIP losses (HR term included)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from lrbench_lrtk0.tokens import (
    TokenInjector,
    TokenSet,
    ViTLayout,
    find_vit,
    initialise,
    make_tokens,
    tokens_from_tensors,
)
from lrbench_lrtk0.train import distill_loss
from lrtk0_testing import IMAGE_SIZE, LAYERS, PATCH, WIDTH, tiny_clip
from torch import nn
from torchvision.transforms import functional as TF

P = (IMAGE_SIZE // PATCH) ** 2


def _distinct(tokens) -> None:
    """Every token tensor different and non-zero: block j's tokens are (j + 1) x a ramp, the patch token -ramp."""
    ramp = torch.linspace(-0.5, 0.5, P * WIDTH).view(P, WIDTH)
    with torch.no_grad():
        for j in range(tokens.blocks.shape[0]):
            tokens.blocks[j].copy_((j + 1) * ramp)
        if tokens.patch is not None:
            tokens.patch.copy_(-ramp)


@pytest.mark.parametrize("start_block", range(LAYERS))
@pytest.mark.parametrize("patch_token", [True, False])
def test_each_block_gets_its_own_token_from_start_block_on(adapter, images, start_block, patch_token):
    """In one forward pass, what each block receives minus what reached it: 0 before ``start_block``, then the
    tokens' row ``i - start_block``, on the patch positions only; the after-patchification token only when
    ``start_block == 0`` and ``patch_token``."""
    lay = find_vit(adapter.module)
    tokens = make_tokens(lay, "add", start_block, patch_token)
    _distinct(tokens)
    sites = [lay.embed_site, *lay.blocks]
    seen: dict[str, dict[int, torch.Tensor]] = {"before": {}, "after": {}}

    def recorder(when):
        return [
            m.register_forward_pre_hook(lambda m, a, i=i: seen[when].__setitem__(i, a[0].clone()))
            for i, m in enumerate(sites)
        ]

    recorder("before")  # registered before the injector's hooks: sees what reached the site
    injector = TokenInjector(lay, tokens)
    recorder("after")  # after them: sees what the site really gets
    with injector.active():
        adapter.encode_image(images)
    for i, site in enumerate(sites):
        delta = seen["after"][i] - seen["before"][i]
        if not lay.batch_first and i > 0:
            delta = delta.transpose(0, 1)
        assert torch.equal(delta[:, 0], torch.zeros_like(delta[:, 0])), f"class token changed at site {i}"
        block = i - 1
        if i == 0:
            want = tokens.patch if (start_block == 0 and patch_token) else None
        else:
            want = tokens.blocks[block - start_block] if block >= start_block else None
        if want is None:
            assert torch.equal(delta, torch.zeros_like(delta)), f"site {i} got a token"
        else:
            torch.testing.assert_close(delta[:, 1:], want.detach().expand_as(delta[:, 1:]), rtol=0, atol=1e-6)


def _clip_loss(a: torch.Tensor, b: torch.Tensor, scale: float) -> torch.Tensor:
    """The symmetric CLIP loss, written out: mean of the two cross-entropies of scale * a @ b.T with the diagonal."""
    logits = scale * a @ b.T
    target = torch.arange(len(a))
    return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2


def test_distill_loss_is_hr_term_plus_one_term_per_lr_size(adapter):
    lay = find_vit(adapter.module)
    tokens = make_tokens(lay, "add", 1, True)
    _distinct(tokens)
    with torch.no_grad():
        tokens.blocks.mul_(0.2)
    injector = TokenInjector(lay, tokens)
    torch.manual_seed(2)
    hr = torch.rand(5, 3, IMAGE_SIZE, IMAGE_SIZE)
    sizes, scale = [6, 12, 20], 7.0

    def embed(x, student):
        x = adapter.prepare_tensor(x)
        if student:
            with injector.active():
                return F.normalize(adapter.encode_image(x), dim=-1)
        return F.normalize(adapter.encode_image(x), dim=-1)

    def lr_view(size):  # an LR copy back at the model's input size (how the trainer builds its views)
        small = TF.resize(hr, [size, size], interpolation=TF.InterpolationMode.BICUBIC, antialias=True)
        return TF.resize(small, [IMAGE_SIZE, IMAGE_SIZE], interpolation=TF.InterpolationMode.BICUBIC).clamp(0, 1)

    views = torch.stack([hr] + [lr_view(s) for s in sizes], dim=1)  # (B, V, 3, S, S), view 0 the HR one
    with torch.no_grad():
        teacher = embed(hr, False)
        terms = [_clip_loss(embed(views[:, v], True), teacher, scale) for v in range(views.shape[1])]
        got = distill_loss(adapter, injector, views, scale)
    assert float(terms[0]) > 1e-3  # the tokens move the HR student away from the teacher: the HR term counts
    assert float(got) == pytest.approx(float(sum(terms)), rel=1e-5)


def test_initialise_draws_every_tensor_in_place(adapter):
    lay = find_vit(adapter.module)
    tokens = make_tokens(lay, init="authors", seed=0)
    assert [name for name, _ in tokens.named_parameters()] == ["patch", "blocks"]
    assert all(p.abs().min() > 0 for p in tokens.parameters())  # every entry drawn, none left at zero
    initialise(tokens, lay, "zeros")  # back to the teacher: every tensor, not only the first
    assert all(p.abs().sum() == 0 for p in tokens.parameters())


def test_non_square_input_counts_rows_times_columns_of_patches():
    lay = find_vit(tiny_clip(image_size=(32, 48)).visual)  # a 4 x 6 grid of 8-px patches
    assert lay.num_patches == 24 and make_tokens(lay).blocks.shape == (LAYERS, 24, WIDTH)


@pytest.mark.parametrize("mode,expected", [("add", (4, 0)), ("vpt", (0, 5))])
def test_token_config_round_trip(mode, expected):
    lay = ViTLayout(nn.Identity(), (nn.Identity(),) * 3, 1, 4, 6, True, "open_clip")
    tokens = make_tokens(lay, mode, start_block=1, patch_token=True, num_prompts=5, init="authors", seed=3)
    cfg = tokens.config()
    assert cfg == {
        "mode": mode,
        "num_blocks": 3,
        "start_block": 1,
        "num_patches": 4,
        "dim": 6,
        "patch_token": False,  # no token after patchification when the tokens start at block 1
        "num_prompts": expected[1],
    }
    back = tokens_from_tensors(tokens.tensors(), cfg)
    assert back.config() == cfg
    assert all(torch.equal(a, b) for a, b in zip(back.parameters(), tokens.parameters()))
    if mode == "add":
        assert tokens.blocks.shape == (2, expected[0], 6)
    assert TokenSet("vpt", 3, 4, 6).prompts.shape == (50, 6)  # the authors' 50 VPT prompts unless told


def test_sequence_first_blocks_get_tokens_on_their_patch_rows():
    """Old open_clip transformers take (L, B, D): the tokens go to rows 1.. of the sequence axis, and VPT prompts are
    cut from the same axis after the last block."""
    lay = ViTLayout(nn.Identity(), (nn.Identity(), nn.Identity()), 1, 3, 2, False, "open_clip")
    tokens = make_tokens(lay)
    with torch.no_grad():
        tokens.blocks.copy_(torch.arange(12.0).view(2, 3, 2))
    injector = TokenInjector(lay, tokens)
    x = torch.randn(4, 5, 2)  # 1 class + 3 patch tokens, batch 5, dim 2
    with injector.active():
        y = lay.blocks[1](lay.blocks[0](x))
    assert torch.equal(y[0], x[0])
    torch.testing.assert_close(y[1:], x[1:] + (tokens.blocks[0] + tokens.blocks[1]).detach()[:, None, :])

    vpt = TokenInjector(lay, make_tokens(lay, "vpt", num_prompts=2, init="authors"))
    with vpt.active():
        seq = lay.embed_site(x.transpose(0, 1))  # the embedding site is batch-first in every family
        assert seq.shape == (5, 6, 2)
        out = lay.blocks[1](seq.transpose(0, 1))  # (L + 2, B, D) into the last block, prompts cut after it
    assert torch.equal(out, x)


class _MaskedBlock(nn.Module):
    """A block with a second positional input (an attention mask in real towers): x + mask."""

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return x + mask


def test_block_hooks_keep_the_other_inputs_and_the_default_seed_is_zero():
    lay = ViTLayout(nn.Identity(), (_MaskedBlock(),), 1, 3, 2, True, "open_clip")
    tokens = make_tokens(lay, init="authors")
    assert torch.equal(tokens.blocks, make_tokens(lay, init="authors", seed=0).blocks)
    injector = TokenInjector(lay, tokens)
    x, mask = torch.randn(2, 4, 2), torch.full((2, 4, 2), 10.0)
    with injector.active():
        y = lay.blocks[0](x, mask)
    torch.testing.assert_close(y[:, 0], x[:, 0] + 10)
    torch.testing.assert_close(y[:, 1:], x[:, 1:] + tokens.blocks[0].detach() + 10)
