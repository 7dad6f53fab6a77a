"""Token layout, parameter counts, identity at zero, and where tokens enter the network."""
from __future__ import annotations

import pytest
import torch
from lrtk0_testing import IMAGE_SIZE, LAYERS, PATCH, WIDTH, tiny_clip
from torch import nn

from lrbench_lrtk0.tokens import TokenInjector, UnsupportedModelError, find_vit, make_tokens

P = (IMAGE_SIZE // PATCH) ** 2


def test_layout_of_open_clip_vit(adapter):
    lay = find_vit(adapter.module)
    assert (len(lay.blocks), lay.num_patches, lay.dim, lay.num_prefix) == (LAYERS, P, WIDTH, 1)
    assert lay.family == "open_clip"


@pytest.mark.parametrize("start_block,patch_token,expected_sets", [(0, True, LAYERS + 1), (0, False, LAYERS),
                                                                   (1, True, LAYERS - 1), (2, False, LAYERS - 2)])
def test_parameter_count(adapter, start_block, patch_token, expected_sets):
    tokens = make_tokens(find_vit(adapter.module), "add", start_block, patch_token)
    assert sum(p.numel() for p in tokens.parameters()) == expected_sets * P * WIDTH


def test_parameter_count_of_vit_b16_matches_paper_table2():
    """OpenCLIP / MetaCLIP ViT-B/16: 149.6M parameters, +LR-TK0 151.6M (LR0.FM Table 2): 13 x 196 x 768 tokens."""
    import open_clip
    model = open_clip.create_model("ViT-B-16", device="meta")
    base = sum(p.numel() for p in model.parameters())
    tokens = make_tokens(find_vit(model))
    n = sum(p.numel() for p in tokens.parameters())
    assert n == 13 * 196 * 768
    assert round(base / 1e6, 1) == 149.6 and round((base + n) / 1e6, 1) == 151.6


def test_zero_tokens_give_base_outputs_exactly(adapter, images):
    base = adapter.encode_image(images)
    injector = TokenInjector(find_vit(adapter.module), make_tokens(find_vit(adapter.module)))
    with injector.active():
        out = adapter.encode_image(images)
    assert torch.equal(out, base)


def test_tokens_act_only_inside_active_and_only_on_patch_tokens(adapter, images):
    lay = find_vit(adapter.module)
    tokens = make_tokens(lay)
    with torch.no_grad():
        tokens.blocks[0].normal_()
    seen = {}
    lay.blocks[0].register_forward_pre_hook(lambda m, a: seen.__setitem__("in", a[0].clone()))
    base = adapter.encode_image(images)
    base_in = seen["in"]
    injector = TokenInjector(lay, tokens)
    assert torch.equal(adapter.encode_image(images), base)  # inactive: the module is the untouched teacher
    with injector.active():
        out = adapter.encode_image(images)
    # hooks run in registration order: the recorder saw block 0's input before the token was added
    assert not torch.allclose(out, base)
    injector.remove()
    assert torch.equal(adapter.encode_image(images), base)
    # the class token of block 0's input is untouched, the patch tokens shifted by exactly the token
    injector2 = TokenInjector(lay, tokens)
    got = {}
    lay.blocks[0].register_forward_pre_hook(lambda m, a: got.__setitem__("in", a[0].clone()))
    with injector2.active():
        adapter.encode_image(images)
    assert torch.equal(got["in"][:, 0], base_in[:, 0])
    torch.testing.assert_close(got["in"][:, 1:] - base_in[:, 1:], tokens.blocks[0].detach().expand_as(base_in[:, 1:]))


def test_patch_token_enters_before_the_pre_norm(adapter, images):
    """The after-patchification token is added before ln_pre: adding a constant c to every patch token there is
    absorbed by the LayerNorm only if c is constant per token, so a per-channel ramp must change the output."""
    lay = find_vit(adapter.module)
    tokens = make_tokens(lay)
    with torch.no_grad():
        tokens.patch.copy_(torch.linspace(-1, 1, WIDTH).expand(P, WIDTH))
    captured = {}
    adapter.module.visual.ln_pre.register_forward_pre_hook(lambda m, a: captured.__setitem__("x", a[0].clone()))
    base = adapter.encode_image(images)
    before = captured["x"]
    injector = TokenInjector(lay, tokens)
    with injector.active():
        out = adapter.encode_image(images)
    torch.testing.assert_close(captured["x"][:, 1:] - before[:, 1:], tokens.patch.detach().expand_as(before[:, 1:]))
    assert torch.equal(captured["x"][:, 0], before[:, 0])
    assert not torch.allclose(out, base)


def test_vpt_adds_50_tokens_before_the_first_block_only(adapter, images):
    lay = find_vit(adapter.module)
    tokens = make_tokens(lay, "vpt")
    assert sum(p.numel() for p in tokens.parameters()) == 50 * WIDTH

    def record(into):
        return [b.register_forward_pre_hook(lambda m, a, i=i: into.append((i, a[0].clone())))
                for i, b in enumerate(lay.blocks)]

    base_inputs: list = []
    handles = record(base_inputs)
    base = adapter.encode_image(images)
    for h in handles:
        h.remove()
    injector = TokenInjector(lay, tokens)
    inputs: list = []
    record(inputs)  # registered after the injector's hooks: sees the sequence each block really gets
    outputs: list = []
    lay.blocks[-1].register_forward_hook(lambda m, a, o: outputs.append(o.shape[1]))
    with injector.active():
        out = adapter.encode_image(images)
    L = P + 1
    assert [x.shape[1] for _, x in base_inputs] == [L] * LAYERS
    assert [x.shape[1] for _, x in inputs] == [L + 50] * LAYERS
    assert outputs == [L]  # prompts removed after the last block: pooling sees the base token set
    x, x0 = inputs[0][1], base_inputs[0][1]
    assert torch.equal(x[:, 0], x0[:, 0]) and torch.equal(x[:, 51:], x0[:, 1:])  # concatenated, nothing added
    torch.testing.assert_close(x[:, 1:51], tokens.prompts.detach().expand(len(images), -1, -1))
    assert out.shape == base.shape and not torch.allclose(out, base)


def test_eva_style_timm_trunk():
    """timm Eva (EVA-CLIP towers inside open_clip): tokens fit, zero tokens are exact, VPT is refused (RoPE)."""
    from timm.models.eva import Eva
    torch.manual_seed(0)
    visual = nn.Module()
    visual.trunk = Eva(img_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=2, num_classes=0,
                       use_rot_pos_emb=True, ref_feat_shape=(4, 4)).eval()
    lay = find_vit(visual)
    assert (len(lay.blocks), lay.num_patches, lay.dim, lay.num_prefix, lay.rope) == (2, 16, 32, 1, True)
    x = torch.randn(2, 3, 32, 32)
    base = visual.trunk(x)
    tokens = make_tokens(lay)
    assert sum(p.numel() for p in tokens.parameters()) == 3 * 16 * 32
    injector = TokenInjector(lay, tokens)
    with injector.active():
        assert torch.equal(visual.trunk(x), base)
        with torch.no_grad():
            tokens.blocks[1].normal_()
        assert not torch.allclose(visual.trunk(x), base)
    with pytest.raises(UnsupportedModelError, match="rotary"):
        make_tokens(lay, "vpt")


def test_errors_name_the_problem(adapter, images):
    with pytest.raises(UnsupportedModelError, match="vision transformer"):
        find_vit(nn.Sequential(nn.Conv2d(3, 8, 3)))
    lay = find_vit(adapter.module)
    with pytest.raises(Exception, match="start_block"):
        make_tokens(lay, start_block=LAYERS)
    other = find_vit(tiny_clip(image_size=48).visual)
    with pytest.raises(Exception, match="do not fit"):
        TokenInjector(lay, make_tokens(other))
