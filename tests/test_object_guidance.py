import numpy as np
import pytest
import torch

from uvigu.object_guidance import ObjectGuidance, check_every, check_guidance_to, check_weight


class RecordingNet(torch.nn.Module):
    """A stand-in network whose velocity for each text is that text's context value, everywhere."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def forward(self, x, ids, sv, st, context, mask):
        self.calls.append((x, ids, sv, st, context, mask))
        v = context[:, 0, 0].reshape(-1, 1, 1, 1, 1).expand(len(ids), *x.shape[1:]).clone()
        return v, torch.zeros(len(ids), ids.shape[1], 5)


def _guidance(weight: float = 0.75, every: int = 1) -> ObjectGuidance:
    discs = torch.zeros(2, 1, 3, 4, 4, dtype=torch.bool)
    discs[0, :, :, :2, :2] = True  # the first object's path: the top left
    discs[1, :, :, 1:3, 1:3] = True  # the second's: the middle, over the first's at (1, 1)
    ids, mask = torch.tensor([[5, 6, 0], [7, 8, 9]]), torch.tensor([[True, True, False], [True, True, True]])
    context = torch.tensor([10.0, 20.0])[:, None, None].expand(2, 4, 8)
    return ObjectGuidance(ids, mask, context, discs, weight, to=0.5, every=every)


def test_each_path_takes_its_share_of_the_conditional_velocity_from_its_objects_prompt():
    guide, net = _guidance(), RecordingNet()
    x, v_cond = torch.randn(1, 2, 3, 4, 4), torch.ones(1, 2, 3, 4, 4)
    sv, st = torch.tensor([0.8]), torch.tensor([0.0])
    out = guide(net, x, sv, st, v_cond)

    # one call: every object's prompt on the step's clip, at its noise level, with the prompts' masks
    [(xs, ids, svs, sts, context, mask)] = net.calls
    assert torch.equal(xs, x.expand(2, -1, -1, -1, -1)) and torch.equal(ids, guide.ids)
    assert torch.equal(svs, torch.tensor([0.8, 0.8])) and torch.equal(sts, torch.tensor([0.0, 0.0]))
    assert torch.equal(context, guide.context) and torch.equal(mask, guide.mask)
    # a quarter the whole prompt's, three quarters the object's (10, 20); the later path wins where they meet
    first, second = 0.25 + 0.75 * 10, 0.25 + 0.75 * 20
    both = 0.25 * first + 0.75 * 20
    assert torch.all(out[..., 0, 0] == first) and torch.all(out[..., 0, 1] == first)
    assert torch.all(out[..., 2, 2] == second) and torch.all(out[..., 1, 1] == both)
    outside = ~guide.discs.any(0)[0]
    assert torch.equal(out[..., outside], v_cond[..., outside])  # elsewhere the whole prompt's, untouched


def test_below_its_noise_level_it_leaves_the_velocity_and_calls_nothing():
    guide, net = _guidance(), RecordingNet()
    v_cond = torch.randn(1, 2, 3, 4, 4)
    assert guide(net, torch.randn(1, 2, 3, 4, 4), torch.tensor([0.49]), torch.tensor([0.0]), v_cond) is v_cond
    assert net.calls == []
    full = _guidance(weight=1.0)(net, torch.randn(1, 2, 3, 4, 4), torch.tensor([0.5]), torch.tensor([0.0]), v_cond)
    assert torch.all(full[..., 2, 2] == 20.0)  # at its level it acts; weight 1: the object's alone


def test_the_level_it_acts_down_to_is_a_noise_level_below_one():
    assert check_guidance_to(0) == 0.0 and check_guidance_to(0.5) == 0.5 and check_guidance_to(np.float32(0.5)) == 0.5
    for bad in (1.0, -0.1, True, "0.5", None):
        with pytest.raises(ValueError, match="object_guidance_to must be a noise level from 0 up to, not including, 1"):
            check_guidance_to(bad)


def test_its_weight_is_a_share_from_0_to_1():
    assert check_weight(0) == 0.0 and check_weight(1) == 1.0 and check_weight(0.25) == 0.25
    assert check_weight(np.float32(0.25)) == 0.25  # a slider's or an array's number too
    for bad in (1.5, -0.1, True, "1", None):
        with pytest.raises(ValueError, match="object_guidance must be .* from 0 to 1, got"):
            check_weight(bad)


def test_every_third_step_calls_the_network_and_the_steps_between_add_its_last_change():
    guide, net = _guidance(every=3), RecordingNet()
    x, sv, st = torch.randn(1, 2, 3, 4, 4), torch.tensor([0.8]), torch.tensor([0.0])
    changes = []
    for step in range(7):
        v_cond = torch.full((1, 2, 3, 4, 4), float(step))
        changes.append(guide(net, x, sv, st, v_cond) - v_cond)
        if step == 3:  # below its level no step counts, and none calls
            assert guide(net, x, torch.tensor([0.3]), st, v_cond) is v_cond
    assert len(net.calls) == 3  # steps 0, 3 and 6
    for made, between in ((0, (1, 2)), (3, (4, 5))):
        for step in between:
            assert torch.equal(changes[step], changes[made])  # the change the last call made, again
    assert not torch.equal(changes[3], changes[0])  # a call's change follows the velocity it guides
    outside = ~guide.discs.any(0)[0]
    assert all(torch.all(c[..., outside] == 0) for c in changes)  # and stays on the paths
    # every 1 (the default) calls at every step, as before
    guide, net = _guidance(), RecordingNet()
    for _ in range(3):
        guide(net, x, sv, st, torch.ones(1, 2, 3, 4, 4))
    assert len(net.calls) == 3


def test_how_often_it_calls_is_a_whole_number_of_steps_from_one():
    assert check_every(1) == 1 and check_every(3) == 3
    for bad in (0, -1, 1.5, True, "2", None):
        with pytest.raises(ValueError, match="object_guidance_every must be a whole number of steps from 1"):
            check_every(bad)
