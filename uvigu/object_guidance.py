"""Object guidance (the pipeline's ``object_guidance``): when a prompt's objects go different ways,
each object's path is guided by a prompt of its own.

The shipped Shapes model draws one object, or objects that all go one way, mostly as asked, but
binds motion words to the wrong object when two objects go different ways (docs/EVAL.md, *In
short*). Along each object's path — the disc a draft of the clip put it in, moved the way the
prompt moves it (`uvigu.flows.moving_noise.path_discs`) — the conditional velocity of classifier-free
guidance comes, for the weight ``object_guidance``, from that object alone in a prompt of its own
(`uvigu.judge.ObjectPlace.prompt`), which the model draws as it draws one-object prompts; outside
the paths, and at the steps below ``object_guidance_to``, it is the whole prompt's. Regional
prompting (MultiDiffusion, LMD) composes an image from per-region prompts in the same way. Each
guided step costs one more network call, on a batch of one text per object.

An edit that keeps the rest (FlowEdit: ``pipe.edit`` with ``source_prompt``) of a clip of two or
more objects is guided the same way on both of its flows: the source text's by each object's own
text before the change, along its path in the clip being edited, and the edited text's by its
text after the change, along the path that gives it from the same start
(`uvigu.judge.edit_places`) — so the edited object is changed, and the others kept, as in an
edit of one object. Two more calls a guided step.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from .inputs import number_in_range, whole_in_range

# Object guidance acts at the steps from pure noise down to this noise level (the model's
# object_guidance_to): through where the layout and each object's motion and shape are decided. Of
# 0.75, 0.5 and 0.25, the lowest drew the most objects right (docs/EVAL.md, notes).
OBJECT_GUIDANCE_TO = 0.25


def check_weight(weight: float) -> float:
    """The share of the guidance along each path that its object's own prompt gives: 0 (off) to 1."""
    return number_in_range(weight, "object_guidance", 0.0, 1.0, "a share of the guidance")


def check_guidance_to(level: float) -> float:
    """The noise level object guidance acts down to: a number from 0 up to, not including, 1."""
    return number_in_range(level, "object_guidance_to", 0.0, 1.0, "a noise level", below=True)


def check_every(steps: int) -> int:
    """How often object guidance calls the network on the objects' prompts: every this many of its
    steps, a whole number from 1."""
    return whole_in_range(steps, "object_guidance_every", 1, None, "a whole number of steps")


@dataclass(frozen=True)
class ObjectGuidance:
    """Each object's own prompt, as the network reads it, and where its path lies.

    ``ids``/``mask`` (n, l): the prompts' clean text streams; ``context``: the prompts through the
    prompt encoder; ``discs`` (n, 1, f, h, w) bool: each path in the latent grid; ``weight``: the
    share of the conditional velocity the object's prompt gives in its disc (the later object wins
    where discs overlap); ``to``: the lowest noise level it acts at; ``every``: it calls the network
    at the first of its steps and every ``every``-th after, and the steps between add the change it
    made to the velocity last (one network call saved a step between; FasterCache reuses the
    guidance's difference across steps the same way). One instance guides one
    run: it counts the run's steps, so a best-of take going on from part-way makes its first guided
    step afresh."""

    ids: torch.Tensor
    mask: torch.Tensor
    context: torch.Tensor
    discs: torch.Tensor
    weight: float
    to: float
    every: int = 1
    _last: dict = field(default_factory=dict, compare=False, repr=False)  # steps made, the last change

    def __call__(self, net: torch.nn.Module, x: torch.Tensor, sv: torch.Tensor, st: torch.Tensor,
                 v_cond: torch.Tensor) -> torch.Tensor:
        """``v_cond`` (1, c, f, h, w), the whole prompt's conditional velocity at ``x`` (a step of
        ``net``'s at video level ``sv``), with each disc's share from its object's prompt."""
        if float(sv[0]) < self.to:
            return v_cond
        step = self._last.get("steps", 0)
        self._last["steps"] = step + 1
        if step % self.every and "change" in self._last:  # a step between: the last call's change again
            return v_cond + self._last["change"]
        n = len(self.ids)
        each = lambda t: t.expand(n, *t.shape[1:])  # noqa: E731
        v_objects, _ = net(each(x), self.ids, each(sv), each(st), self.context, self.mask)
        guided = v_cond
        for disc, v_object in zip(self.discs, v_objects.to(v_cond.dtype)):
            guided = torch.where(disc, (1.0 - self.weight) * guided + self.weight * v_object, guided)
        if self.every > 1:
            self._last["change"] = guided - v_cond
        return guided
