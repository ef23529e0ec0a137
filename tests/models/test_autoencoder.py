"""The learned codec: cube reshapes, latent shape and scale, size checks, save/load, the loss."""

import numpy as np
import pytest
import torch

from uvigu.models.autoencoder import (
    VideoAutoencoder,
    depth_to_space_time,
    reconstruction_loss,
    space_time_to_depth,
)


@pytest.fixture(scope="module")
def codec():
    torch.manual_seed(0)
    return VideoAutoencoder(latent_channels=4, width=16, num_blocks=1).eval()


def test_cubes_are_a_lossless_reshape():
    x = torch.randn(2, 3, 8, 12, 16)
    cubes = space_time_to_depth(x, 4)
    assert cubes.shape == (2, 3 * 64, 2, 3, 4)
    # cube (0, 0, 0) of channel 0 holds exactly the first 4×4×4 block, in (t, y, x) order
    torch.testing.assert_close(cubes[0, :64, 0, 0, 0], x[0, 0, :4, :4, :4].reshape(-1), rtol=0, atol=0)
    torch.testing.assert_close(depth_to_space_time(cubes, 4), x, rtol=0, atol=0)


def test_latents_have_the_grid_shape_and_unit_scale(codec):
    frames = torch.randint(0, 256, (2, 8, 16, 16, 3), dtype=torch.uint8)
    z = codec.encode(frames)
    assert z.shape == (2, *codec.latent_shape(8, 16, 16)) == (2, 4, 2, 4, 4) and z.dtype == torch.float32
    torch.testing.assert_close(z.pow(2).mean(1), torch.ones(2, 2, 4, 4), rtol=1e-4, atol=1e-4)
    decoded = codec.decode(z)
    assert decoded.shape == frames.shape and decoded.dtype == torch.uint8


def test_sizes_must_tile_into_cubes_then_patches(codec):
    codec.check_size(8, 16, 32, (1, 2, 2))
    with pytest.raises(ValueError, match="num_frames must be a positive multiple of 4"):
        codec.check_size(6, 16, 16, (1, 1, 1))
    with pytest.raises(ValueError, match="height must be a positive multiple of 8"):
        codec.check_size(8, 20, 16, (1, 2, 2))


def test_save_and_load_round_trip_exactly(codec, tmp_path):
    codec.save_pretrained(tmp_path)
    loaded = VideoAutoencoder.from_pretrained(tmp_path)
    frames = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (1, 4, 16, 16, 3), dtype=np.uint8))
    torch.testing.assert_close(loaded.encode(frames), codec.encode(frames), rtol=0, atol=0)
    assert loaded.config.latent_channels == 4 and loaded.config.width == 16


def test_forward_adds_the_latent_noise_it_is_given(codec):
    x = torch.rand(1, 3, 4, 16, 16) * 2 - 1
    noise = torch.zeros(1, *codec.latent_shape(4, 16, 16))
    with torch.no_grad():
        torch.testing.assert_close(codec(x), codec(x, noise), rtol=0, atol=0)
        assert not torch.equal(codec(x), codec(x, noise + 0.5))


def test_the_loss_weights_object_pixels_over_background():
    target = torch.zeros(1, 3, 4, 16, 16)  # gray background (0 in [-1, 1])
    target[:, :, :, 4:8, 4:8] = 0.8  # one object
    wrong_object = target.clone()
    wrong_object[:, :, :, 4:8, 4:8] = 0.0
    wrong_background = target.clone()
    wrong_background[:, :, :, 10:14, 10:14] = 0.8  # as many pixels off, on the background
    on_object, on_background = reconstruction_loss(wrong_object, target), reconstruction_loss(wrong_background, target)
    assert on_object.shape == (1,)
    assert float(on_object) == pytest.approx(10 * float(on_background))
    assert float(reconstruction_loss(target, target)) == 0
