"""Token layout, parameter counts, initial values, identity at zero, and where tokens enter the network."""

from __future__ import annotations

import pytest
import torch
from lrbench_lrtk0.tokens import TokenInjector, UnsupportedModelError, find_vit, make_tokens
from lrtk0_testing import IMAGE_SIZE, LAYERS, PATCH, WIDTH, TinyEvaAdapter, tiny_clip
from torch import nn

P = (IMAGE_SIZE // PATCH) ** 2


def test_layout_of_open_clip_vit(adapter):
    lay = find_vit(adapter.module)
    assert (len(lay.blocks), lay.num_patches, lay.dim, lay.num_prefix) == (LAYERS, P, WIDTH, 1)
    assert lay.family == "open_clip"


@pytest.mark.parametrize(
    "start_block,patch_token,expected_sets",
    [(0, True, LAYERS + 1), (0, False, LAYERS), (1, True, LAYERS - 1), (2, False, LAYERS - 2)],
)
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


def test_authors_initial_values_per_family():
    """open_clip ViT-B/16 (LR0.FM's OpenCLIP / MetaCLIP code): normal std 0.01 after patchification, 0.02 per block;
    EVA-02 (timm Eva): trunc_normal std 0.02 everywhere; VPT prompts trunc_normal 0.02. Seeded: same seed, same tokens."""
    import open_clip

    lay = find_vit(open_clip.create_model("ViT-B-16", device="meta"))
    tokens = make_tokens(lay, init="authors", seed=0)
    assert tokens.patch.std().item() == pytest.approx(0.01, rel=0.01)  # 150,528 draws: 1 % is ~4 standard errors
    assert tokens.blocks.std().item() == pytest.approx(0.02, rel=0.01)
    assert abs(tokens.blocks.mean().item()) < 1e-4
    assert torch.equal(make_tokens(lay, init="authors", seed=0).blocks, tokens.blocks)
    assert not torch.equal(make_tokens(lay, init="authors", seed=1).blocks, tokens.blocks)
    eva = find_vit(TinyEvaAdapter().module)
    t = make_tokens(eva, init="authors", seed=0)
    both = torch.cat([t.patch.flatten(), t.blocks.flatten()])  # 3 x 4 x 192 = 2,304 draws: 5 % is ~3.4 s.e.
    assert both.std().item() == pytest.approx(0.02, rel=0.05) and both.abs().max() < 2  # timm's bounds are +-2
    prompts = make_tokens(lay, "vpt", init="authors", seed=0).prompts
    assert prompts.shape == (50, 768) and prompts.std().item() == pytest.approx(0.02, rel=0.03)
    assert make_tokens(lay, init="zeros").blocks.abs().sum() == 0


def _record_inputs(modules, into):
    return [
        m.register_forward_pre_hook(lambda _, a, i=i: into.append((i, a[0].clone()))) for i, m in enumerate(modules)
    ]


def test_vpt_prompts_enter_with_the_class_position_embedding_before_the_pre_norm(adapter, images):
    """As the authors' EVA VPT: 50 prompts concatenated after the class token where the position embedding is added,
    each carrying the class token's position embedding; the sequence is 50 longer in every block and nowhere else."""
    lay = find_vit(adapter.module)
    tokens = make_tokens(lay, "vpt", init="authors")
    assert sum(p.numel() for p in tokens.parameters()) == 50 * WIDTH
    visual = adapter.module.visual
    base_inputs: list = []
    handles = _record_inputs([visual.ln_pre, *lay.blocks], base_inputs)
    base = adapter.encode_image(images)
    for h in handles:
        h.remove()
    injector = TokenInjector(lay, tokens)
    inputs: list = []
    _record_inputs([visual.ln_pre, *lay.blocks], inputs)  # after the injector's hooks: what each module really gets
    outputs: list = []
    lay.blocks[-1].register_forward_hook(lambda m, a, o: outputs.append(o.shape[1]))
    with injector.active():
        out = adapter.encode_image(images)
    L = P + 1
    assert [x.shape[1] for _, x in base_inputs] == [L] * (LAYERS + 1)
    assert [x.shape[1] for _, x in inputs] == [L + 50] * (LAYERS + 1)
    assert outputs == [L]  # prompts removed after the last block: pooling sees the base token set
    x, x0 = inputs[0][1], base_inputs[0][1]  # ln_pre's input: class + position, prompts, patches + position
    assert torch.equal(x[:, 0], x0[:, 0]) and torch.equal(x[:, 51:], x0[:, 1:])
    expected = (tokens.prompts + visual.positional_embedding[0]).detach().expand(len(images), -1, -1)
    torch.testing.assert_close(x[:, 1:51], expected)
    assert out.shape == base.shape and not torch.allclose(out, base)


def test_eva02_lr_tokens_and_vpt_with_rotary_embeddings():
    """EVA-02 (Table 4's model family): LR tokens fit and are exact at zero; VPT runs with its prompts excluded from the
    rotary embedding: they count as prefix tokens while active (restored after), so permuting the prompts changes
    nothing (no position reaches them but the class token's), and they carry the class position embedding."""
    model = TinyEvaAdapter()
    trunk = model.module.trunk
    lay = find_vit(model.module)
    assert (len(lay.blocks), lay.num_patches, lay.dim, lay.num_prefix, len(lay.rope_attns)) == (2, 4, 192, 1, 2)
    x = torch.randn(2, 3, 28, 28)
    base = model.encode_image(x)
    tokens = make_tokens(lay)
    assert sum(p.numel() for p in tokens.parameters()) == 3 * 4 * 192
    injector = TokenInjector(lay, tokens)
    with injector.active():
        assert torch.equal(model.encode_image(x), base)
        with torch.no_grad():
            tokens.blocks[1].normal_()
        assert not torch.allclose(model.encode_image(x), base)
    injector.remove()

    prompts = make_tokens(lay, "vpt", init="authors", num_prompts=5)
    vpt = TokenInjector(lay, prompts)
    seen: list = []
    _record_inputs([trunk.blocks[0]], seen)
    with vpt.active():
        assert [a.num_prefix_tokens for a in lay.rope_attns] == [6, 6]
        out = model.encode_image(x)
        with torch.no_grad():
            prompts.prompts.copy_(prompts.prompts.flip(0))
        permuted = model.encode_image(x)
        with torch.no_grad():
            prompts.prompts.copy_(prompts.prompts.flip(0))
    assert [a.num_prefix_tokens for a in lay.rope_attns] == [1, 1]
    assert torch.equal(model.encode_image(x), base)  # hooks idle outside active()
    assert not torch.allclose(out, base)
    torch.testing.assert_close(permuted, out, rtol=1e-5, atol=1e-5)
    block_in = seen[0][1]
    assert block_in.shape[1] == 1 + 5 + 4
    torch.testing.assert_close(block_in[:, 1:6], (prompts.prompts + trunk.pos_embed[0, 0]).detach().expand(2, -1, -1))


def test_errors_name_the_problem(adapter, images):
    with pytest.raises(UnsupportedModelError, match="vision transformer"):
        find_vit(nn.Sequential(nn.Conv2d(3, 8, 3)))
    lay = find_vit(adapter.module)
    with pytest.raises(Exception, match="start_block"):
        make_tokens(lay, start_block=LAYERS)
    other = find_vit(tiny_clip(image_size=48).visual)
    with pytest.raises(Exception, match="do not fit"):
        TokenInjector(lay, make_tokens(other))
