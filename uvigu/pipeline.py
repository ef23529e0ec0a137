"""UniViGUPipeline: generate, caption, generate-with-caption and edit with one network.

Each task is a noise configuration of the same transformer (DESIGN §2.3):

| task     | video                           | text stream                  | cross-attention      |
|----------|---------------------------------|------------------------------|----------------------|
| generate | noise → clean                   | the prompt, clean (σ = 0)    | encoder(prompt), CFG |
| caption  | the clip, clean (σ = 0)         | source → clean (jump rule)   | encoder("")          |
| joint    | noise → clean                   | source → clean, same σ       | encoder(prompt), CFG |
| edit     | the clip noised to ``strength`` | the edited text, clean       | encoder(text), CFG   |

The story follows diffusers' Wan pipeline: check inputs → encode the prompt → prepare latents and
text → one denoising loop with a step callback → decode → a result dataclass. This module holds
that story for generate, joint and the plain edit; the class takes the rest from one module per
idea: the caption task (`uvigu.captioning`), the edit that keeps the rest (`uvigu.flow_editing`),
each object's path for moving noise and object guidance (`uvigu.object_paths`), the model's words
and grammar (`uvigu.language`) and the high-noise expert (`uvigu.models.expert`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from diffusers import DiffusionPipeline, FlowMatchEulerDiscreteScheduler
from transformers import PreTrainedTokenizerBase

from .captioning import CaptionMixin
from .flow_editing import FLOW_EDIT_GUIDANCE, FLOW_EDIT_STRENGTH, FlowEditMixin
from .flows import (
    RENOISE_FROM,
    REREAD_PERIOD,
    VERIFY_DRAWS,
    VERIFY_MAX_TEXTS,
    DiscreteFlow,
    Renoise,
    SamplerStep,
    check_renoise_from,
    inference_sigmas,
    interpolate,
    predict_clean,
    sample,
)
from .flows.moving_noise import NoisePath, check_draft, check_share, check_speed
from .inputs import (
    VideoInput,
    check_best_of,
    check_guidance,
    check_judge_at,
    check_judge_steps,
    check_prompt,
    check_seed,
    check_steps,
    check_strength,
    prepare_video,
)
from .judge import TakeJudge, get_judge, prompt_words
from .language import LanguageMixin
from .models import autoencoder as _autoencoder  # noqa: F401  diffusers' loader resolves saved component
from .models import codec as _pixel_codec  # noqa: F401
from .models import wan_codec as _wan_codec  # noqa: F401  classes only from modules already imported
from .models.expert import HighNoiseExpertMixin
from .models.prompt_encoder import encode_prompt
from .models.tokenizer import decode_text, encode_text
from .models.transformer import UniViGUTransformer3DModel
from .object_guidance import OBJECT_GUIDANCE_TO, check_every, check_guidance_to, check_weight
from .object_paths import NoiseMotion, ObjectPathsMixin
from .pipeline_output import PipelineStep, StepCallback, TrajectoryStep, VideoResult
from .read_guidance import READ_GUIDANCE_FROM, READ_GUIDANCE_TOP, ReadGuidance, check_read_from
from .takes import Judged, Take, TakeState, best_of_takes

Task = Literal["generate", "caption", "joint", "edit"]
EDIT_STRENGTH = 0.6  # a plain edit's default start level, unless the pipeline's config sets edit_strength


class UniViGUPipeline(
    CaptionMixin, FlowEditMixin, ObjectPathsMixin, LanguageMixin, HighNoiseExpertMixin, DiffusionPipeline
):
    """One diffusion transformer that generates video from text and describes video in text."""

    model_cpu_offload_seq = "text_encoder->transformer->codec"
    _optional_components: list[str] = []

    def __init__(
        self,
        transformer: UniViGUTransformer3DModel,
        text_encoder,
        tokenizer: PreTrainedTokenizerBase,
        codec,
        scheduler: FlowMatchEulerDiscreteScheduler,
        fps: int = 8,
        num_frames: int = 16,
        height: int = 64,
        width: int = 64,
        max_text_len: int = 48,  # text stream length (tokens, end token included)
        max_prompt_len: int = 48,  # prompt-encoder length
        num_inference_steps: int = 20,
        caption_steps: int = 16,
        guidance_scale: float = 3.0,
        text_source: str = "uniform",
        text_exponent: float = 1.0,
        text_temperature: float = 1.0,
        caption_reread: int = 1,  # re-read passes over a finished caption (flows.reread); 0: none
        caption_reread_threshold: float = 1.0,  # a re-read changes a word the re-read gives less than this
        caption_reread_period: int = REREAD_PERIOD,  # a re-read redraws 2 of every this many positions, on as many copies
        caption_verify_weight: float = 0.0,  # the video stream's say on unsure caption words (flows.verify); 0: none
        caption_verify_max_texts: int = VERIFY_MAX_TEXTS,  # candidate captions the check judges at most
        caption_verify_draws: int = VERIFY_DRAWS,  # noise draws of the clip per candidate caption
        edit_strength: float = EDIT_STRENGTH,  # a plain edit's start level: regenerated from the clip noised this far
        flow_edit_guidance: float = FLOW_EDIT_GUIDANCE,  # the edited text's guidance in an edit given source_prompt
        take_judge: str = "words",  # how best-of-N generation compares a take's caption with the prompt (uvigu.judge)
        take_judge_at: float = 1.0,  # best-of-N judges each take after this share of its steps; 1: finished
        take_judge_steps: int = 0,  # ... by a quick caption of this many steps; 0: the caption at its defaults
        read_guidance: float = 0.0,  # generate: how hard the model's own reading of the clip steers it; 0: off
        read_guidance_from: float = READ_GUIDANCE_FROM,  # ... at the steps from this noise level up to 0.95
        motion_noise: float = 0.0,  # generate, joint: the share of the starting noise moving as the prompt asks
        motion_noise_speed: float = 1.0,  # ... in latent cells a latent frame
        motion_noise_paths: float = 0.0,  # ... objects going different ways: the share along each one's path
        motion_noise_draft: int = 6,  # ... found in a draft: the run's first this many steps, plain noise
        object_guidance: float = 0.0,  # ... along each path, the share of guidance from the object's own prompt
        object_guidance_to: float = OBJECT_GUIDANCE_TO,  # ... at the steps down to this noise level
        object_guidance_every: int = 1,  # ... calling the network every this many of them (the rest reuse)
        renoise: float = 0.0,  # generate, joint: the share of the noise each step draws afresh (flows.Renoise); 0: off
        renoise_from: float = RENOISE_FROM,  # ... at the steps from this noise level down
    ):
        super().__init__()
        self.register_modules(
            transformer=transformer, text_encoder=text_encoder, tokenizer=tokenizer, codec=codec, scheduler=scheduler
        )
        self.register_to_config(
            fps=fps,
            num_frames=num_frames,
            height=height,
            width=width,
            max_text_len=max_text_len,
            max_prompt_len=max_prompt_len,
            num_inference_steps=num_inference_steps,
            caption_steps=caption_steps,
            guidance_scale=guidance_scale,
            text_source=text_source,
            text_exponent=text_exponent,
            text_temperature=text_temperature,
            caption_reread=caption_reread,
            caption_reread_threshold=caption_reread_threshold,
            caption_reread_period=caption_reread_period,
            caption_verify_weight=caption_verify_weight,
            caption_verify_max_texts=caption_verify_max_texts,
            caption_verify_draws=caption_verify_draws,
            edit_strength=check_strength(edit_strength),
            flow_edit_guidance=check_guidance(flow_edit_guidance, FLOW_EDIT_GUIDANCE, "flow_edit_guidance"),
            take_judge=take_judge,
            take_judge_at=check_judge_at(take_judge_at),
            take_judge_steps=check_judge_steps(take_judge_steps),
            read_guidance=check_guidance(read_guidance, 0.0, "read_guidance"),
            read_guidance_from=check_read_from(read_guidance_from),
            motion_noise=check_share(motion_noise),
            motion_noise_speed=check_speed(motion_noise_speed),
            motion_noise_paths=check_share(motion_noise_paths, "motion_noise_paths"),
            motion_noise_draft=check_draft(motion_noise_draft),
            object_guidance=check_weight(object_guidance),
            object_guidance_to=check_guidance_to(object_guidance_to),
            object_guidance_every=check_every(object_guidance_every),
            renoise=check_share(renoise, "renoise"),
            renoise_from=check_renoise_from(renoise_from),
        )
        get_judge(take_judge)  # an unknown name fails at load, not at the first best-of generation
        self._high_noise: tuple[UniViGUPipeline, float] | None = None  # use_high_noise_expert
        self._expert_folder: Path | None = None  # the high_noise_expert/ it was loaded from, which save copies

    @classmethod
    def from_wan_pretrained(cls, path: str | Path, **kwargs) -> "UniViGUPipeline":
        """Load a local diffusers-format Wan2.1-T2V folder and extend its transformer with a text stream.

        Options (dtype, VAE tiling/slicing, clip size, …): ``uvigu.models.wan_loading.load_wan_pipeline``.
        """
        from .models.wan_loading import load_wan_pipeline

        return load_wan_pipeline(path, **kwargs)

    # --- properties the studio and CLI read ----------------------------------------------------

    @property
    def fps(self) -> int:
        return self.config.fps

    @property
    def default_edit_strength(self) -> float:
        """The plain edit's start level (``edit`` without ``source_prompt``): the config's ``edit_strength``."""
        return self.config.edit_strength

    @property
    def default_flow_edit_strength(self) -> float:
        """The start level of an edit given ``source_prompt`` (FlowEdit)."""
        return FLOW_EDIT_STRENGTH

    @property
    def default_flow_edit_guidance(self) -> float:
        """The edited text's guidance in an edit given ``source_prompt`` (FlowEdit): the config's
        ``flow_edit_guidance``, 6 for folders saved without it."""
        return self.config.flow_edit_guidance

    @property
    def default_num_frames(self) -> int:
        return self.config.num_frames

    @property
    def default_height(self) -> int:
        return self.config.height

    @property
    def default_width(self) -> int:
        return self.config.width

    @property
    def max_text_tokens(self) -> int:
        """Longest prompt or caption, in tokens: what fits the text stream.

        The prompt encoder reads the first ``max_prompt_len`` tokens of it, as in training, where
        detailed captions used as conditions are cut the same way; the text stream holds all of it.
        """
        return self.config.max_text_len - 1

    @property
    def text_flow(self) -> DiscreteFlow:
        return DiscreteFlow(
            vocab_size=self.transformer.config.vocab_size,
            mask_token_id=self.transformer.config.mask_token_id,
            source=self.config.text_source,
            exponent=self.config.text_exponent,
        )

    # --- public tasks --------------------------------------------------------------------------

    def generate(
        self,
        prompt: str,
        *,
        seed: int | None = None,
        num_inference_steps: int | None = None,
        guidance_scale: float | None = None,
        num_frames: int | None = None,
        height: int | None = None,
        width: int | None = None,
        best_of: int = 1,
        judge: str | TakeJudge | None = None,
        judge_at: float | None = None,
        judge_steps: int | None = None,
        read_guidance: float | None = None,
        read_guidance_from: float | None = None,
        motion_noise: float | None = None,
        high_noise_expert: bool = True,
        callback: StepCallback | None = None,
        return_trajectory: bool = False,
    ) -> VideoResult:
        """Text → clip. Returns uint8 frames (f, h, w, 3).

        ``motion_noise`` (default: the pipeline's ``motion_noise``; 0: off) is the share of the
        starting noise that already moves the way the prompt asks (`uvigu.flows.moving_noise`),
        ``motion_noise_speed`` latent cells a frame: when every object of the prompt goes the same
        direction, as the pipeline's ``take_judge`` reads it (`uvigu.judge.prompt_motions`; the
        Shapes grammar for the shipped model, no motion for ``"words"``). When the objects go
        different ways and the pipeline's ``motion_noise_paths`` or ``object_guidance`` is above 0,
        a draft — the run's first ``motion_noise_draft`` steps from plain noise, as many more
        network calls, which the callback is not told of — shows where each object lands
        (`uvigu.judge.object_places`; an object it does not show goes where its path keeps
        furthest from the others'); ``motion_noise_paths`` of the noise moves along each
        object's path, from there, the way the prompt moves it (`uvigu.flows.moving_noise.path_noise`),
        and at the steps down to ``object_guidance_to`` the object's own prompt gives
        ``object_guidance`` of the guidance along its path (`uvigu.object_guidance`; one more
        network call a step, or, with ``object_guidance_every`` N > 1, every N-th step, the steps
        between adding the change the last call made). Other prompts, and ``motion_noise`` 0, start
        from the usual noise.

        With the pipeline's ``renoise`` above 0, the steps from noise level ``renoise_from`` down are
        stochastic: each draws that share of its noise afresh, moving as the starting noise does
        (`uvigu.flows.Renoise`); 0, the default, keeps plain Euler steps.

        ``high_noise_expert=False`` makes every step with this model, leaving an attached expert
        (`use_high_noise_expert`) out of this call; it stays attached. Without one it changes nothing.

        ``read_guidance`` > 0 (default: the pipeline's ``read_guidance``, 0 — off) lets the model's
        own understanding steer the clip: at the steps from σ 0.95 (``READ_GUIDANCE_TOP``) down to
        ``read_guidance_from`` (default: the pipeline's ``read_guidance_from``) the text stream reads
        the clean estimate as a caption would, and the step moves the clip along the gradient that
        makes that reading use the prompt's words (`uvigu.judge.prompt_words`: for the Shapes model
        each object's colour, shape and motion, and not the opposite direction), scaled to this size
        against a velocity of unit RMS. Each such step costs about three more network calls, forward
        and backward.

        ``best_of`` > 1 makes that many takes, from ``seed``, ``seed`` + 1, …, captions each with
        the same network (`caption`, at its defaults, with the take's seed) and returns the take
        whose caption agrees best with the prompt, its caption and every take's score in
        ``candidates`` (a tie goes to the earlier take). ``judge`` compares the two texts: a name
        of `uvigu.judge.JUDGES` or a callable (prompt, caption) → score; default: the pipeline's
        ``take_judge``. The result's ``seed`` is the chosen take's, so ``generate(prompt,
        seed=result.seed)`` makes the same clip again. Each take costs a generation and a caption;
        the callback counts the calls of all of them.

        Judging can stop short (default: the pipeline's ``take_judge_at`` and ``take_judge_steps``):
        ``judge_at`` < 1 judges each take by the clean estimate after that share of its steps —
        which way things move and what they are is settled well before the end — and then takes
        only the chosen one on from there to the end (the clip, and the trajectory, an
        uninterrupted run from its seed makes); ``judge_steps`` > 0 reads each take with a
        quick caption of that many steps (no re-read, no check; 0: the caption at its defaults).
        The chosen clip's ``caption`` is then read at the caption's defaults, and each candidate's
        caption is the one it was judged by.
        """
        prompt = check_prompt(self.tokenizer, prompt, self.max_text_tokens)  # once, before any take is made

        def make(take_seed: int | None, take_callback: StepCallback | None, trajectory: bool,
                 take: Take | None = None) -> VideoResult:
            return self._run_video("generate", prompt, None, 1.0, take_seed, num_inference_steps, guidance_scale,
                                   num_frames, height, width, take_callback, trajectory, take, read_guidance,
                                   high_noise_expert, read_guidance_from, motion_noise)

        if check_best_of(best_of) > 1:
            return best_of_takes(self, prompt, best_of, judge, judge_at, judge_steps, seed, make, callback,
                                 return_trajectory)
        return make(seed, callback, return_trajectory)

    def generate_with_caption(
        self,
        prompt: str,
        *,
        seed: int | None = None,
        num_inference_steps: int | None = None,
        guidance_scale: float | None = None,
        num_frames: int | None = None,
        height: int | None = None,
        width: int | None = None,
        motion_noise: float | None = None,
        high_noise_expert: bool = True,
        callback: StepCallback | None = None,
        return_trajectory: bool = False,
    ) -> VideoResult:
        """Text → clip and its detailed caption in one joint denoising pass (``motion_noise``,
        ``high_noise_expert`` and the pipeline's ``renoise`` as `generate`'s)."""
        prompt = check_prompt(self.tokenizer, prompt, self.max_text_tokens)
        return self._run_video(
            "joint", prompt, None, 1.0, seed, num_inference_steps, guidance_scale, num_frames, height, width,
            callback, return_trajectory, high_noise_expert=high_noise_expert, motion_noise=motion_noise,
        )

    def edit(
        self,
        video: VideoInput,
        prompt: str,
        *,
        strength: float | None = None,
        source_prompt: str | None = None,
        seed: int | None = None,
        num_inference_steps: int | None = None,
        guidance_scale: float | None = None,
        best_of: int = 1,
        judge: str | TakeJudge | None = None,
        judge_at: float | None = None,
        judge_steps: int | None = None,
        high_noise_expert: bool = True,
        callback: StepCallback | None = None,
        return_trajectory: bool = False,
    ) -> VideoResult:
        """Regenerate ``video`` (uint8 (f, h, w, 3) or a file) conditioned on ``prompt``, starting at
        noise level ``strength`` (0 keeps the clip, 1 ignores it).

        Without ``source_prompt`` the clip is noised to ``strength`` (default: the pipeline's
        ``edit_strength``, 0.6 unless its ``model_index.json`` says otherwise) and denoised
        with ``prompt`` (SDEdit): everything the noise hides is drawn again. With it — the text
        the clip was made from or captioned as, before the change — the clip follows the
        difference between the two texts' flows (FlowEdit, `uvigu.flows.flow_edit`): what the
        two texts agree on stays as it was and what they disagree on changes. Its defaults are
        ``strength`` 0.9 and, for ``prompt``, ``guidance_scale`` the pipeline's ``flow_edit_guidance``
        (6 unless its ``model_index.json`` says otherwise; the source text is guided at the
        pipeline's ``guidance_scale``); each step runs the network on both texts. When the two texts
        name the same two or more objects and the pipeline's ``object_guidance`` is above 0, each
        object is also guided by its own text before and after the change, along its path in the
        clip and the path the change gives it (`uvigu.object_guidance`; two more calls a step down to
        ``object_guidance_to``).

        ``best_of``, ``judge``, ``judge_at`` and ``judge_steps`` work as in `generate`: that many
        edits from seeds one apart, each captioned, the one whose caption agrees best with
        ``prompt`` kept. ``high_noise_expert`` works as in `generate` (an expert makes the plain edit's
        steps at its noise levels, which the default ``strength`` never reaches, and none of FlowEdit's).
        """
        if strength is None:
            strength = self.default_edit_strength if source_prompt is None else self.default_flow_edit_strength
        strength = check_strength(strength)
        prompt = check_prompt(self.tokenizer, prompt, self.max_text_tokens)  # once, before any take is made
        if source_prompt is not None:
            source_prompt = check_prompt(self.tokenizer, source_prompt, self.max_text_tokens, "source_prompt")

        def make(take_seed: int | None, take_callback: StepCallback | None, trajectory: bool,
                 take: Take | None = None) -> VideoResult:
            if source_prompt is not None:
                return self._run_flow_edit(video, prompt, source_prompt, strength, take_seed, num_inference_steps,
                                           guidance_scale, take_callback, trajectory, take)
            return self._run_video("edit", prompt, video, strength, take_seed, num_inference_steps, guidance_scale,
                                   None, None, None, take_callback, trajectory, take,
                                   high_noise_expert=high_noise_expert)

        if check_best_of(best_of) > 1:
            return best_of_takes(self, prompt, best_of, judge, judge_at, judge_steps, seed, make, callback,
                                 return_trajectory)
        return make(seed, callback, return_trajectory)

    @torch.no_grad()
    def clean_estimate(self, x_t: torch.Tensor, prompts: list[str], sigma: float) -> torch.Tensor:
        """The denoiser's clean latents x̂ (b, c, f, h, w), float32, from ``x_t`` at ``sigma`` with
        ``prompts`` (b) as the condition — clean in the text stream and through the prompt encoder,
        as generate feeds a prompt — without guidance."""
        ids, mask = self._clean_text_stream(list(prompts))
        return self._clean_estimate(x_t, ids, mask, self._encode_prompts(list(prompts)), sigma)

    def _clean_estimate(self, x_t: torch.Tensor, ids: torch.Tensor, mask: torch.Tensor, context: torch.Tensor,
                        sigma: float) -> torch.Tensor:
        b = len(ids)
        ids, mask = ids.to(self._device), mask.to(self._device)
        level = torch.full((b,), sigma, device=self._device)
        x_t = x_t.to(self._device, self._dtype)
        velocity = self.transformer(x_t, ids, level, torch.zeros(b, device=self._device), context,
                                    None if bool(mask.all()) else mask).video_velocity
        return predict_clean(x_t.float(), velocity.float(), level)


    # --- the shared video path -----------------------------------------------------------------

    @torch.no_grad()
    def _run_video(
        self,
        task: Task,
        prompt: str,
        video: VideoInput | None,
        strength: float,
        seed: int | None,
        num_inference_steps: int | None,
        guidance_scale: float | None,
        num_frames: int | None,
        height: int | None,
        width: int | None,
        callback: StepCallback | None,
        return_trajectory: bool,
        take: Take | None = None,
        read_guidance: float | None = None,
        high_noise_expert: bool = True,
        read_guidance_from: float | None = None,
        motion_noise: float | None = None,
    ) -> VideoResult:
        # ``prompt`` was checked (and its unknown words warned of) by the public method that runs this.
        read_scale = check_guidance(read_guidance, self.config.read_guidance, "read_guidance")
        read_from = check_read_from(self.config.read_guidance_from if read_guidance_from is None
                                    else read_guidance_from)
        steps = check_steps(num_inference_steps, self.config.num_inference_steps)
        guidance = check_guidance(guidance_scale, self.config.guidance_scale)
        seed = check_seed(seed)
        notes: list[str] = []
        if video is not None:
            source, notes = prepare_video(video, self.config)
            num_frames, height, width = source.shape[:3]
        num_frames = num_frames or self.config.num_frames
        height, width = height or self.config.height, width or self.config.width
        self.codec.check_size(num_frames, height, width, tuple(self.transformer.config.patch_size))

        generator = torch.Generator("cpu").manual_seed(seed)
        flow = self.text_flow
        cfg = guidance != 1.0
        context = self._encode_prompts([prompt, ""] if cfg else [prompt])

        # Text stream: the prompt held clean (generate, edit) or denoised from the source (joint).
        # Neither needs an attention mask (the fused attention kernels need none): the source fills the
        # whole stream, and one clean text cut after its end token has no padding left.
        if task == "joint":
            text = flow.sample_source((1, self.config.max_text_len), generator=generator).to(self._device)
        else:
            text = self._clean_text_stream([prompt])[0]

        shape = (1, *self.codec.latent_shape(num_frames, height, width))
        noise = torch.randn(shape, generator=generator)

        def draft() -> np.ndarray:
            """The clean estimate after the run's first steps from plain noise: where its objects land.
            Its steps report to no callback, so that progress counts the run's steps alone."""
            draft_steps = min(self.config.motion_noise_draft, steps)
            try:
                self._run_video(task, prompt, None, 1.0, seed, steps, guidance, num_frames, height, width, None,
                                False, Take(stop_at=lambda n: draft_steps), read_scale, high_noise_expert, read_from,
                                motion_noise=0.0)
            except Judged as judged:
                return judged.frames
            raise AssertionError("a draft stops after its steps")

        objects: list[tuple[NoisePath, str]] = []  # paths and prompts of objects going different ways
        motion: NoiseMotion | None = None  # how the noise moves (None: as drawn)
        resumed = take is not None and take.resume is not None  # a take going on has its video, and its objects
        if task != "edit":
            motion, objects = self._noise_motion(prompt, noise.shape, motion_noise, generator, draft,
                                                 take.resume.objects if resumed else None)
            if motion is not None and not resumed:
                noise = motion(noise)
        noise = noise.to(self._device, self._dtype)
        renoise = None
        if task != "edit" and self.config.renoise > 0.0:

            def fresh_noise() -> torch.Tensor:
                plain = torch.randn(shape, generator=generator)
                return (plain if motion is None else motion(plain)).to(self._device, self._dtype)

            renoise = Renoise(self.config.renoise, self.config.renoise_from, fresh_noise)
        sigmas = inference_sigmas(self.scheduler, steps, strength if task == "edit" else 1.0)
        if task == "edit":
            clean = self.codec.encode(torch.from_numpy(source)[None]).to(self._device, self._dtype)
            latents = interpolate(clean, noise, sigmas[:1])
        else:
            latents = noise

        expert_context: list[torch.Tensor] = []  # the prompt through the high-noise expert's encoder, once

        def denoiser(sv: torch.Tensor) -> tuple[torch.nn.Module, torch.Tensor]:
            if not high_noise_expert or self._high_noise is None or float(sv[0]) < self._high_noise[1]:
                return self.transformer, context
            expert = self._high_noise[0]
            self._check_alike(expert, "move it alike, or attach it again")  # this model may have moved since
            if not expert_context:
                expert_context.append(expert._encode_prompts([prompt, ""] if cfg else [prompt]))
            return expert.transformer, expert_context[0]

        def guided_fn(x, ids, sv, st):
            net, net_context = denoiser(sv)
            twice = (lambda t: torch.cat([t, t])) if cfg else (lambda t: t)  # noqa: E731
            v, logits = net(twice(x), twice(ids), twice(sv), twice(st), net_context, None)  # no attention mask
            v_cond, v_uncond = v.chunk(2) if cfg else (v, None)
            if object_guide is not None and net is self.transformer:  # the expert draws the background
                v_cond = object_guide(net, x, sv, st, v_cond)
            return (v_uncond + guidance * (v_cond - v_uncond) if cfg else v_cond), logits[:1]

        object_guide = self._object_guidance(objects, noise.shape)

        reader = self._reader(prompt, seed) if task == "generate" and read_scale > 0 else None

        def model_fn(x, ids, sv, st):
            v, logits = guided_fn(x, ids, sv, st)
            if reader is not None and read_from <= float(sv[0]) <= READ_GUIDANCE_TOP:
                v = v - read_scale * reader.gradient(x, ids, sv, context[:1]).to(v.dtype)
            return v, logits

        trajectory: list[TrajectoryStep] | None = [] if return_trajectory else None
        latents, sigmas = self._resume_take(take, latents, sigmas, generator, trajectory)
        result = sample(
            model_fn, video=latents, text=text, sigmas=sigmas, denoise_video=True, denoise_text=task == "joint",
            text_flow=flow, generator=generator, text_temperature=self.config.text_temperature, renoise=renoise,
            callback=self._step_callback(callback, trajectory, lambda s: self._decode(s.video_clean),
                                         text_denoised=task == "joint", take=take, generator=generator,
                                         objects=objects),
        )
        frames = self._decode(result.video)
        caption = self._caption_text(result.text[0]) if task == "joint" else None
        return VideoResult(frames, seed, caption, trajectory, self.unknown_words(prompt), notes)

    # --- helpers -------------------------------------------------------------------------------

    def _step_callback(
        self,
        callback: StepCallback | None,
        trajectory: list[TrajectoryStep] | None,
        preview: Callable[[SamplerStep], np.ndarray],
        text_denoised: bool,
        extra_steps: int = 0,
        take: Take | None = None,
        generator: torch.Generator | None = None,
        objects: Sequence[tuple[NoisePath, str]] = (),
    ) -> Callable[[SamplerStep], None] | None:
        """The sampler's per-step hook: a trajectory entry and the caller's callback, which counts
        ``extra_steps`` more calls after the sampler's ``num_steps`` (see PipelineStep); those calls
        report through the same hook, with indices from ``num_steps`` on. A best-of ``take`` going on
        from a state reports its steps as the steps of the whole run (indices from the state's
        ``done``); one to be stopped raises `Judged` after its step with the state (and ``generator``'s)."""
        resume = take.resume if take is not None else None
        offset = resume.done if resume is not None else 0
        stop_at = take.stop_at if take is not None else None
        recorded: list[tuple[float, torch.Tensor, str | None]] = []
        if callback is None and trajectory is None and stop_at is None:
            return None

        def on_step(step: SamplerStep) -> None:
            if offset:
                step = replace(step, index=step.index + offset, num_steps=step.num_steps + offset)
            stop = stop_at is not None and step.index + 1 == stop_at(step.num_steps)
            # cut as the finished caption is (_caption_text), so that the last step shows the result
            text = self._caption_text(step.text[0], show_mask=True) if text_denoised else None
            if trajectory is not None:
                trajectory.append(TrajectoryStep(step.sigma, preview(step), text))
            if take is not None and take.record:
                recorded.append((step.sigma, step.video_clean.clone(), text))
            if callback is not None:
                callback(PipelineStep(step, text, lambda: preview(step), step.num_steps + extra_steps))
            if stop:
                state = TakeState(step.index + 1, step.video.clone(), generator.get_state(), recorded, list(objects))
                raise Judged(preview(step), state)

        return on_step

    def _resume_take(
        self, take: Take | None, video: torch.Tensor, sigmas: torch.Tensor, generator: torch.Generator,
        trajectory: list[TrajectoryStep] | None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The sampler's start (video, sigmas): as given, or where a best-of ``take``'s state left off
        — its video, the σ still to go, the generator's state, and its recorded steps decoded into
        ``trajectory``."""
        if take is None or take.resume is None:
            return video, sigmas
        state = take.resume
        generator.set_state(state.generator)
        if trajectory is not None:
            trajectory.extend(TrajectoryStep(sigma, self._decode(clean), text) for sigma, clean, text in state.steps)
        return state.video.to(video.device, video.dtype), sigmas[state.done:]

    def _reader(self, prompt: str, seed: int) -> ReadGuidance | None:
        """Read guidance for ``prompt`` (`ReadGuidance`): None when the prompt has none of the words
        it would push for in the vocabulary. Its text source is drawn from ``seed`` on its own
        generator, so the main one draws what it would without guidance."""
        wanted, unwanted = (
            [i for i in self.tokenizer.convert_tokens_to_ids(words) if i != self.tokenizer.unk_token_id]
            for words in prompt_words(self.config.take_judge, prompt)
        )
        if not wanted:
            return None
        source = self.text_flow.sample_source(
            (1, self.config.max_text_len), generator=torch.Generator("cpu").manual_seed(seed)
        ).to(self._device)

        def clean_estimate(x, ids, sigma, context):  # generate's text stream: the whole prompt, no mask
            return self._clean_estimate(x, ids, torch.ones_like(ids, dtype=torch.bool), context, float(sigma[0]))

        return ReadGuidance(self.transformer, self._dtype, clean_estimate, source, self._encode_prompts([""]),
                            wanted, unwanted)

    def _clean_text_stream(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """The text stream of ``texts`` held clean: ids and mask (b, l) on the pipeline's device, cut
        after the longest text's end token. A clean stream's padding is only ever masked out as keys
        and nothing reads its own outputs, so dropping it gives the same video with fewer tokens."""
        ids, mask = encode_text(self.tokenizer, texts, self.config.max_text_len)
        length = int(mask.sum(1).max())
        return ids[:, :length].to(self._device), mask[:, :length].to(self._device)

    def _encode_prompts(self, prompts: list[str]) -> torch.Tensor:
        return encode_prompt(
            self.text_encoder, self.tokenizer, prompts, self.config.max_prompt_len, self._device, self._dtype
        )

    def _decode(self, latents: torch.Tensor) -> np.ndarray:
        return self.codec.decode(latents)[0].numpy()

    def _caption_text(self, ids: torch.Tensor, show_mask: bool = False) -> str:
        """A caption's text. A stream the model filled without an end token is cut to
        ``max_text_tokens`` tokens, so that the caption can always be edited and used as a prompt."""
        return self._decode_ids(ids, show_mask, max_tokens=self.max_text_tokens)

    def _decode_ids(self, ids: torch.Tensor, show_mask: bool = False, max_tokens: int | None = None) -> str:
        mask_id = self.transformer.config.mask_token_id if show_mask else None
        return decode_text(self.tokenizer, ids.tolist(), mask_id, max_tokens)

    @property
    def _device(self) -> torch.device:
        # With model CPU offload the weights sit on the CPU until used; run where they will be used.
        return self._execution_device

    @property
    def _dtype(self) -> torch.dtype:
        return self.transformer.dtype
