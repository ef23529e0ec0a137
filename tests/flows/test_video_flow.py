import numpy as np
import pytest
import torch
from diffusers import FlowMatchEulerDiscreteScheduler

from uvigu.flows import (
    Renoise,
    euler_step,
    flow_edit,
    inference_sigmas,
    interpolate,
    predict_clean,
    renoise_step,
    sample,
    sample_training_sigma,
    schedule_start_index,
    shift_sigma,
    sigma_to_timestep,
    velocity_target,
)


def test_sigma_endpoints_give_data_and_noise():
    g = torch.Generator().manual_seed(0)
    x, noise = torch.randn(2, 3, 4, 5, 5, generator=g), torch.randn(2, 3, 4, 5, 5, generator=g)
    assert torch.equal(interpolate(x, noise, torch.zeros(2)), x)
    assert torch.equal(interpolate(x, noise, torch.ones(2)), noise)
    mid = interpolate(x, noise, torch.tensor([0.25, 0.75]))
    assert torch.allclose(mid[0], 0.75 * x[0] + 0.25 * noise[0])
    assert sigma_to_timestep(torch.tensor([0.0, 0.5, 1.0])).tolist() == [0.0, 500.0, 1000.0]


def test_exact_velocity_recovers_the_data():
    # Two-point problem: for one data point x, the exact velocity field is ε − x along the straight path.
    g = torch.Generator().manual_seed(1)
    x, noise = torch.randn(1, 3, 2, 4, 4, generator=g), torch.randn(1, 3, 2, 4, 4, generator=g)
    sigmas = inference_sigmas(FlowMatchEulerDiscreteScheduler(shift=3.0), 7)
    x_t = noise.clone()
    for s, s_next in zip(sigmas[:-1], sigmas[1:]):
        x_t = euler_step(x_t, velocity_target(x, noise), float(s), float(s_next))
    assert torch.allclose(x_t, x, atol=1e-5)
    assert torch.allclose(predict_clean(interpolate(x, noise, torch.tensor([0.6])), noise - x, torch.tensor([0.6])), x, atol=1e-6)


def test_inference_schedule_is_wans_shifted_grid_ending_at_zero():
    steps, shift = 10, 3.0
    sigmas = inference_sigmas(FlowMatchEulerDiscreteScheduler(shift=shift), steps)
    grid = np.linspace(1.0, 0.0, steps + 1)
    expected = shift * grid / (1 + (shift - 1) * grid)
    assert sigmas.shape == (steps + 1,)
    assert np.allclose(sigmas.numpy(), expected, atol=1e-6)
    assert sigmas[0] == 1.0 and sigmas[-1] == 0.0
    assert np.allclose(shift_sigma(grid, shift), expected)


def test_strength_starts_part_way():
    scheduler = FlowMatchEulerDiscreteScheduler(shift=3.0)
    full = inference_sigmas(scheduler, 10)
    part = inference_sigmas(scheduler, 10, strength=0.6)
    assert len(part) == 7 and torch.equal(part, full[4:])
    assert schedule_start_index(10, 1.0) == 0
    assert schedule_start_index(10, 0.01) == 9  # at least one step is always run


def test_euler_step_matches_diffusers_scheduler():
    scheduler = FlowMatchEulerDiscreteScheduler(shift=3.0)
    sigmas = inference_sigmas(scheduler, 5)
    g = torch.Generator().manual_seed(2)
    x, v = torch.randn(1, 3, 2, 4, 4, generator=g), torch.randn(1, 3, 2, 4, 4, generator=g)
    theirs = scheduler.step(v, scheduler.timesteps[0], x, return_dict=False)[0]
    ours = euler_step(x, v, float(sigmas[0]), float(sigmas[1]))
    assert torch.allclose(theirs, ours, atol=1e-6)


def test_a_stochastic_step_draws_its_share_of_the_noise_afresh():
    scheduler = FlowMatchEulerDiscreteScheduler(shift=3.0, stochastic_sampling=True)
    sigmas = inference_sigmas(scheduler, 5)
    g = torch.Generator().manual_seed(3)
    x, v = torch.randn(1, 3, 2, 4, 4, generator=g), torch.randn(1, 3, 2, 4, 4, generator=g)
    sigma, sigma_next = float(sigmas[1]), float(sigmas[2])
    # share 1: all of it afresh, as diffusers' stochastic sampling with the same draw
    scheduler.set_timesteps(sigmas=np.linspace(1.0, 0.0, 6)[:-1])
    scheduler._step_index = 1
    theirs = scheduler.step(v, scheduler.timesteps[1], x, generator=torch.Generator().manual_seed(4),
                            return_dict=False)[0]
    fresh = torch.randn(x.shape, generator=torch.Generator().manual_seed(4))
    torch.testing.assert_close(renoise_step(x, v, sigma, sigma_next, fresh, 1.0), theirs)
    # share 0: the Euler step; between: the clean estimate kept, the noise estimate mixed with the draw
    torch.testing.assert_close(renoise_step(x, v, sigma, sigma_next, fresh, 0.0), euler_step(x, v, sigma, sigma_next))
    clean, noise = x - sigma * v, x + (1 - sigma) * v
    half = renoise_step(x, v, sigma, sigma_next, fresh, 0.6)
    torch.testing.assert_close(half, (1 - sigma_next) * clean + sigma_next * (0.8 * noise + 0.6 * fresh))


def test_the_sampler_steps_stochastically_from_its_level_down_but_not_into_the_data():
    sigmas = inference_sigmas(FlowMatchEulerDiscreteScheduler(shift=3.0), 6)
    g = torch.Generator().manual_seed(5)
    start, target = torch.randn(1, 3, 2, 4, 4, generator=g), torch.randn(1, 3, 2, 4, 4, generator=g)
    text = torch.zeros(1, 3, dtype=torch.long)
    levels, drawn = [], []

    def model_fn(video, ids, video_sigma, text_sigma):
        levels.append(float(video_sigma[0]))
        return (video - target) / video_sigma[0].clamp(min=1e-3), torch.zeros(1, 3, 5)  # aims at target

    def draw():
        drawn.append(levels[-1])
        return torch.randn(start.shape, generator=g)

    plain = sample(model_fn, video=start, text=text, sigmas=sigmas, denoise_video=True, denoise_text=False).video
    levels.clear()
    noisy = sample(model_fn, video=start, text=text, sigmas=sigmas, denoise_video=True, denoise_text=False,
                   renoise=Renoise(1.0, 0.7, draw)).video
    assert drawn == [s for s in levels if s <= 0.7][:-1]  # every step from 0.7 down but the last, into σ 0
    assert drawn and len(drawn) < len(levels)
    # a model that knows the data lands on it either way; the fresh draws only change the path there
    torch.testing.assert_close(plain, target, atol=1e-4, rtol=0)
    torch.testing.assert_close(noisy, target, atol=1e-4, rtol=0)
    drawn.clear()
    sample(model_fn, video=start, text=text, sigmas=sigmas, denoise_video=True, denoise_text=False,
           renoise=Renoise(0.0, 1.0, draw))
    assert drawn == []  # share 0: plain steps


def test_training_sigmas_are_in_range_and_seeded():
    a = sample_training_sigma(1000, generator=torch.Generator().manual_seed(0))
    b = sample_training_sigma(1000, generator=torch.Generator().manual_seed(0))
    assert torch.equal(a, b)
    assert 0 < a.min() and a.max() < 1
    assert abs(float(a.mean()) - 0.5) < 0.05  # logit-normal is symmetric about 0.5
    shifted = sample_training_sigma(1000, shift=3.0, generator=torch.Generator().manual_seed(0))
    assert shifted.mean() > a.mean()


def test_bad_step_count_is_refused():
    with pytest.raises(ValueError, match="num_inference_steps"):
        inference_sigmas(FlowMatchEulerDiscreteScheduler(), 0)


def test_flow_edit_moves_only_by_the_difference_of_the_two_flows():
    g = torch.Generator().manual_seed(2)
    source = torch.randn(1, 3, 2, 4, 4, generator=g)
    sigmas = inference_sigmas(FlowMatchEulerDiscreteScheduler(shift=3.0), 10, 0.9)
    seen = []

    def agree(x_src, x_tar, level):  # texts that agree: equal velocities, no difference
        seen.append((x_src.clone(), x_tar.clone(), float(level[0])))
        return torch.zeros_like(x_src), x_tar

    steps = []
    out = flow_edit(agree, source=source, text=torch.zeros(1, 3, dtype=torch.long), sigmas=sigmas,
                    generator=torch.Generator().manual_seed(0), callback=steps.append)
    assert torch.equal(out, source)  # nothing the texts agree on changes
    assert [lvl for _, _, lvl in seen] == pytest.approx(sigmas[:-1].tolist())
    assert [st.sigma for st in steps] == pytest.approx(sigmas[:-1].tolist()) and steps[-1].sigma_next == 0.0
    noises = []
    for x_src, x_tar, lvl in seen:
        assert torch.allclose(x_tar, x_src, atol=1e-6)  # the edit rides on the noised source
        noises.append((x_src - (1 - lvl) * source) / lvl)
    assert all(n.std() > 0.5 for n in noises)
    assert not any(torch.allclose(a, b) for a, b in zip(noises, noises[1:]))  # a fresh draw at every level

    shift = torch.randn(1, 3, 2, 4, 4, generator=g)

    def constant(x_src, x_tar, level):  # a difference that points the same way at every level
        return -shift, x_tar

    out = flow_edit(constant, source=source, text=torch.zeros(1, 3, dtype=torch.long), sigmas=sigmas,
                    generator=torch.Generator().manual_seed(0))
    assert torch.allclose(out, source + float(sigmas[0]) * shift, atol=1e-5)  # integrated from the start level to 0


def test_flow_edit_goes_on_from_part_way_as_if_never_stopped():
    """A run stopped after 3 steps and given its edit, the σ still to go and the generator's state
    there ends where the uninterrupted run does (best-of takes go on this way)."""
    g = torch.Generator().manual_seed(4)
    source, pull = torch.randn(1, 3, 2, 4, 4, generator=g), torch.randn(1, 3, 2, 4, 4, generator=g)
    sigmas = inference_sigmas(FlowMatchEulerDiscreteScheduler(shift=3.0), 8, 0.9)
    text = torch.zeros(1, 3, dtype=torch.long)

    def delta(x_src, x_tar, level):  # depends on the step's fresh noise, so a wrong draw shows
        return pull * x_src.mean() - x_tar, x_tar

    whole = flow_edit(delta, source=source, text=text, sigmas=sigmas, generator=torch.Generator().manual_seed(1))
    generator, states = torch.Generator().manual_seed(1), []

    def stop(step):
        states.append((step.video.clone(), generator.get_state()))
        if step.index == 2:
            raise StopIteration

    with pytest.raises(StopIteration):
        flow_edit(delta, source=source, text=text, sigmas=sigmas, generator=generator, callback=stop)
    edit, state = states[-1]
    generator = torch.Generator().manual_seed(99)
    generator.set_state(state)
    rest = flow_edit(delta, source=source, edit=edit, text=text, sigmas=sigmas[3:], generator=generator)
    assert torch.equal(rest, whole) and not torch.allclose(whole, source)
