"""Official Uni-ViGU checkpoints convert into our layout and compute what the same weights compute."""

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from uvigu.models.official import convert_official, load_official_checkpoint, rename_official_state
from uvigu.models.transformer import (
    UniViGUTransformer3DModel,
    _half_to_interleaved,
    _interleaved_to_half,
    apply_rotary,
    rotary_1d,
)
from uvigu.pipeline import UniViGUPipeline

from .tiny_wan import tiny_tokenizer, tiny_wan_transformer

VOCAB = len(tiny_tokenizer())  # the release's vocab_size = tokenizer.vocab_size (uniform source: no [MASK])


def reference_model(seed=0) -> UniViGUTransformer3DModel:
    """Random weights everywhere, in the official structure (one modulation table per block)."""
    wc = tiny_wan_transformer().config
    keep = ("patch_size", "num_attention_heads", "attention_head_dim", "in_channels", "out_channels", "text_dim",
            "freq_dim", "ffn_dim", "num_layers", "cross_attn_norm", "qk_norm", "eps", "rope_max_seq_len")
    model = UniViGUTransformer3DModel(
        **{k: wc[k] for k in keep}, vocab_size=VOCAB + 1, mask_token_id=VOCAB, max_text_len=1024,
        text_rope_layout="half", text_head_norm_affine=True,
    ).eval()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.2 + (1.0 if name.endswith("norm_out_t.weight") else 0.0))
        for block in model.blocks:
            block.scale_shift_table_t.copy_(block.scale_shift_table)
        model.token_embedding.weight[VOCAB].zero_()
        model.proj_out_t.weight[VOCAB].zero_()
        model.proj_out_t.bias[VOCAB].zero_()
    return model


def official_layout(model: UniViGUTransformer3DModel) -> dict[str, torch.Tensor]:
    """The state dict of the release's WanUnifiedTransformer holding the same weights (written from
    its model/transformer.py: vocab_embed, time_embedding_v/_t, cond_text_embedder, blocks.N.ffn_t,
    scale_shift_table_v/_t, video_head.proj_out, text_head.linear / norm_final, rotary_emb_text)."""
    out = {}
    for k, v in model.state_dict().items():
        if k.startswith("blocks.") and k.endswith(".scale_shift_table_t"):
            continue  # the release shares the block table between modalities
        if k.startswith("condition_embedder.text_embedder."):
            out["cond_text_embedder." + k.split("text_embedder.", 1)[1]] = v
        elif k.startswith("condition_embedder."):
            out["time_embedding_v." + k.split(".", 1)[1]] = v
        elif k == "token_embedding.weight":
            out["vocab_embed.weight"] = v[:VOCAB]
        elif k == "scale_shift_table":
            out["scale_shift_table_v"] = v
        elif k.startswith("proj_out_t."):
            out["text_head.linear." + k.split(".", 1)[1]] = v[:VOCAB]
        elif k == "norm_out_t.weight":
            out["text_head.norm_final.weight"] = v
        elif k.startswith("proj_out."):
            out["video_head.proj_out." + k.split(".", 1)[1]] = v
        else:
            out[k] = v
    hd = model.config.attention_head_dim
    out["rotary_emb_text.inv_freq"] = 1.0 / (10000 ** (torch.arange(0, hd, 2).float() / hd))
    return {"_orig_mod." + k: v.clone() for k, v in out.items()}  # as saved from a compiled model


@pytest.fixture(scope="module")
def converted(wan_folder, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("official")
    reference = reference_model()
    torch.save({"model": official_layout(reference), "step": 1234, "optimizer": {"lr": 1e-4}}, tmp / "step.pth")
    out = convert_official(tmp / "step.pth", wan_folder, tmp / "converted", dtype=torch.float32)
    return reference, out


def test_converted_checkpoint_matches_the_same_weights_put_in_directly(converted):
    reference, out = converted
    pipe = UniViGUPipeline.from_pretrained(out)
    model = pipe.transformer
    assert model.config.text_rope_layout == "half" and model.config.text_head_norm_affine
    g = torch.Generator().manual_seed(5)
    x = torch.randn(2, 16, 3, 4, 4, generator=g)
    ids = torch.randint(0, VOCAB, (2, 6), generator=g)
    mask = torch.tensor([[True] * 6, [True] * 4 + [False] * 2])
    sv, st = torch.tensor([0.2, 0.7]), torch.tensor([0.0, 0.5])
    context = torch.randn(2, 5, 32, generator=g)
    with torch.no_grad():
        expected = reference(x, ids, sv, st, context, mask)
        got = model(x, ids, sv, st, context, mask)
    torch.testing.assert_close(got.video_velocity, expected.video_velocity, rtol=0, atol=0)
    torch.testing.assert_close(got.text_logits, expected.text_logits, rtol=0, atol=0)


def test_converted_config_records_official_defaults(converted):
    _, out = converted
    pipe = UniViGUPipeline.from_pretrained(out)
    assert pipe.config.text_source == "uniform"
    assert pipe.config.num_inference_steps == 50 and pipe.config.guidance_scale == 5.0
    assert pipe.config.caption_reread == 0  # official sampling: no re-read pass
    assert pipe.scheduler.config.shift == 3.0
    assert not pipe.codec.config.normalize_latents  # the release works on raw VAE latents
    assert pipe.transformer.config.vocab_size == VOCAB + 1 and pipe.transformer.config.mask_token_id == VOCAB
    record = json.loads((out / "conversion.json").read_text())
    assert record["training_step"] == 1234 and record["mask_token_appended"]
    assert list((out / "transformer").glob("*.safetensors")) and not list(out.rglob("*.pth"))
    pipe.register_to_config(num_frames=9, height=16, width=16, max_text_len=16)  # tiny sizes for the CPU
    clip = pipe.generate("a red circle", seed=0, num_inference_steps=1)
    assert clip.frames.shape == (9, 16, 16, 3)
    assert isinstance(pipe.caption(clip.frames, seed=0, num_inference_steps=1).text, str)


def test_half_text_rope_is_the_official_rotate_half():
    """The release rotates text q/k as x·cos + rotate_half(x)·sin with cat(freqs, freqs) tables."""
    hd, length = 12, 7
    x = torch.randn(2, length, 3, hd)
    inv_freq = 1.0 / (10000 ** (torch.arange(0, hd, 2).float() / hd))
    freqs = torch.outer(torch.arange(length).float(), inv_freq)
    cos, sin = torch.cat([freqs, freqs], -1).cos()[None, :, None], torch.cat([freqs, freqs], -1).sin()[None, :, None]
    rotate_half = torch.cat([-x[..., hd // 2:], x[..., : hd // 2]], -1)
    official = x * cos + rotate_half * sin
    tables = tuple(t.float()[None, :, None] for t in rotary_1d(hd, length))
    ours = _interleaved_to_half(apply_rotary(_half_to_interleaved(x, 0), *tables), 0)
    torch.testing.assert_close(ours, official, rtol=1e-5, atol=1e-5)


def test_affine_text_norm_is_the_official_layer_norm():
    model = reference_model()
    x = torch.randn(2, 5, 24) * 3
    official = F.layer_norm(x.float(), [24]) * model.norm_out_t.weight  # the release's LayerNorm
    torch.testing.assert_close(model.norm_out_t(x), official, rtol=1e-5, atol=1e-5)


class _RunsCode:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))  # unpickling would create the marker file


def test_pickled_code_is_refused(tmp_path, wan_folder):
    marker = tmp_path / "code-ran"
    torch.save({"model": {"vocab_embed.weight": torch.zeros(2, 2)}, "hook": _RunsCode(marker)}, tmp_path / "evil.pth")
    with pytest.raises(ValueError, match="refusing to load evil.pth"):
        convert_official(tmp_path / "evil.pth", wan_folder, tmp_path / "out")
    assert not marker.exists()
    assert not (tmp_path / "out").exists()


def test_bad_checkpoints_refused(tmp_path, wan_folder):
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not a readable PyTorch checkpoint"):
        load_official_checkpoint(tmp_path / "junk.pth")
    torch.save({"model": {"something.weight": torch.zeros(1)}}, tmp_path / "other.pth")
    with pytest.raises(ValueError, match="not an official Uni-ViGU checkpoint"):
        load_official_checkpoint(tmp_path / "other.pth")
    with pytest.raises(ValueError, match="no counterpart in our model: blocks.0.mystery"):
        rename_official_state({"vocab_embed.weight": torch.zeros(1), "blocks.0.mystery.weight": torch.zeros(1)})
    state = official_layout(reference_model())
    state["_orig_mod.vocab_embed.weight"] = torch.zeros(VOCAB + 5, 24)
    torch.save({"model": state}, tmp_path / "vocab.pth")
    with pytest.raises(ValueError, match=f"text embedding has {VOCAB + 5} rows"):
        convert_official(tmp_path / "vocab.pth", wan_folder, tmp_path / "out2", dtype=torch.float32)


def test_mask_source_checkpoint_keeps_its_mask_row(tmp_path, wan_folder):
    reference = reference_model(seed=1)
    state = official_layout(reference)
    state["_orig_mod.vocab_embed.weight"] = reference.token_embedding.weight.detach().clone()  # V + 1 rows
    state["_orig_mod.text_head.linear.weight"] = reference.proj_out_t.weight.detach().clone()
    state["_orig_mod.text_head.linear.bias"] = reference.proj_out_t.bias.detach().clone()
    torch.save({"model": state}, tmp_path / "mask.pth")
    out = convert_official(tmp_path / "mask.pth", wan_folder, tmp_path / "out", dtype=torch.float32)
    pipe = UniViGUPipeline.from_pretrained(out)
    assert pipe.config.text_source == "mask" and pipe.transformer.config.mask_token_id == VOCAB
    np.testing.assert_array_equal(pipe.transformer.token_embedding.weight.detach().numpy(),
                                  reference.token_embedding.weight.detach().numpy())


def test_convert_official_command(tmp_path, wan_folder, capsys):
    from uvigu.cli import main

    torch.save({"model": official_layout(reference_model())}, tmp_path / "step.pth")
    code = main(["convert-official", "--checkpoint", str(tmp_path / "step.pth"), "--wan", str(wan_folder),
                 "--out", str(tmp_path / "out"), "--dtype", "float32"])
    assert code == 0 and (tmp_path / "out" / "model_index.json").is_file()
    torch.save({"x": _RunsCode(tmp_path / "marker")}, tmp_path / "evil.pth")
    code = main(["convert-official", "--checkpoint", str(tmp_path / "evil.pth"), "--wan", str(wan_folder),
                 "--out", str(tmp_path / "out2")])
    assert code == 2 and "refusing to load evil.pth" in capsys.readouterr().err
    assert not (tmp_path / "marker").exists()
