"""The edit that keeps the rest (FlowEdit): `UniViGUPipeline.edit` given ``source_prompt``.

The clip follows the difference between the flows of the text it was made from (or captioned as)
and the edited text (`uvigu.flows.flow_edit`): what the two agree on stays as it was, what they
disagree on changes. Each step runs the network once on both texts, each conditioned and, for
guidance, unconditioned.
"""

from __future__ import annotations

import torch

from .flows import flow_edit, inference_sigmas, predict_clean
from .inputs import VideoInput, check_guidance, check_seed, check_steps, prepare_video
from .pipeline_output import StepCallback, TrajectoryStep, VideoResult
from .takes import Take

# FlowEdit keeps what the texts agree on by construction, so it can start from more noise than a
# plain edit and push the change harder; these defaults were chosen on clips the evaluation does
# not score (docs/EVAL.md).
FLOW_EDIT_STRENGTH = 0.9
# The edited text's guidance, unless the config sets flow_edit_guidance; the source text's is guidance_scale.
FLOW_EDIT_GUIDANCE = 6.0


class FlowEditMixin:
    """`UniViGUPipeline`'s FlowEdit run (one take of it)."""

    @torch.no_grad()
    def _run_flow_edit(
        self,
        video: VideoInput,
        prompt: str,
        source_prompt: str,
        strength: float,
        seed: int | None,
        num_inference_steps: int | None,
        guidance_scale: float | None,
        callback: StepCallback | None,
        return_trajectory: bool,
        take: Take | None = None,
    ) -> VideoResult:
        # ``prompt`` and ``source_prompt`` were checked (and warned of) by `edit`, which runs this.
        steps = check_steps(num_inference_steps, self.config.num_inference_steps)
        target_guidance = check_guidance(guidance_scale, self.default_flow_edit_guidance)
        source_guidance = float(self.config.guidance_scale)
        seed = check_seed(seed)
        frames, notes = prepare_video(video, self.config)
        generator = torch.Generator("cpu").manual_seed(seed)

        # One batch per step: source and edited text, each conditioned (text stream and prompt
        # encoder) and, for guidance, unconditioned (empty prompt through the encoder, as generate's).
        texts = [source_prompt, prompt]
        cfg = source_guidance != 1.0 or target_guidance != 1.0
        context = self._encode_prompts(texts + ["", ""] if cfg else texts)
        ids, mask = self._clean_text_stream(texts)
        if cfg:
            ids, mask = ids.repeat(2, 1), mask.repeat(2, 1)
        n = len(ids)

        source = self.codec.encode(torch.from_numpy(frames)[None]).to(self._device, self._dtype)
        sigmas = inference_sigmas(self.scheduler, steps, strength)

        guides = self._edit_guidance(source_prompt, prompt, frames, source.shape)

        def delta_fn(x_src, x_tar, level):
            x = torch.cat([x_src, x_tar] * (n // 2))
            clean_text = torch.zeros(n, device=x.device)
            v, _ = self.transformer(x, ids, level.repeat(n), clean_text, context, mask)
            v_src, v_tar = v[0:1], v[1:2]
            if guides is not None:  # each object's own text before and after the edit, along its paths
                v_src = guides[0](self.transformer, x_src, level, clean_text[:1], v_src)
                v_tar = guides[1](self.transformer, x_tar, level, clean_text[:1], v_tar)
            if cfg:
                v_src = v[2:3] + source_guidance * (v_src - v[2:3])
                v_tar = v[3:4] + target_guidance * (v_tar - v[3:4])
            return v_tar - v_src, predict_clean(x_tar, v_tar, level)

        trajectory: list[TrajectoryStep] | None = [] if return_trajectory else None
        edited, sigmas = self._resume_take(take, source, sigmas, generator, trajectory)
        on_step = self._step_callback(callback, trajectory, lambda s: self._decode(s.video_clean), text_denoised=False,
                                      take=take, generator=generator)
        edited = flow_edit(delta_fn, source=source, edit=edited, text=ids[1:2], sigmas=sigmas, generator=generator,
                           callback=on_step)
        frames = self._decode(edited)
        return VideoResult(frames, seed, None, trajectory, self.unknown_words(prompt), notes)
