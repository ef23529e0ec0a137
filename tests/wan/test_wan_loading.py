"""A diffusers-format Wan2.1-T2V folder loads as a unified pipeline and runs every task."""

import json

import numpy as np
import pytest
import torch
from diffusers import WanTransformer3DModel

from uvigu.models.wan_codec import WanVideoCodec
from uvigu.models.wan_loading import check_wan_folder, is_wan_folder
from uvigu.pipeline import UniViGUPipeline

from .conftest import TINY_WAN_OPTIONS


def test_loaded_components(wan_pipe):
    assert isinstance(wan_pipe.codec, WanVideoCodec)
    assert wan_pipe.codec.config.normalize_latents
    assert type(wan_pipe.text_encoder).__name__ == "UMT5EncoderModel"
    # text head: every tokenizer id plus one [MASK] id after them
    n = len(wan_pipe.tokenizer)
    assert wan_pipe.transformer.config.vocab_size == n + 1
    assert wan_pipe.transformer.config.mask_token_id == n
    assert wan_pipe.scheduler.config.shift == 3.0
    assert wan_pipe.config.guidance_scale == 5.0 and wan_pipe.config.text_source == "uniform"
    assert wan_pipe.config.caption_reread == 0  # the re-read pass is measured on the Shapes model only


def test_tasks_return_wan_shapes(wan_pipe):
    out = wan_pipe.generate("a red circle moving right", seed=0)
    assert out.frames.shape == (9, 16, 16, 3) and out.frames.dtype == np.uint8
    cap = wan_pipe.caption(out.frames, seed=0)
    assert isinstance(cap.text, str)
    both = wan_pipe.generate_with_caption("a blue square moving up", seed=1)
    assert both.frames.shape == (9, 16, 16, 3) and isinstance(both.caption, str)
    new = wan_pipe.edit(out.frames, "a green circle moving right", strength=0.6, seed=0)
    assert new.frames.shape == (9, 16, 16, 3)
    # same seed, same output
    assert np.array_equal(wan_pipe.generate("a red circle moving right", seed=0).frames, out.frames)


def test_other_sizes_checked_with_clear_messages(wan_pipe):
    with pytest.raises(ValueError, match=r"num_frames must be 4k \+ 1"):
        wan_pipe.generate("a red circle", seed=0, num_frames=8)
    with pytest.raises(ValueError, match="height must be a positive multiple of 16"):
        wan_pipe.generate("a red circle", seed=0, height=24)
    with pytest.raises(ValueError, match="width must be a positive multiple of 16"):
        wan_pipe.generate("a red circle", seed=0, width=8)
    out = wan_pipe.generate("a red circle", seed=0, num_frames=5, height=32, width=16)
    assert out.frames.shape == (5, 32, 16, 3)


def test_extended_model_without_text_matches_wan(wan_folder, wan_pipe):
    wan = WanTransformer3DModel.from_pretrained(wan_folder, subfolder="transformer").eval()
    torch.manual_seed(0)
    x = torch.randn(2, 16, 3, 4, 4)
    context = torch.randn(2, 7, 32)
    sigma = torch.tensor([0.3, 0.9])
    with torch.no_grad():
        expected = wan(x, sigma * 1000, context, return_dict=False)[0]
        v, logits = wan_pipe.transformer(x, torch.zeros(2, 0, dtype=torch.long), sigma, sigma, context)
    assert logits.shape == (2, 0, wan_pipe.transformer.config.vocab_size)
    torch.testing.assert_close(v, expected, rtol=0, atol=1e-5)


def test_saved_pipeline_loads_back_with_from_pretrained(wan_pipe, tmp_path):
    wan_pipe.save_pretrained(tmp_path / "saved")
    index = json.loads((tmp_path / "saved" / "model_index.json").read_text())
    assert index["codec"][1] == "WanVideoCodec"
    assert list((tmp_path / "saved" / "transformer").glob("*.safetensors"))
    again = UniViGUPipeline.from_pretrained(tmp_path / "saved")
    assert isinstance(again.codec, WanVideoCodec) and again.config.num_frames == 9
    a = wan_pipe.generate("a red circle moving right", seed=3)
    b = again.generate("a red circle moving right", seed=3)
    assert np.array_equal(a.frames, b.frames)
    assert wan_pipe.caption(a.frames, seed=1).text == again.caption(a.frames, seed=1).text


def test_memory_options(wan_folder):
    pipe = UniViGUPipeline.from_wan_pretrained(wan_folder, vae_tiling=True, vae_slicing=True, **TINY_WAN_OPTIONS)
    assert pipe.codec.vae.use_tiling and pipe.codec.vae.use_slicing
    pipe.codec.enable_tiling(False)
    assert not pipe.codec.vae.use_tiling and not pipe.codec.config.tiling
    # model CPU offload runs through diffusers' hooks (the codec's encode/decode included)
    pipe.enable_model_cpu_offload(device="cpu")
    out = pipe.generate("a red circle", seed=0)
    assert out.frames.shape == (9, 16, 16, 3)
    assert isinstance(pipe.caption(out.frames, seed=0).text, str)


def test_bf16_transformer(wan_folder):
    pipe = UniViGUPipeline.from_wan_pretrained(wan_folder, **{**TINY_WAN_OPTIONS, "dtype": torch.bfloat16})
    assert pipe.transformer.dtype == torch.bfloat16 and pipe.codec.vae.dtype == torch.float32
    assert pipe.generate("a red circle", seed=0).frames.shape == (9, 16, 16, 3)


def test_bad_folders_refused(tmp_path, wan_folder):
    with pytest.raises(ValueError, match="not a folder"):
        check_wan_folder(tmp_path / "nope")
    with pytest.raises(ValueError, match="no model_index.json"):
        check_wan_folder(tmp_path)
    (tmp_path / "model_index.json").write_text("{}")
    with pytest.raises(ValueError, match="lacks transformer, vae"):
        check_wan_folder(tmp_path)
    with pytest.raises(ValueError, match="unknown option"):
        UniViGUPipeline.from_wan_pretrained(wan_folder, frames=9)


def test_is_wan_folder(wan_folder, wan_pipe, tmp_path):
    assert is_wan_folder(wan_folder) and not is_wan_folder(tmp_path)
    wan_pipe.save_pretrained(tmp_path / "ours")
    assert not is_wan_folder(tmp_path / "ours")
