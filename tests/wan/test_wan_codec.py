"""WanVideoCodec normalises latents exactly as diffusers' Wan pipelines do, and round-trips through the VAE."""

import numpy as np
import pytest
import torch
from diffusers import FlowMatchEulerDiscreteScheduler, WanPipeline, WanVideoToVideoPipeline

from uvigu.models.wan_codec import WanVideoCodec

from .tiny_wan import tiny_tokenizer, tiny_umt5, tiny_vae, tiny_wan_transformer


@pytest.fixture(scope="module")
def parts():
    torch.manual_seed(0)
    vae = tiny_vae().eval()
    # Non-trivial latent statistics, so a missing or inverted normalisation shows.
    vae.register_to_config(
        latents_mean=torch.linspace(-1, 1, 16).tolist(), latents_std=torch.linspace(0.5, 3, 16).tolist()
    )
    transformer = tiny_wan_transformer().eval()
    torch.nn.init.zeros_(transformer.proj_out.weight)  # zero velocity: diffusers' loop leaves latents as given
    torch.nn.init.zeros_(transformer.proj_out.bias)
    tokenizer = tiny_tokenizer()
    return dict(vae=vae, transformer=transformer, tokenizer=tokenizer, text_encoder=tiny_umt5(len(tokenizer)),
                scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0))


def frames_of(seed=0, shape=(1, 9, 16, 16, 3)):
    return torch.from_numpy(np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8))


def test_decode_matches_wan_pipeline(parts):
    codec = WanVideoCodec.from_vae(parts["vae"])
    latents = torch.randn(1, 16, 3, 2, 2, generator=torch.Generator().manual_seed(1))
    ours = codec.decode(latents)  # uint8 (1, 9, 16, 16, 3)
    pipe = WanPipeline(**parts)
    theirs = pipe("a red circle", latents=latents.clone(), num_frames=9, height=16, width=16,
                  num_inference_steps=2, output_type="np").frames  # float [0, 1] (1, 9, 16, 16, 3)
    assert ours.shape == theirs.shape == (1, 9, 16, 16, 3)
    np.testing.assert_array_equal(ours.numpy(), np.round(theirs * 255).astype(np.uint8))


def test_encode_matches_wan_video_to_video(parts):
    codec = WanVideoCodec.from_vae(parts["vae"])
    frames = frames_of()
    ours = codec.encode(frames)
    pipe = WanVideoToVideoPipeline(**parts)
    pipe.scheduler.scale_noise = lambda sample, timestep, noise: sample  # read the clean, normalised latents
    video = pipe.video_processor.preprocess_video(frames.numpy().astype(np.float32) / 255, height=16, width=16)
    theirs = pipe.prepare_latents(video, 1, 16, 16, 16, torch.float32, torch.device("cpu"),
                                  torch.Generator().manual_seed(0), None, torch.tensor([500.0]))
    assert ours.shape == theirs.shape == (1, 16, 3, 2, 2)
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)


def test_normalisation_round_trips_through_the_vae(parts):
    """decode(encode(x)) equals the VAE's own reconstruction: the normalisation cancels exactly."""
    vae = parts["vae"]
    codec = WanVideoCodec.from_vae(vae)
    raw = WanVideoCodec.from_vae(vae, normalize_latents=False)
    frames = frames_of(2)
    z, z_raw = codec.encode(frames), raw.encode(frames)
    mean = torch.tensor(vae.config.latents_mean).view(1, 16, 1, 1, 1)
    std = torch.tensor(vae.config.latents_std).view(1, 16, 1, 1, 1)
    torch.testing.assert_close(z, (z_raw - mean) / std)
    with torch.no_grad():
        x = frames.permute(0, 4, 1, 2, 3).float() / 127.5 - 1
        recon = vae.decode(vae.encode(x).latent_dist.mode(), return_dict=False)[0]
    expected = ((recon / 2 + 0.5).clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 4, 1)
    assert (codec.decode(z).int() - expected.int()).abs().max() <= 1


def test_sizes(parts):
    codec = WanVideoCodec.from_vae(parts["vae"])
    assert codec.latent_shape(81, 480, 832) == (16, 21, 60, 104)
    codec.check_size(81, 480, 832, (1, 2, 2))
    with pytest.raises(ValueError, match=r"4k \+ 1 for this model \(e.g. 5, 9, 13"):
        codec.check_size(80, 480, 832, (1, 2, 2))
    with pytest.raises(ValueError, match="height must be a positive multiple of 16.*got 484 \\(try 480 or 496\\)"):
        codec.check_size(81, 484, 832, (1, 2, 2))


def test_saves_and_loads_itself(parts, tmp_path):
    codec = WanVideoCodec.from_vae(parts["vae"], tiling=True)
    codec.save_pretrained(tmp_path)
    again = WanVideoCodec.from_pretrained(tmp_path)
    assert again.config.tiling and again.vae.use_tiling
    assert again.vae.config.latents_mean == parts["vae"].config.latents_mean
    frames = frames_of(3)
    torch.testing.assert_close(again.encode(frames), codec.encode(frames))
