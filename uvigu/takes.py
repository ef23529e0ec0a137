"""Best of several takes (``best_of`` of generate and edit): each take made from its own seed,
captioned by the same network and judged against the prompt, and the best one kept. A take can be
judged part-way, then only the kept one is made to the end.

The pipeline runs each take (its ``make``); its step hook stops a take with `Judged` where it is
judged, and takes a kept one on from its `TakeState`."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np
import torch

from .flows.moving_noise import NoisePath
from .inputs import MAX_SEED, caption_settings, check_judge_at, check_judge_steps, check_seed
from .judge import TakeJudge, get_judge
from .pipeline_output import Candidate, CaptionResult, PipelineStep, StepCallback, VideoResult

if TYPE_CHECKING:
    from .pipeline import UniViGUPipeline


@dataclass(frozen=True)
class TakeState:
    """A best-of take stopped part-way: what going on from there needs (`best_of_takes`)."""

    done: int  # sampler steps made
    video: torch.Tensor  # the sampler's video after them (x at the next σ; for FlowEdit, the edit)
    generator: torch.Tensor  # the generator's state after them (FlowEdit draws noise at every step)
    steps: list[tuple[float, torch.Tensor, str | None]]  # when recorded: each step's σ, clean estimate, text
    objects: list[tuple[NoisePath, str]]  # generate: each object's path and own prompt, from the take's draft


@dataclass(frozen=True)
class Take:
    """How `best_of_takes` runs a take: stopped after ``stop_at(num_steps)`` of its steps, with `Judged`
    raised after the step's callback (``record``: each step's clean estimate kept in the state, so a
    trajectory can be decoded for the take that is kept), or going on from ``resume``."""

    stop_at: Callable[[int], int] | None = None
    record: bool = False
    resume: TakeState | None = None


class Judged(Exception):
    """Raised from a best-of take's step hook to stop it once it has been made far enough to judge:
    its clean estimate there, and its state to go on from."""

    def __init__(self, frames: np.ndarray, state: TakeState):
        super().__init__("judged")
        self.frames = frames
        self.state = state


def best_of_takes(
    pipe: UniViGUPipeline,
    prompt: str,
    best_of: int,
    judge: str | TakeJudge | None,
    judge_at: float | None,
    judge_steps: int | None,
    seed: int | None,
    make: Callable[[int, StepCallback | None, bool, Take | None], VideoResult],
    callback: StepCallback | None,
    return_trajectory: bool,
) -> VideoResult:
    """``best_of`` takes ``make(seed, callback, trajectory, take)`` from seeds one apart, each judged
    against ``prompt`` by its caption; the best one, with its caption and every take's score (see
    `UniViGUPipeline.generate`).

    A take judged part-way (``judge_at`` < 1) ends with `Judged` raised after the step it is
    judged at, with its clean estimate there and its state (the sampler's video, the generator's
    state and, for a trajectory, each step's clean estimate); the chosen one then goes on from
    its state to the end, which gives the same clip, step for step, as an uninterrupted run from
    its seed."""
    judge_fn = get_judge(pipe.config.take_judge if judge is None else judge)
    judge_at = check_judge_at(pipe.config.take_judge_at if judge_at is None else judge_at)
    judge_steps = check_judge_steps(pipe.config.take_judge_steps if judge_steps is None else judge_steps)
    seed = check_seed(seed)
    # The reading each take is judged by; the kept take's caption is read in full when that differs.
    quick = {"num_inference_steps": judge_steps, "reread": 0, "verify_weight": 0.0} if judge_steps else {}
    full = caption_settings(pipe.config)
    full_calls = full.steps + full.reread + int(full.verify_weight > 0)
    reading_calls = judge_steps or full_calls
    plan: dict[str, int] = {}  # a take's video steps and the steps it is judged after (from its first step)

    def judged_after(num_steps: int) -> int:
        if not plan:
            plan.update(video=num_steps, judged=min(num_steps, max(1, math.ceil(judge_at * num_steps - 1e-9))))
        return plan["judged"]

    part_way = judge_at < 1  # each take stops where it is judged (at the latest, after its last step)

    def finishing() -> tuple[int, int]:
        """Calls after the takes: the chosen take's steps after its judged one, and its caption read again."""
        return plan["video"] - plan["judged"], (full_calls if part_way or quick else 0)

    def progress(step: PipelineStep, done: int) -> None:
        """Pass ``step`` on to the caller as call ``done`` + its index of the whole run."""
        step.index += done
        step.num_steps = best_of * (plan["judged"] + reading_calls) + sum(finishing())
        callback(step)

    def take_hook(k: int) -> StepCallback:
        def hook(step: PipelineStep) -> None:
            judged = judged_after(step.num_steps)
            if callback is not None:
                progress(step, k * (judged + reading_calls))
        return hook

    def reading_hook(k: int) -> StepCallback | None:
        if callback is None:
            return None
        return lambda step: progress(step, k * (plan["judged"] + reading_calls) + plan["judged"])

    candidates: list[Candidate] = []
    best: tuple[float, int, VideoResult | None, TakeState | None, CaptionResult] | None = None
    for k in range(best_of):
        take_seed = (seed + k) % (MAX_SEED + 1)
        out: VideoResult | None = None
        state: TakeState | None = None
        try:
            out = make(take_seed, take_hook(k), return_trajectory and not part_way,
                       Take(stop_at=judged_after, record=return_trajectory) if part_way else None)
            frames = out.frames
        except Judged as judged:
            frames, state = judged.frames, judged.state
        read = pipe.caption(frames, seed=take_seed, callback=reading_hook(k),
                            return_trajectory=return_trajectory and not quick and not part_way, **quick)
        score = float(judge_fn(prompt, read.text))
        candidates.append(Candidate(take_seed, read.text, score))
        if best is None or score > best[0]:
            best = (score, take_seed, out, state, read)
    _, take_seed, out, state, read = best
    remake, reread = finishing()
    done = best_of * (plan["judged"] + reading_calls)
    if state is not None:  # judged part-way: made to the end from where it stopped
        at = done - state.done  # its steps report their index in the take
        out = make(take_seed, None if callback is None else lambda step: progress(step, at), return_trajectory,
                   Take(resume=state))
        done += remake
    if reread:  # the caption it was judged by is not the finished clip's full one
        read = pipe.caption(out.frames, seed=take_seed, return_trajectory=return_trajectory,
                            callback=None if callback is None else lambda step: progress(step, done))
    return replace(out, caption=read.text, candidates=candidates, caption_trajectory=read.trajectory)
