"""UniViGUPipeline: generate, caption, generate-with-caption and edit with one network.

Each task is a noise configuration of the same transformer (DESIGN §2.3):

| task     | video                           | text stream                  | cross-attention      |
|----------|---------------------------------|------------------------------|----------------------|
| generate | noise → clean                   | the prompt, clean (σ = 0)    | encoder(prompt), CFG |
| caption  | the clip, clean (σ = 0)         | source → clean (jump rule)   | encoder("")          |
| joint    | noise → clean                   | source → clean, same σ       | encoder(prompt), CFG |
| edit     | the clip noised to ``strength`` | the edited text, clean       | encoder(text), CFG   |

The story follows diffusers' Wan pipeline: check inputs → encode the prompt → prepare latents and
text → one denoising loop with a step callback → decode → a result dataclass.
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

from .flows import (
    REREAD_PERIOD,
    VERIFY_DRAWS,
    VERIFY_MAX_TEXTS,
    DiscreteFlow,
    SamplerStep,
    flow_edit,
    inference_sigmas,
    interpolate,
    predict_clean,
    sample,
)
from .flows import reread as reread_text
from .flows import verify as verify_text
from .flows.moving_noise import (
    DIRECTIONS,
    NoisePath,
    check_draft,
    check_share,
    check_speed,
    moving_noise,
    path_discs,
    path_noise,
)
from .inputs import (
    VideoInput,
    caption_settings,
    check_best_of,
    check_guidance,
    check_judge_at,
    check_judge_steps,
    check_prompt,
    check_seed,
    check_steps,
    check_strength,
    prepare_video,
    prompt_tokens,
)
from .judge import (
    ObjectPlace, ReadBack, TakeJudge, edit_places, get_judge, object_places, prompt_motions, prompt_words, read_back,
)
from .models import autoencoder as _autoencoder  # noqa: F401  diffusers' loader resolves saved component
from .models import codec as _pixel_codec  # noqa: F401
from .models import wan_codec as _wan_codec  # noqa: F401  classes only from modules already imported
from .models.expert import EXPERT_FOLDER, check_boundary, read_expert
from .models.prompt_encoder import encode_prompt
from .models.tokenizer import decode_text, encode_text, known_words, unknown_words
from .models.transformer import UniViGUTransformer3DModel
from .object_guidance import OBJECT_GUIDANCE_TO, ObjectGuidance, check_guidance_to, check_weight
from .pipeline_output import CaptionResult, PipelineStep, StepCallback, TrajectoryStep, VideoResult
from .read_guidance import READ_GUIDANCE_FROM, READ_GUIDANCE_TOP, ReadGuidance, check_read_from
from .takes import Judged, Take, TakeState, best_of_takes

Task = Literal["generate", "caption", "joint", "edit"]
VERIFY_SIGMA = 0.5  # noise level at which candidate captions are judged by the video stream
EDIT_STRENGTH = 0.6  # a plain edit's default start level, unless the pipeline's config sets edit_strength
# An edit given the text before the change follows the difference of the two texts' flows
# (flows.flow_edit). It keeps what the texts agree on by construction, so it can start from more
# noise and push the change harder; these defaults were chosen on clips the evaluation does not
# score (docs/EVAL.md).
FLOW_EDIT_STRENGTH = 0.9
# The edited text's guidance, unless the config sets flow_edit_guidance; the source text's is guidance_scale.
FLOW_EDIT_GUIDANCE = 6.0

# A high-noise expert (use_high_noise_expert) denoises the video at and above this σ: with the
# shipped sampler's 20 steps (shift 3), the first call alone (σ 1; the second is at 0.983).
HIGH_NOISE_BOUNDARY = 0.99


class UniViGUPipeline(DiffusionPipeline):
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
        )
        get_judge(take_judge)  # an unknown name fails at load, not at the first best-of generation
        self._high_noise: tuple[UniViGUPipeline, float] | None = None  # use_high_noise_expert
        self._expert_folder: Path | None = None  # the high_noise_expert/ it was loaded from, which save copies

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *args, **kwargs) -> UniViGUPipeline:
        """diffusers' ``from_pretrained``; a folder with a ``high_noise_expert/`` (`uvigu.models.expert`)
        also gets that expert attached (`use_high_noise_expert`)."""
        pipe = super().from_pretrained(pretrained_model_name_or_path, *args, **kwargs)
        folder = Path(pretrained_model_name_or_path) / EXPERT_FOLDER
        if folder.is_dir():
            pipe.use_high_noise_expert(*read_expert(pipe, folder))
            pipe._expert_folder = folder
        return pipe

    def save_pretrained(self, save_directory, *args, **kwargs) -> None:
        """diffusers' ``save_pretrained``, with the ``high_noise_expert/`` this pipeline was loaded
        with, if any (an expert attached otherwise is not saved: `uvigu.models.expert.write_expert`
        writes one)."""
        super().save_pretrained(save_directory, *args, **kwargs)
        target = Path(save_directory) / EXPERT_FOLDER
        if (self._expert_folder is not None and self._high_noise is not None
                and target.resolve() != self._expert_folder.resolve()):
            import shutil

            shutil.copytree(self._expert_folder, target, dirs_exist_ok=True)

    def to(self, *args, **kwargs) -> UniViGUPipeline:
        """diffusers' ``to``, moving (or casting) an attached high-noise expert alike."""
        moved = super().to(*args, **kwargs)
        if getattr(self, "_high_noise", None) is not None:
            self._high_noise[0].to(*args, **kwargs)
        return moved

    @property
    def high_noise_expert(self) -> tuple[UniViGUPipeline, float] | None:
        """The attached high-noise expert and its boundary (`use_high_noise_expert`), or None."""
        return self._high_noise

    def use_high_noise_expert(self, expert: UniViGUPipeline | None, boundary: float = HIGH_NOISE_BOUNDARY) -> None:
        """Have ``expert`` — another model of this one's words and clip layout, e.g. this one
        fine-tuned at the top of the noise (`uvigu train --video-sigma-min`) — make the denoising
        calls of generate, joint and the plain edit whose video noise level is ``boundary`` or more
        (its transformer, with the prompt through its own text encoder); this model makes the rest,
        and all of captioning. Wan2.2 splits its sampler between a high-noise and a low-noise
        expert the same way. ``None`` removes it. ``to()`` moves it with this model. A pipeline
        folder keeps one as its difference from the model (`uvigu.models.expert`; ``uvigu expert``
        writes it), which ``from_pretrained`` attaches; the shipped model has one (docs/EVAL.md measures it)."""
        self._expert_folder = None
        if expert is None:
            self._high_noise = None
            return
        check_boundary(boundary)
        if expert.tokenizer.get_vocab() != self.tokenizer.get_vocab():
            raise ValueError("the high-noise expert must know the same words, in the same order, as this model.")
        layout = ("in_channels", "out_channels", "patch_size", "vocab_size", "mask_token_id")
        mine, theirs = self.transformer.config, expert.transformer.config
        if any(mine.get(k) != theirs.get(k) for k in layout) or type(expert.codec) is not type(self.codec):
            raise ValueError("the high-noise expert must have this model's codec and clip layout "
                             f"({', '.join(layout)}).")
        self._check_alike(expert, "load both alike")
        self._high_noise = (expert, float(boundary))

    def _check_alike(self, expert: UniViGUPipeline, remedy: str) -> None:
        """A ``ValueError`` (ending in ``remedy``) unless ``expert`` runs where and in the precision this model does."""
        if expert._dtype != self._dtype or expert._device != self._device:
            raise ValueError(f"the high-noise expert runs in {expert._dtype} on {expert._device}, this model in "
                             f"{self._dtype} on {self._device}: {remedy}.")

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

    def unknown_words(self, text: str) -> list[str]:
        """Words of ``text`` the model's tokenizer does not know."""
        return unknown_words(self.tokenizer, text)

    def known_words(self) -> list[str] | None:
        """The words the model's tokenizer knows, sorted (``None``: a subword tokenizer, which knows every word)."""
        return known_words(self.tokenizer)

    def _grammar(self):
        """The Shapes world's grammar (`uvigu.eval.grammar`) for a model that judges takes by it
        (``take_judge`` "shapes"); ``None`` for a model that declares none."""
        if self.config.take_judge != "shapes":
            return None
        from uvigu.eval import grammar

        return grammar

    def _keeps_grammar(self, ids: torch.Tensor) -> Callable[[torch.Tensor], bool] | None:
        """For the caption's check (`uvigu.flows.verify`): when the caption ``ids`` follows the
        grammar the model writes, only candidate captions that still do may be tried — the check
        judges each word with the others as written, and a word the video stream favours can break
        the sentence ("… on a a background."); ``None`` (every candidate) otherwise."""
        grammar = self._grammar()
        if grammar is None or not grammar.follows_grammar(self._caption_text(ids)):
            return None
        return lambda candidate: grammar.follows_grammar(self._caption_text(candidate))

    def follows_grammar(self, caption: str) -> bool | None:
        """Whether ``caption`` follows the grammar the model was trained to write — the Shapes
        world's, for a model that judges takes by it (``take_judge`` "shapes") — or ``None`` for a
        model that declares none. A caption that does not is a sign that the clip is unlike the
        footage the model learned from."""
        grammar = self._grammar()
        return None if grammar is None else grammar.follows_grammar(caption)

    def prompt_guide(self) -> str | None:
        """How the prompts the model learned go — the Shapes world's grammar, for a model that judges
        takes by it (``take_judge`` "shapes") — in a few sentences; ``None`` for a model that declares none."""
        grammar = self._grammar()
        return None if grammar is None else grammar.prompt_guide()

    def prompt_notes(self, prompt: str) -> list[str]:
        """What ``prompt`` asks beyond the clips the model learned, or that its training held out (for
        the Shapes model: more objects than a clip has, two of one colour, a held-out colour–shape
        pair), each as a sentence; empty for other models. Unknown words are `unknown_words`'."""
        grammar = self._grammar()
        return [] if grammar is None else grammar.prompt_notes(prompt)

    def read_back(self, prompt: str, caption: str) -> list[ReadBack]:
        """What ``caption`` says of each thing ``prompt`` asks for, as this model's ``take_judge``
        reads the two (`uvigu.judge.read_back`): for the Shapes model each prompted object's
        colour, shape and motion against the caption's, the background, and the objects the
        caption names beyond those asked for; for others the prompt's words. With the
        caption of a clip made from the prompt, this is the round trip, ask by ask."""
        return read_back(self.config.take_judge, prompt, caption)

    def corrected_caption(self, prompt: str, caption: str) -> str | None:
        """``caption`` rewritten to say what ``prompt`` asks where it says otherwise — the text to
        edit the clip with (``source_prompt=caption``) so that it shows what was asked — for a model
        whose ``take_judge`` is the Shapes grammar (`uvigu.eval.grammar.corrected_caption`); ``None``
        when there is nothing to correct, the caption is not of the grammar, or the model has none."""
        grammar = self._grammar()
        return None if grammar is None else grammar.corrected_caption(prompt, caption)

    def count_tokens(self, text: str) -> int:
        """Tokens of ``text`` as a prompt (its whitespace collapsed, as the tasks read it): what
        ``max_text_tokens`` limits."""
        return prompt_tokens(self.tokenizer, text)[1]

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
        network call a step). Other prompts, and ``motion_noise`` 0, start from the usual noise.

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
        """Text → clip and its detailed caption in one joint denoising pass (``motion_noise`` and
        ``high_noise_expert`` as `generate`'s)."""
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
        if take is not None and take.resume is not None:  # a take going on has its video, and its objects
            objects = take.resume.objects
        elif task != "edit":
            noise, objects = self._moving_noise(noise, prompt, motion_noise, generator, draft)
        noise = noise.to(self._device, self._dtype)
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

        model_fn = guided_fn
        reader = self._reader(prompt, seed) if task == "generate" and read_scale > 0 else None
        if reader is not None:
            def model_fn(x, ids, sv, st):
                v, logits = guided_fn(x, ids, sv, st)
                if read_from <= float(sv[0]) <= READ_GUIDANCE_TOP:
                    v = v - read_scale * reader.gradient(x, ids, sv, context[:1]).to(v.dtype)
                return v, logits

        trajectory: list[TrajectoryStep] | None = [] if return_trajectory else None
        latents, sigmas = self._resume_take(take, latents, sigmas, generator, trajectory)
        result = sample(
            model_fn, video=latents, text=text, sigmas=sigmas, denoise_video=True, denoise_text=task == "joint",
            text_flow=flow, generator=generator, text_temperature=self.config.text_temperature,
            callback=self._step_callback(callback, trajectory, lambda s: self._decode(s.video_clean),
                                         text_denoised=task == "joint", take=take, generator=generator,
                                         objects=objects),
        )
        frames = self._decode(result.video)
        caption = self._caption_text(result.text[0]) if task == "joint" else None
        return VideoResult(frames, seed, caption, trajectory, self.unknown_words(prompt), notes)

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

    def _moving_noise(self, noise: torch.Tensor, prompt: str, share: float | None, generator: torch.Generator,
                      draft: Callable[[], np.ndarray]) -> tuple[torch.Tensor, list[tuple[NoisePath, str]]]:
        """The starting ``noise`` (b, c, f, h, w) moving as ``prompt`` asks (`generate`'s
        ``motion_noise``; ``share`` None: the pipeline's): ``share`` of it the one way every object
        goes, or, when they go different ways, the pipeline's ``motion_noise_paths`` of it along
        each object's path, placed where ``draft()`` (frames) shows the object (or, where it shows
        none, furthest from the others); as it is otherwise.
        With it, each such object's path and own prompt (none but for objects going different ways,
        and only when ``motion_noise_paths`` or ``object_guidance`` asks for the draft)."""
        share = check_share(self.config.motion_noise if share is None else share)
        motions = prompt_motions(self.config.take_judge, prompt)
        speed = self.config.motion_noise_speed
        if share == 0.0 or not motions:
            return noise, []
        if len(set(motions)) == 1:
            dy, dx = DIRECTIONS[motions[0]]
            if (dy, dx) == (0, 0):  # a still scene keeps the usual noise: it draws more objects
                return noise, []
            return moving_noise(noise, (dy * speed, dx * speed), share, generator), []
        if self.config.motion_noise_paths == 0.0 and self.config.object_guidance == 0.0:
            return noise, []
        frames = draft()
        objects = [(self._noise_path(place, frames.shape, noise.shape), place.prompt)
                   for place in object_places(self.config.take_judge, prompt, frames, fill=True)]
        return path_noise(noise, [path for path, _ in objects], self.config.motion_noise_paths, generator), objects

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
                              self.config.object_guidance_to)

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
