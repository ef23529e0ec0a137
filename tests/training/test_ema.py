import torch

from uvigu.training.ema import EMA, ema_decay_at


def test_ema_update_is_a_lerp_with_warmed_up_decay():
    model = torch.nn.Linear(3, 2)
    ema = EMA([model], decay=0.9)
    start = [p.detach().clone() for p in ema.modules[0].parameters()]
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    target = [p.detach().clone() for p in model.parameters()]

    # Early steps use the warm-up decay (1 + t) / (10 + t); later ones the configured decay.
    assert ema_decay_at(0, 0.9) == 0.1
    assert ema_decay_at(1000, 0.9) == 0.9
    assert ema.update([model], step=0) == 0.1
    for avg, a, b in zip(ema.modules[0].parameters(), start, target):
        torch.testing.assert_close(avg, 0.1 * a + 0.9 * b)

    before = [p.detach().clone() for p in ema.modules[0].parameters()]
    ema.update([model], step=1000)
    for avg, a, b in zip(ema.modules[0].parameters(), before, target):
        torch.testing.assert_close(avg, 0.9 * a + 0.1 * b)

    copy = torch.nn.Linear(3, 2)
    ema.copy_to([copy])
    for c, avg in zip(copy.parameters(), ema.modules[0].parameters()):
        torch.testing.assert_close(c, avg)
    assert not any(p.requires_grad for p in ema.modules[0].parameters())
