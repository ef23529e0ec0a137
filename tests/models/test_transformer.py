import copy

import pytest
import torch
from diffusers import WanTransformer3DModel

from uvigu.models.transformer import UniViGUTransformer3DModel, place_features


def tiny_wan(seed: int = 0) -> WanTransformer3DModel:
    torch.manual_seed(seed)
    return WanTransformer3DModel(
        patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=12, in_channels=16, out_channels=16,
        text_dim=32, freq_dim=256, ffn_dim=32, num_layers=2, cross_attn_norm=True,
        qk_norm="rms_norm_across_heads", rope_max_seq_len=32,
    ).eval()


@pytest.fixture(scope="module")
def models():
    wan = tiny_wan()
    return wan, UniViGUTransformer3DModel.from_wan(wan, vocab_size=50).eval()


def inputs(seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(2, 16, 3, 8, 8, generator=g), torch.randn(2, 7, 32, generator=g), torch.tensor([0.3, 0.9])


def test_from_wan_without_text_equals_wan(models):
    wan, uni = models
    x, ctx, sigma = inputs()
    with torch.no_grad():
        ref = wan(x, sigma * 1000, ctx, return_dict=False)[0]
        out = uni(x, torch.zeros(2, 0, dtype=torch.long), sigma, torch.zeros(2), ctx)
    assert out.video_velocity.shape == ref.shape
    assert (out.video_velocity - ref).abs().max() <= 1e-5
    assert out.text_logits.shape == (2, 0, 51)


def test_from_wan_appends_a_mask_id_and_copies_the_video_weights(models):
    wan, uni = models
    assert uni.config.vocab_size == 51 and uni.config.mask_token_id == 50
    for a, b in [(uni.blocks[0].ffn_t, wan.blocks[0].ffn), (uni.time_embedding_t.time_proj, wan.condition_embedder.time_proj)]:
        for pa, pb in zip(a.parameters(), b.parameters()):
            assert torch.equal(pa, pb)
    assert torch.equal(uni.blocks[1].scale_shift_table_t, wan.blocks[1].scale_shift_table)
    assert uni.blocks[0].ffn_t is not uni.blocks[0].ffn
    assert torch.count_nonzero(uni.proj_out_t.weight) == 0  # new text head starts at uniform posteriors


def test_attention_is_shared_between_modalities(models):
    uni = copy.deepcopy(models[1])
    x, ctx, sigma = inputs()
    ids = torch.randint(0, 50, (2, 5), generator=torch.Generator().manual_seed(0))
    torch.nn.init.normal_(uni.proj_out_t.weight, std=0.1)  # a non-zero text head so logits can move
    with torch.no_grad():
        base = uni(x, ids, sigma, torch.zeros(2), ctx)
        other_text = uni(x, (ids + 1) % 50, sigma, torch.zeros(2), ctx)
        other_video = uni(x + 0.5, ids, sigma, torch.zeros(2), ctx)
        without_text = uni(x, ids[:, :0], sigma, torch.zeros(2), ctx)
    assert (base.video_velocity - other_text.video_velocity).abs().max() > 1e-4
    assert (base.video_velocity - without_text.video_velocity).abs().max() > 1e-4
    assert (base.text_logits - other_video.text_logits).abs().max() > 1e-4


def test_padded_text_is_masked_out_as_keys(models):
    _, uni = models
    x, ctx, sigma = inputs()
    ids = torch.randint(0, 50, (2, 6), generator=torch.Generator().manual_seed(0))
    mask = torch.tensor([[True] * 4 + [False] * 2] * 2)
    changed = ids.clone()
    changed[:, 4:] = (changed[:, 4:] + 7) % 50
    with torch.no_grad():
        a = uni(x, ids, sigma, torch.zeros(2), ctx, mask)
        b = uni(x, changed, sigma, torch.zeros(2), ctx, mask)
    assert torch.allclose(a.video_velocity, b.video_velocity, atol=1e-6)
    assert torch.allclose(a.text_logits[:, :4], b.text_logits[:, :4], atol=1e-5)


def test_text_has_its_own_timestep_embedding(models):
    _, uni = models
    x, ctx, sigma = inputs()
    ids = torch.randint(0, 50, (2, 5), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        a = uni(x, ids, sigma, torch.zeros(2), ctx)
        b = uni(x, ids, sigma, torch.ones(2), ctx)
    assert (a.video_velocity - b.video_velocity).abs().max() > 1e-5


def test_shared_ffn_switch():
    wan = tiny_wan()
    shared = UniViGUTransformer3DModel.from_wan(wan, vocab_size=50, shared_ffn=True)
    assert shared.blocks[0].ffn_t is None and shared.blocks[0].text_ffn is shared.blocks[0].ffn
    separate = UniViGUTransformer3DModel.from_wan(wan, vocab_size=50)
    n_shared = sum(p.numel() for p in shared.parameters())
    n_separate = sum(p.numel() for p in separate.parameters())
    ffn = sum(p.numel() for p in wan.blocks[0].ffn.parameters()) * len(wan.blocks)
    assert n_separate - n_shared == ffn


def test_gradient_checkpointing_gives_the_same_gradients(models):
    _, uni = models
    x, ctx, sigma = inputs()
    ids = torch.randint(0, 50, (2, 5), generator=torch.Generator().manual_seed(0))

    def grads(model):
        model.zero_grad()
        out = model(x, ids, sigma, torch.full((2,), 0.5), ctx)
        (out.video_velocity.square().mean() + out.text_logits.square().mean()).backward()
        return [p.grad.clone() for p in model.parameters() if p.grad is not None]

    plain = grads(uni)
    uni.enable_gradient_checkpointing()
    try:
        ckpt = grads(uni)
    finally:
        uni.disable_gradient_checkpointing()
    assert len(plain) == len(ckpt)
    for a, b in zip(plain, ckpt):
        assert torch.allclose(a, b, atol=1e-6)


def test_sample_prediction_reports_a_velocity():
    torch.manual_seed(0)
    model = UniViGUTransformer3DModel(
        patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=8, in_channels=3, out_channels=3,
        text_dim=8, ffn_dim=16, num_layers=1, vocab_size=10, mask_token_id=9, prediction_type="sample",
    ).eval()
    x_t = torch.randn(1, 3, 2, 4, 4)
    with torch.no_grad():
        out = model(x_t, torch.zeros(1, 0, dtype=torch.long), torch.tensor([0.5]), torch.zeros(1), torch.zeros(1, 2, 8))
    # zero-initialised head predicts x̂ = 0, so v = (x_t − 0) / σ
    assert torch.allclose(out.video_velocity, x_t / 0.5, atol=1e-6)
    with pytest.raises(ValueError, match="prediction_type"):
        UniViGUTransformer3DModel(num_layers=1, prediction_type="epsilon")


def small_model(position_features: int = 0, seed: int = 0) -> UniViGUTransformer3DModel:
    torch.manual_seed(seed)
    return UniViGUTransformer3DModel(
        patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=12, in_channels=3, out_channels=3,
        text_dim=8, ffn_dim=16, num_layers=2, vocab_size=10, mask_token_id=9, position_features=position_features,
    ).eval()


def test_place_features_tell_every_token_from_its_mirror_and_end_from_start():
    k = 3
    places = place_features(4, 3, 5, k).reshape(4, 3, 5, 6 * k)
    assert places.shape == (4, 3, 5, 18) and places.abs().max() <= 1.0
    t, h, w = places[..., : 2 * k], places[..., 2 * k: 4 * k], places[..., 4 * k:]
    # each axis's features depend on that axis only
    assert torch.equal(t[:, :1].expand(-1, 3, -1, -1), t) and torch.equal(t[:, :, :1].expand(-1, -1, 5, -1), t)
    assert torch.equal(w[:1].expand(4, -1, -1, -1), w) and torch.equal(h[..., :1, :].expand(-1, -1, 5, -1), h)
    # cos(πu) changes sign between a cell and its mirror (the first frame and the last, left and right)
    assert torch.allclose(t[0, 0, 0, k], -t[-1, 0, 0, k]) and t[0, 0, 0, k] > 0.5
    assert torch.allclose(w[0, 0, 0, k], -w[0, 0, -1, k])
    assert len({tuple(w[0, 0, i].tolist()) for i in range(5)}) == 5
    # fractions of the clip, not token counts: the centres of 2 cells are those of cells 1 and 4 of 6
    two, six = place_features(2, 1, 1, k), place_features(6, 1, 1, k)
    torch.testing.assert_close(two[[0, 1], :2 * k], six[[1, 4], :2 * k])


def test_without_position_features_a_uniform_clip_gives_every_token_the_same_output():
    """RoPE tells attention only how far apart two tokens are: with no text tokens (whose RoPE
    positions would be a reference), a clip with the same content everywhere gives every video
    token the same output. Position features let the output depend on the place."""
    x = torch.full((1, 3, 4, 8, 8), 0.3)
    no_text = torch.zeros(1, 0, dtype=torch.long)
    args = (no_text, torch.tensor([0.9]), torch.zeros(1), torch.randn(1, 2, 8))
    plain = small_model()
    plain.proj_out.weight.data.normal_(std=0.1)  # a trained head: not the zero of initialisation
    with torch.no_grad():
        out = plain(x, *args).video_velocity
    tokens = out.reshape(1, 3, 4, 1, 4, 2, 4, 2).permute(0, 2, 4, 6, 1, 3, 5, 7).flatten(4)  # (b, f, h, w, patch)
    assert torch.allclose(tokens, tokens[:, :1, :1, :1].expand_as(tokens), atol=1e-5)
    # text tokens sit at RoPE positions of their own: the one absolute reference the video has
    with torch.no_grad():
        texted = plain(x, torch.arange(5)[None], *args[1:]).video_velocity
    assert not torch.allclose(texted, texted[..., :1, :1, :1].expand_as(texted), atol=1e-4)

    placed = small_model(position_features=2)
    assert placed.pos_embedding.weight.shape == (placed.config.num_attention_heads * 12, 12)
    assert torch.count_nonzero(placed.pos_embedding.weight) == 0  # zero at init: starts as the plain model
    placed.load_state_dict({**plain.state_dict(), **{k: v for k, v in placed.state_dict().items() if "pos_" in k}})
    with torch.no_grad():
        torch.testing.assert_close(placed(x, *args).video_velocity, out, rtol=0, atol=1e-6)
        placed.pos_embedding.weight.normal_()
        tokens = placed(x, *args).video_velocity.reshape(1, 3, 4, 1, 4, 2, 4, 2).permute(0, 2, 4, 6, 1, 3, 5, 7).flatten(4)
    first, last = tokens[0, 0, 0, 0], tokens[0, -1, 0, 0]
    left, right = tokens[0, 0, 1, 0], tokens[0, 0, 1, -1]
    assert (first - last).abs().max() > 1e-3 and (left - right).abs().max() > 1e-3


def test_position_features_are_off_by_default_and_for_wan_weights(models):
    _, uni = models
    assert uni.config.position_features == 0 and uni.pos_embedding is None
    assert not any(k.startswith("pos_") for k in small_model().state_dict())
    with pytest.raises(ValueError, match="position_features"):
        small_model(position_features=-1)
