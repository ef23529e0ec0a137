"""Where each object of a prompt goes, as a path in the latent: for moving noise
(`uvigu.flows.moving_noise`) and object guidance (`uvigu.object_guidance`).

When a prompt's objects all go one way, the starting noise moves that way. When they go different
ways, a draft of the clip shows where each lands (`uvigu.judge.object_places`) and each object's
path starts there; an edit that keeps the rest finds them in the clip it edits
(`uvigu.judge.edit_places`).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from .flows.moving_noise import DIRECTIONS, NoisePath, check_share, moving_noise, path_discs, path_noise
from .judge import ObjectPlace, edit_places, object_places, prompt_motions
from .object_guidance import ObjectGuidance

NoiseMotion = Callable[[torch.Tensor], torch.Tensor]  # plain noise (b, c, f, h, w) -> noise moving as asked


class ObjectPathsMixin:
    """`UniViGUPipeline`'s object paths: the starting noise of generate and joint, and the object
    guidance of generate, joint and FlowEdit."""

    def _noise_motion(self, prompt: str, shape: torch.Size, share: float | None, generator: torch.Generator,
                      draft: Callable[[], np.ndarray], objects: list[tuple[NoisePath, str]] | None = None,
                      ) -> tuple[NoiseMotion | None, list[tuple[NoisePath, str]]]:
        """How the noise of a run moves as ``prompt`` asks (`generate`'s ``motion_noise``; ``share``
        None: the pipeline's): a function of plain noise of ``shape`` (b, c, f, h, w) that gives
        ``share`` of it the one way every object goes, or, when they go different ways, the
        pipeline's ``motion_noise_paths`` of it along each object's path, placed where ``draft()``
        (frames) shows the object (or, where it shows none, furthest from the others) — drawing its
        moving part from ``generator`` each time it is called (the starting noise, and any noise
        drawn afresh later in the run) —; None where the noise stays as drawn. With it, each such
        object's path and own prompt (none but for objects going different ways, and only when
        ``motion_noise_paths`` or ``object_guidance`` asks for the draft); ``objects`` given (a take
        going on from part-way), those, without a draft."""
        share = check_share(self.config.motion_noise if share is None else share)
        motions = prompt_motions(self.config.take_judge, prompt)
        speed = self.config.motion_noise_speed
        if share == 0.0 or not motions:
            return None, []
        if len(set(motions)) == 1:
            dy, dx = DIRECTIONS[motions[0]]
            if (dy, dx) == (0, 0):  # a still scene keeps the usual noise: it draws more objects
                return None, []
            return lambda noise: moving_noise(noise, (dy * speed, dx * speed), share, generator), []
        if self.config.motion_noise_paths == 0.0 and self.config.object_guidance == 0.0:
            return None, []
        if objects is None:
            frames = draft()
            objects = [(self._noise_path(place, frames.shape, shape), place.prompt)
                       for place in object_places(self.config.take_judge, prompt, frames, fill=True)]
        paths, paths_share = [path for path, _ in objects], self.config.motion_noise_paths
        return lambda noise: path_noise(noise, paths, paths_share, generator), objects

    def _noise_path(self, place: ObjectPlace, frames: tuple[int, ...], shape: torch.Size) -> NoisePath:
        """``place`` (in a clip of ``frames`` (f, h, w, 3)) as a path in a latent of ``shape`` (b, c, f, h, w),
        moving ``motion_noise_speed`` cells a frame the way the place's object goes."""
        cells = shape[-2] / frames[1], shape[-1] / frames[2]  # latent cells a pixel
        dy, dx = DIRECTIONS[place.motion]
        speed = self.config.motion_noise_speed
        return NoisePath((place.center[0] * cells[0], place.center[1] * cells[1]), (dy * speed, dx * speed),
                         place.radius * min(cells))

    def _edit_guidance(self, source_prompt: str, prompt: str, frames: np.ndarray,
                       shape: torch.Size) -> tuple[ObjectGuidance, ObjectGuidance] | None:
        """Object guidance of a FlowEdit (`edit` with ``source_prompt``) of ``frames`` into a latent of
        ``shape``: for the source text's flow, each object along its path in the clip by its own text
        before the edit; for the edited text's, the same object by its own text after it, along the
        path it takes after it from the same start (`uvigu.judge.edit_places`). None when the
        pipeline's ``object_guidance`` is 0 or the texts name fewer than two objects."""
        if self.config.object_guidance == 0.0:
            return None
        pairs = edit_places(self.config.take_judge, source_prompt, prompt, frames)
        if not pairs:
            return None
        before, after = [], []
        for old, new in pairs:
            path, edited = self._noise_path(old, frames.shape, shape), self._noise_path(new, frames.shape, shape)
            before.append((path, old.prompt))
            after.append((path.turned(edited.step, edited.radius, shape[2]), new.prompt))
        return self._object_guidance(before, shape), self._object_guidance(after, shape)

    def _object_guidance(self, objects: list[tuple[NoisePath, str]], shape: torch.Size) -> ObjectGuidance | None:
        """Guidance of each object's path (``objects``: paths in a latent of ``shape`` (b, c, f, h, w)
        and each one's own prompt) by its prompt, at the pipeline's ``object_guidance`` (None: off,
        or no objects)."""
        if not objects or self.config.object_guidance == 0.0:
            return None
        prompts = [text for _, text in objects]
        ids, mask = self._clean_text_stream(prompts)
        discs = path_discs([path for path, _ in objects], *shape[2:])[:, None].to(self._device)
        return ObjectGuidance(ids, mask, self._encode_prompts(prompts), discs, self.config.object_guidance,
                              self.config.object_guidance_to, self.config.object_guidance_every)
