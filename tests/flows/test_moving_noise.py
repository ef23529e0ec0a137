import math

import numpy as np
import pytest
import torch

from uvigu.flows.moving_noise import (
    DIRECTIONS, NoisePath, check_draft, check_share, moving_noise, path_discs, path_noise,
)


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
    for share in (-0.1, 1.5, math.nan, "0.5", True):  # a number in range, not text or a flag that casts to one
        with pytest.raises(ValueError, match="motion_noise must be a share of the noise from 0 to 1"):
            moving_noise(noise, DIRECTIONS["left"], share, generator)
    assert check_share(np.float32(0.5)) == 0.5 and check_share(1) == 1.0  # numpy's numbers and ints are numbers


def _disc(h: int, w: int, center: tuple[float, float], radius: float) -> torch.Tensor:
    rows, cols = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    return (rows - center[0]) ** 2 + (cols - center[1]) ** 2 <= radius**2


def test_path_noise_moves_a_disc_along_each_path_and_leaves_the_rest_as_it_was():
    noise = _noise(shape=(1, 3, 5, 20, 20))
    right = NoisePath(center=(5.0, 8.0), step=(0.0, 1.0), radius=2.5)
    up = NoisePath(center=(14.0, 12.0), step=(-1.0, 0.0), radius=2.0)
    out = path_noise(noise, [right, up], 1.0, torch.Generator().manual_seed(4))
    inside = torch.zeros(5, 20, 20, dtype=torch.bool)
    for path in (right, up):
        dy, dx = (round(v) for v in path.step)
        for t in range(5):  # frame 2 is the middle one: the disc sits on the path's centre there
            disc = _disc(20, 20, (path.center[0] + (t - 2) * dy, path.center[1] + (t - 2) * dx), path.radius)
            inside[t] |= disc
            if t:  # share 1: what the disc holds in frame t is what it held in frame t − 1, moved one step
                moved_on = torch.roll(out[:, :, t - 1], (dy, dx), dims=(2, 3))
                assert torch.equal(out[:, :, t][..., disc], moved_on[..., disc])
    assert torch.equal(out[:, :, ~inside], noise[:, :, ~inside])  # outside every disc: untouched
    assert not torch.equal(out[:, :, inside], noise[:, :, inside])
    assert not torch.equal(out[:, :, 1], torch.roll(out[:, :, 0], (0, 1), dims=(2, 3)))  # not the whole frame


def test_path_noise_keeps_a_standard_normal_and_does_nothing_without_share_or_paths():
    noise = _noise(shape=(256, 3, 4, 12, 12))
    out = path_noise(noise, [NoisePath((6.0, 6.0), (0.0, -1.0), 3.0)], 0.6, torch.Generator().manual_seed(5))
    values = out[:, :, 2][..., _disc(12, 12, (6.0, 5.5), 3.0)]  # frame 2 is half a frame past the middle
    assert abs(float(values.mean())) < 0.02 and abs(float(values.std()) - 1) < 0.02
    generator = torch.Generator().manual_seed(3)
    assert path_noise(noise, [NoisePath((6.0, 6.0), (0.0, 1.0), 3.0)], 0.0, generator) is noise
    assert path_noise(noise, [], 0.5, generator) is noise
    assert torch.equal(generator.get_state(), torch.Generator().manual_seed(3).get_state())  # drew nothing
    with pytest.raises(ValueError, match="motion_noise_paths must be a share of the noise from 0 to 1"):
        path_noise(noise, [], 1.5, generator)


def test_path_discs_are_where_path_noise_moves_the_noise():
    paths = [NoisePath((5.0, 8.0), (0.0, 1.0), 2.5), NoisePath((14.0, 12.0), (-1.0, 0.0), 2.0)]
    discs = path_discs(paths, 5, 20, 20)
    assert discs.shape == (2, 5, 20, 20) and discs.dtype == torch.bool
    for path, disc in zip(paths, discs):
        for t in range(5):
            lag = t - 2
            assert torch.equal(disc[t], _disc(20, 20, (path.center[0] + lag * path.step[0],
                                                      path.center[1] + lag * path.step[1]), path.radius))
    noise = _noise(shape=(1, 3, 5, 20, 20))
    out = path_noise(noise, paths, 0.5, torch.Generator().manual_seed(2))
    inside = discs.any(0)
    assert torch.equal(out[:, :, ~inside], noise[:, :, ~inside]) and not (out == noise)[:, :, inside].any()
    assert path_discs([], 5, 20, 20).shape == (0, 5, 20, 20)


def test_a_turned_path_starts_where_the_path_starts_and_goes_its_own_way():
    path = NoisePath((10.0, 8.0), (0.0, 1.0), 3.0)  # right, one cell a frame
    turned = path.turned((-1.0, 0.0), 2.0, 5)  # up from the same start
    assert turned == NoisePath((8.0, 6.0), (-1.0, 0.0), 2.0)
    discs = path_discs([path, turned], 5, 20, 20)
    assert torch.equal(discs[0, 0], _disc(20, 20, (10.0, 6.0), 3.0))  # both at (10, 6) in the first frame
    assert torch.equal(discs[1, 0], _disc(20, 20, (10.0, 6.0), 2.0))
    assert torch.equal(discs[1, -1], _disc(20, 20, (6.0, 6.0), 2.0))
    assert path.turned(path.step, path.radius, 5) == path


def test_a_draft_is_a_whole_number_of_steps_from_one():
    assert check_draft(6) == 6
    assert check_draft(np.int64(3)) == 3 and type(check_draft(np.int64(3))) is int  # as a sweep's numpy draws
    for bad in (0, -2, 2.5, True, "6"):
        with pytest.raises(ValueError, match="motion_noise_draft must be a whole number of steps from 1"):
            check_draft(bad)
