"""The caption task: clip → detailed caption, the text stream denoised with the clip held clean.

After the steps, re-read passes (`uvigu.flows.reread`) redraw the words a neighbour decided, and a
check (`uvigu.flows.verify`) lets the video stream settle the words the text stream is unsure of,
judging each candidate caption by how well it predicts the clip as a prompt.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from .flows import SamplerStep, interpolate, sample
from .flows import reread as reread_text
from .flows import verify as verify_text
from .inputs import VideoInput, caption_settings, check_seed, prepare_video
from .pipeline_output import CaptionResult, StepCallback, TrajectoryStep

VERIFY_SIGMA = 0.5  # noise level at which candidate captions are judged by the video stream


class CaptionMixin:
    """`UniViGUPipeline.caption`, with the check's judge and the grammar it keeps."""

    @torch.no_grad()
    def caption(
        self,
        video: VideoInput,
        *,
        seed: int | None = None,
        num_inference_steps: int | None = None,
        temperature: float | None = None,
        reread: int | None = None,
        reread_threshold: float | None = None,
        reread_period: int | None = None,
        verify_weight: float | None = None,
        verify_max_texts: int | None = None,
        verify_draws: int | None = None,
        callback: StepCallback | None = None,
        return_trajectory: bool = False,
    ) -> CaptionResult:
        """Clip (uint8 (f, h, w, 3) or a video file path) → detailed caption.

        ``temperature`` scales the logits each step draws its tokens from (default: the pipeline's
        ``text_temperature``, 1 — the model's own posterior); lower is more literal, 0 takes the
        most likely token. ``reread`` passes (default: the pipeline's ``caption_reread``) then
        re-predict each word of the finished caption with the word before it noised, so that a
        shape is read from the clip rather than from the colour written beside it
        (`uvigu.flows.reread`); each is one more network call. A pass changes a word only where it
        gives the written word a probability below ``reread_threshold`` (default: the pipeline's
        ``caption_reread_threshold``; 1: always the most likely word). A pass redraws 2 of every
        ``reread_period`` positions of each of as many copies (default: the pipeline's
        ``caption_reread_period``): a longer period keeps more of the caption written around each word, at the cost of a
        larger batch. ``verify_weight`` (default: the pipeline's ``caption_verify_weight``; 0 turns
        it off) then lets the video stream settle the words the text stream is unsure of: each
        likely word is tried in the caption, and the one whose caption best predicts the clip —
        the clip noised to σ = 0.5, denoised with that caption as the prompt — wins, weighed
        against the text's own probability by this weight (`uvigu.flows.verify`; one more network
        call, on ``verify_draws`` noise draws — default: the pipeline's ``caption_verify_draws`` — of
        each of at most ``verify_max_texts`` candidate captions — default: the pipeline's
        ``caption_verify_max_texts`` —, the most unsure words first). The
        trajectory ends with one entry per pass and one for the check (σ = 0).
        """
        settings = caption_settings(
            self.config, num_inference_steps=num_inference_steps, temperature=temperature, reread=reread,
            reread_threshold=reread_threshold, reread_period=reread_period, verify_weight=verify_weight,
            verify_max_texts=verify_max_texts, verify_draws=verify_draws,
        )
        steps, passes, period = settings.steps, settings.reread, settings.reread_period
        seed = check_seed(seed)
        frames, notes = prepare_video(video, self.config)
        generator = torch.Generator("cpu").manual_seed(seed)
        latents = self.codec.encode(torch.from_numpy(frames)[None]).to(self._device, self._dtype)
        flow = self.text_flow
        text = flow.sample_source((1, self.config.max_text_len), generator=generator).to(self._device)
        context = self._encode_prompts([""])
        sigmas = torch.linspace(1.0, 0.0, steps + 1)  # text needs no resolution shift
        trajectory: list[TrajectoryStep] | None = [] if return_trajectory else None

        def model_fn(x, ids, sv, st):
            return self.transformer(x, ids, sv, st, context.expand(x.shape[0], -1, -1))

        # The re-read passes and the check are reported through the same hook as the steps, after them.
        extra = passes + int(settings.verify_weight > 0)
        on_step = self._step_callback(callback, trajectory, lambda s: frames, text_denoised=True, extra_steps=extra)
        result = sample(
            model_fn, video=latents, text=text, sigmas=sigmas, denoise_video=False, denoise_text=True,
            text_flow=flow, generator=generator, text_temperature=settings.temperature, callback=on_step,
        )
        text, probs = result.text, None

        def finished_call(k: int) -> None:  # call k after the steps (σ 0): a trajectory entry, then progress
            if on_step is not None:
                on_step(SamplerStep(steps + k, steps, 0.0, 0.0, latents, None, text))

        for k in range(passes):
            text, probs = reread_text(model_fn, video=latents, text=text, text_flow=flow, generator=generator,
                                      threshold=settings.reread_threshold, period=period, return_probs=True)
            finished_call(k)
        if settings.verify_weight > 0:
            if probs is None:  # no re-read pass: read the words' probabilities without changing any
                _, probs = reread_text(model_fn, video=latents, text=text, text_flow=flow, generator=generator,
                                       threshold=0.0, period=period, return_probs=True)
            text = verify_text(self._caption_errors(latents, generator, settings.verify_draws), text=text,
                               probs=probs, weight=settings.verify_weight, max_texts=settings.verify_max_texts,
                               accept=self._keeps_grammar(text[0]))
            finished_call(passes)
        return CaptionResult(self._caption_text(text[0]), seed, trajectory, notes)

    def _caption_errors(self, latents: torch.Tensor, generator: torch.Generator, draws: int):
        """``flows.verify``'s judge: log of the squared error of the clean-clip estimate from the clip
        ``latents`` (b, c, f, h, w) noised to VERIFY_SIGMA, with each candidate text as the prompt (its
        ids in the text stream up to its end token, its words through the prompt encoder), averaged
        over ``draws`` noise draws, the same for every candidate so that only the text differs."""
        noise = torch.randn((draws, *latents.shape[1:]), generator=generator).to(self._device, torch.float32)
        clean = latents.float()
        end_id = self.tokenizer.eos_token_id

        def error_fn(rows: torch.Tensor, texts: torch.Tensor) -> torch.Tensor:
            n, d = len(texts), draws
            x = clean[rows].repeat_interleave(d, dim=0)  # (n·d, c, f, h, w), the draws of a text together
            x_t = interpolate(x, noise.repeat(n, *([1] * (noise.ndim - 1))), torch.full((n * d,), VERIFY_SIGMA))
            ids = texts.repeat_interleave(d, dim=0).to(self._device)
            ends = ids == end_id
            mask = (ends.cumsum(1) - ends.long()) == 0  # every token up to and with the first end token
            context = self._encode_prompts([self._decode_ids(t) for t in texts]).repeat_interleave(d, dim=0)
            estimate = self._clean_estimate(x_t, ids, mask, context, VERIFY_SIGMA)
            squared = (estimate - x).pow(2).flatten(1).mean(1).view(n, d)
            return squared.mean(1).log()

        return error_fn

    def _keeps_grammar(self, ids: torch.Tensor) -> Callable[[torch.Tensor], bool] | None:
        """For the caption's check (`uvigu.flows.verify`): when the caption ``ids`` follows the
        grammar the model writes, only candidate captions that still do may be tried — the check
        judges each word with the others as written, and a word the video stream favours can break
        the sentence ("… on a a background."); ``None`` (every candidate) otherwise."""
        grammar = self._grammar()
        if grammar is None or not grammar.follows_grammar(self._caption_text(ids)):
            return None
        return lambda candidate: grammar.follows_grammar(self._caption_text(candidate))
