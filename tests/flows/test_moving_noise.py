import math

import pytest
import torch

from uvigu.flows.moving_noise import DIRECTIONS, moving_noise


def _noise(seed: int = 0, shape=(1, 3, 6, 8, 10)) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


def test_the_moving_part_is_one_frame_moved_by_t_steps_each_frame():
    noise = _noise()
    out = moving_noise(noise, (1, -2), 0.36, torch.Generator().manual_seed(1))
    moved = (out - 0.8 * noise) / 0.6  # √(1 − share), √share
    for t in range(noise.shape[2]):
        back = torch.roll(moved[:, :, t], (-t, 2 * t), dims=(2, 3))  # frame t moved back by t steps
        torch.testing.assert_close(back, moved[:, :, 0], rtol=0, atol=1e-5)
    assert not torch.allclose(moved[:, :, 1], moved[:, :, 0])  # it does move


def test_still_is_the_same_frame_everywhere_and_half_steps_round_per_frame():
    noise = _noise()
    moved = (moving_noise(noise, DIRECTIONS["still"], 1.0, torch.Generator().manual_seed(1)))
    assert all(torch.equal(moved[:, :, t], moved[:, :, 0]) for t in range(noise.shape[2]))
    half = moving_noise(noise, (0, 0.5), 1.0, torch.Generator().manual_seed(1))
    assert [round(0.5 * t) for t in range(4)] == [0, 0, 1, 2]  # Python rounds half to even
    torch.testing.assert_close(half[:, :, 3], torch.roll(half[:, :, 0], 2, dims=3), rtol=0, atol=0)


def test_every_value_stays_a_standard_normal():
    noise = _noise(shape=(64, 4, 8, 16, 16))
    out = moving_noise(noise, DIRECTIONS["right"], 0.5, torch.Generator().manual_seed(2))
    assert abs(float(out.mean())) < 0.01 and abs(float(out.std()) - 1) < 0.01
    # neighbouring frames correlate by the share, once one is moved onto the other
    a, b = out[:, :, 0].flatten(), torch.roll(out[:, :, 1], -1, dims=3).flatten()
    assert float(torch.corrcoef(torch.stack([a, b]))[0, 1]) == pytest.approx(0.5, abs=0.02)
    assert float(torch.corrcoef(torch.stack([a, out[:, :, 1].flatten()]))[0, 1]) == pytest.approx(0.0, abs=0.02)


def test_share_zero_is_the_noise_itself_and_a_share_outside_zero_to_one_is_refused():
    noise = _noise()
    generator = torch.Generator().manual_seed(3)
    assert moving_noise(noise, DIRECTIONS["left"], 0.0, generator) is noise
    assert torch.equal(generator.get_state(), torch.Generator().manual_seed(3).get_state())  # drew nothing
    for share in (-0.1, 1.5, math.nan):
        with pytest.raises(ValueError, match="motion_noise must be between 0 and 1"):
            moving_noise(noise, DIRECTIONS["left"], share, generator)
