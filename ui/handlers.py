"""Event handlers: UI values in, studio calls, UI values out.

Each handler returns the values of a fixed list of output components, in the order named by
the ``*_OUTPUTS`` tuples below; ``ui.layout`` wires the same components in the same order.
Bad input surfaces as ``gr.Error`` with the studio's own message, never as a traceback; so do a
failure of the studio's storage (a full disk) and the model running out of memory, which are
logged with their traceback for whoever runs the studio.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import logging
import secrets
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import gradio as gr

from ui import text
from ui.text import md_escape as _md
from uvigu.studio import MODE_LABELS, Cancelled, Job, OutOfMemory, Studio, StudioBusy, Take, word_diff
from uvigu.timeline import DEFAULT_EVERY_S

logger = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])

# The take panel: title, clip, model caption, what the caption says of each thing asked for,
# unknown-word warning, critique, edited caption, caption diff, current take id, and the clip it
# was made from (shown beside it, for edits).
TAKE_OUTPUTS = ("take_title", "video", "caption", "read_back", "unknown", "critique", "edited", "diff", "current",
                "before")
# The history tab: gallery of thumbnails, timeline text.
HISTORY_OUTPUTS = ("gallery", "timeline")
# The trajectory tab: step slider, step description, step clip, step text.
TRAJECTORY_OUTPUTS = ("traj_slider", "traj_info", "traj_video", "traj_text")
# Deleting takes asks first: the open take's confirmation (Studio tab: panel, question), every
# take's (History tab: panel, question), and the ids the shown question is about.
CONFIRM_OUTPUTS = ("delete_take_panel", "delete_take_question", "delete_all_panel", "delete_all_question",
                   "delete_target")


def user_errors(fn: F) -> F:
    """Turn the studio's messages for visitors into ``gr.Error`` (shown in the browser), for plain
    handlers and for generators (which raise while they are iterated)."""

    @contextlib.contextmanager
    def translated() -> Iterator[None]:
        try:
            yield
        except StudioBusy as error:
            raise gr.Error(str(error), title="The studio is busy") from None
        except ValueError as error:
            raise gr.Error(_sentence(str(error)), title="Please check the input") from None
        except OutOfMemory as error:
            logger.exception("the model ran out of memory")
            raise gr.Error(text.OUT_OF_MEMORY, title="Out of memory") from error
        except OSError as error:  # a full disk, a folder no longer writable: the studio's, not the visitor's
            logger.exception("the studio's storage failed")
            reason = error.strerror or type(error).__name__  # no paths of the host in the browser
            raise gr.Error(text.STORAGE_FAILED.format(reason=reason), title="The studio could not save") from error

    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def stream(*args: Any, **kwargs: Any) -> Iterator[Any]:
            with translated():
                yield from fn(*args, **kwargs)

        return stream  # type: ignore[return-value]

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with translated():
            return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


class Handlers:
    """All event handlers of the studio UI, bound to one :class:`Studio`."""

    def __init__(self, studio: Studio) -> None:
        self.studio = studio

    # -- session ---------------------------------------------------------------------------

    def restore(self, token: str | None) -> tuple:
        """Page load: reopen the browser's session (or start one) and show where it left off."""
        token = self.studio.open_session(token)
        takes = self.studio.takes(token)
        take_view = self._take_view(token, takes[-1]) if takes else self._empty_take()
        return (token, *take_view, *self._history_view(token, takes))

    # -- model work ------------------------------------------------------------------------

    @user_errors
    def generate(
        self,
        prompt: str,
        mode: str,
        seed: float | None,
        randomize: bool,
        steps: float,
        guidance: float,
        token: str | None,
        progress: gr.Progress = gr.Progress(),
        count: float = 1,  # after progress: Gradio puts its Progress at the parameter's place
        best_of: float = 1,
        expert: bool = True,
        moving: bool = True,
    ) -> Iterator[tuple]:
        """Create → ``count`` new takes (seeds one apart), each kept from ``best_of`` tries (the one
        whose caption matches the prompt best), with the model's high-noise expert and moving noise
        or, unticked, without. Yields, as each take is made: token, seed used (the first take's),
        take panel (that take), history, trajectory."""
        token = self.studio.open_session(token)
        options = {"mode": mode, "num_inference_steps": _int(steps, "steps"), "guidance_scale": _float(guidance),
                   "best_of": _tries_value(best_of), "high_noise_expert": bool(expert),
                   "moving_noise": bool(moving)}
        yield from self._run_takes(
            token, lambda s: self.studio.submit_generate(token, prompt, seed=s, **options),
            count, seed, randomize, progress,
        )

    @user_errors
    def regenerate(
        self,
        current: str | None,
        edited: str,
        critique: str,
        strength: float,
        keep_rest: bool,
        seed: float | None,
        randomize: bool,
        steps: float,
        guidance: float,
        token: str | None,
        progress: gr.Progress = gr.Progress(),
        count: float = 1,  # after progress: Gradio puts its Progress at the parameter's place
        best_of: float = 1,
        expert: bool = True,
    ) -> Iterator[tuple]:
        """Take → "Regenerate with edits": saves the critique, then makes ``count`` edits of the
        take (with ``keep_rest``, compared with the take's caption so that only what was edited
        changes), each kept from ``best_of`` tries, with the expert as ``expert`` says; yields as
        :meth:`generate` does."""
        token = self.studio.open_session(token)
        if not current:
            raise ValueError("There is no take to regenerate from yet; generate a clip first.")
        self.studio.set_critique(token, current, critique)
        options = {"strength": _float(strength), "keep_rest": bool(keep_rest),
                   "num_inference_steps": _int(steps, "steps"), "guidance_scale": _float(guidance),
                   "best_of": _tries_value(best_of), "high_noise_expert": bool(expert)}
        yield from self._run_takes(
            token, lambda s: self.studio.submit_edit(token, current, edited, seed=s, **options),
            count, seed, randomize, progress,
        )

    def keep_rest_strength(self, keep_rest: bool) -> float:
        """The strength slider's value when "Keep the rest" is switched: the model's default for
        that kind of edit (an edit that keeps the rest starts from more noise)."""
        defaults = self.studio.model_defaults()
        return defaults.keep_rest_strength if keep_rest else defaults.edit_strength

    @user_errors
    def understand(
        self, video: str | None, start: float | None, token: str | None, progress: gr.Progress = gr.Progress()
    ) -> tuple:
        """Understand → caption an upload, from ``start`` seconds in (blank: its start). Returns
        token, caption, notes, the clip the model read (its size and length, playable where the
        upload may not be), take panel, history, trajectory."""
        token = self.studio.open_session(token)
        take = self._wait(self.studio.submit_caption_upload(token, video, start_s=start), progress)
        if take is None:
            return _skip(4 + len(TAKE_OUTPUTS) + len(HISTORY_OUTPUTS) + len(TRAJECTORY_OUTPUTS))
        notes = (
            "Fitted to the model: " + "; ".join(take.notes) + "."
            if take.notes
            else "The clip already had the model's size, length and frame rate."
        )
        if self.studio.caption_follows_grammar(take.caption) is False:
            notes += "\n\n" + text.UNGRAMMATICAL_CAPTION
        return (
            token, take.caption, notes, str(self.studio.clip_path(token, take.id)), *self._take_view(token, take),
            *self._history_view(token), *self._trajectory_view(token),
        )

    def upload_changed(self, video: str | None) -> tuple:
        """A new clip in Understand, or none: *Start at* back to 0, with how long the clip lasts under
        it (or why it cannot be used, before any click), and the previous clip's caption, notes, clip
        read and timeline cleared."""
        info = text.UPLOAD_START_INFO
        if video:
            try:
                defaults = self.studio.model_defaults()
                length = self.studio.upload_length(video)
                info = text.upload_start_info(_clock(length), defaults.num_frames / defaults.fps)
            except ValueError as error:
                info = f"⚠️ {error}"
        return gr.Number(value=0, info=info), "", "", None, "", gr.File(value=None, visible=False)

    @user_errors
    def understand_timeline(
        self, video: str | None, start: float | None, every: float | None, token: str | None,
        progress: gr.Progress = gr.Progress(),
    ) -> tuple:
        """Understand → the upload captioned every ``every`` seconds from ``start``: token, the
        timeline as a table, and its subtitles file."""
        token = self.studio.open_session(token)
        every = DEFAULT_EVERY_S if every is None else every
        job = self.studio.submit_caption_timeline(token, video, every_s=every, start_s=start)
        timeline = self._wait(job, progress)
        if timeline is None:
            return _skip(3)
        rows = ["| when | what the model says |", "|---|---|"]
        rows += [f"| {_clock(c.start_s)}–{_clock(c.end_s)} | {_md(c.text)} |" for c in timeline.cues]
        return token, "\n".join(rows), gr.File(value=str(timeline.srt_path), visible=True)

    def stop(self, token: str | None) -> None:
        """Stop: the running job ends after its current step; queued ones are dropped."""
        if token and self.studio.cancel(token):
            gr.Info("Stopping after the current step…")

    # -- the take panel --------------------------------------------------------------------

    @user_errors
    def save_critique(self, current: str | None, critique: str, token: str | None) -> tuple:
        if not current:
            raise ValueError("There is no take to critique yet; generate a clip first.")
        self.studio.set_critique(token, current, critique)
        gr.Info("Critique saved.")
        return self._history_view(token)

    @user_errors
    def ask_for_misses(self, current: str | None, token: str | None) -> Any:
        """*Ask for what it missed*: the open take's caption with what it says otherwise than its
        prompt (an edit's edited caption) set to what was asked, into the edited caption — to
        regenerate from, keeping the rest. Leaves the box as it is, and says why, when there is
        nothing to correct."""
        if not current:
            raise ValueError("There is no take yet; generate a clip first.")
        take = self.studio.take(token, current)
        if not take.prompt.strip():
            gr.Info(text.NOTHING_ASKED)
            return gr.skip()
        fixed = self.studio.corrected_caption(take.prompt, take.caption)
        if fixed is None:
            read_backs = self.studio.read_back(take.prompt, take.caption) or []
            as_asked = read_backs and read_backs[0].name and all(item.agrees for item in read_backs if item.asked)
            gr.Info(text.NOTHING_MISSED if as_asked else text.CANNOT_CORRECT)
            return gr.skip()
        gr.Info(text.ASKED_FOR_MISSES)
        return fixed

    @user_errors
    def gif(self, current: str | None, token: str | None) -> Any:
        """Save as GIF: the open take as a looping GIF, in the file box under the take."""
        if not current:
            raise ValueError("There is no take to save yet; generate a clip first.")
        return gr.File(value=str(self.studio.take_gif(token, current)), visible=True)

    def diff(self, caption: str | None, edited: str | None) -> list[tuple[str, str | None]]:
        """The edited caption against the model's, word by word."""
        return word_diff(caption or "", edited or "")

    def check_words(self, prompt: str | None) -> str:
        """Under a prompt or edited caption: its length in tokens against what the model reads
        (a warning when it is longer), a warning naming words the model does not know, and what it
        asks beyond the clips the model learned. Empty for empty text."""
        try:
            unknown = self.studio.unknown_words(prompt or "")
            tokens, limit = self.studio.text_length(prompt or "")
            notes = self.studio.prompt_notes(prompt or "")
        except ValueError:
            return ""
        if not tokens:
            return ""
        if tokens > limit:
            length = f"⚠️ **{tokens} / {limit} tokens**: the model reads at most {limit}; shorten it to run it."
        else:
            length = f"{tokens} / {limit} tokens"
        return text.unknown_warning(unknown) + "".join(f"ℹ️ {_md(note)}\n\n" for note in notes) + length

    # -- deleting takes --------------------------------------------------------------------

    @user_errors
    def ask_delete_take(self, current: str | None, token: str | None) -> tuple:
        """Take → Delete take…: show the Studio tab's question about the open take."""
        if not current:
            raise ValueError("There is no take to delete.")
        take = self.studio.take(token, current)
        children = sum(t.parent_id == take.id for t in self.studio.takes(token))
        made_from = (f" The {children} take{'s' if children > 1 else ''} made from it "
                     f"{'stay' if children > 1 else 'stays'}." if children else "")
        question = (f"**Delete take #{take.seq}**, its clip, caption and critique? This cannot be undone "
                    f"(**Export session** in the History tab keeps a copy).{made_from}")
        return gr.Column(visible=True), question, gr.Column(visible=False), "", [take.id]

    @user_errors
    def ask_delete_all(self, token: str | None) -> tuple:
        """History → Delete all takes…: show the History tab's question about every take there is
        now (a take made after the question is not deleted with them)."""
        takes = self.studio.takes(token) if self.studio.has_session(token) else []
        if not takes:
            raise ValueError("This session has no takes to delete.")
        n = len(takes)
        question = (f"**Delete all {n} take{'s' if n > 1 else ''}** of this session, with their clips, captions "
                    "and critiques? This cannot be undone; **Export session** first to keep a copy.")
        return gr.Column(visible=False), "", gr.Column(visible=True), question, [t.id for t in takes]

    @staticmethod
    def cancel_delete() -> tuple:
        return gr.Column(visible=False), "", gr.Column(visible=False), "", None

    @user_errors
    def delete(self, target: list[str] | None, current: str | None, token: str | None) -> tuple:
        """Confirmed: delete the takes the question named. The open take stays open unless it was
        one of them; then the take before it opens (else the one after, else none). Returns take
        panel, history, trajectory, and the confirmations hidden."""
        takes = self.studio.takes(token) if self.studio.has_session(token) else []
        doomed = set(target or ()) & {t.id for t in takes}
        if not doomed:
            raise ValueError("Those takes are no longer in this session.")
        n = self.studio.delete_takes(token, [t.id for t in takes if t.id in doomed])
        gr.Info(f"Take #{next(t.seq for t in takes if t.id in doomed)} deleted." if n == 1
                else f"Deleted {n} takes.")
        rest = [t for t in takes if t.id not in doomed]
        at = next((i for i, t in enumerate(takes) if t.id == current), len(takes))
        before = [t for t in takes[:at] if t.id not in doomed]
        after = [t for t in takes[at:] if t.id not in doomed]
        shown = (after[0] if after and after[0].id == current else before[-1] if before
                 else after[0] if after else None)
        take_view = self._take_view(token, shown) if shown is not None else self._empty_take()
        return (*take_view, *self._history_view(token, rest), *self._trajectory_view(token),
                *self.cancel_delete())

    # -- history ---------------------------------------------------------------------------

    @user_errors
    def open_take(self, token: str | None, evt: gr.SelectData) -> tuple:
        """History → open the selected take in the take panel (to edit or branch from it)."""
        takes = self.studio.takes(token)
        index = evt.index[0] if isinstance(evt.index, (list, tuple)) else evt.index
        if not isinstance(index, int) or not 0 <= index < len(takes):
            raise ValueError("That take is no longer in this session.")
        return self._take_view(token, takes[index])

    @user_errors
    def export(self, token: str | None) -> str:
        return str(self.studio.export_session(token))

    @user_errors
    def import_session(self, path: str | None, token: str | None) -> tuple:
        """History → Import: add the takes of a session export to this session. Returns token,
        take panel (the last imported take), history, and the emptied file box."""
        token = self.studio.open_session(token)
        added = self.studio.import_session(token, path)
        gr.Info(f"Imported {len(added)} take{'' if len(added) == 1 else 's'}.")
        return (token, *self._take_view(token, added[-1]), *self._history_view(token), None)

    # -- trajectory ------------------------------------------------------------------------

    @user_errors
    def trajectory_step(self, index: float, token: str | None) -> tuple:
        """Trajectory → the clip and text at one denoising step of the last run."""
        trajectory = self.studio.trajectory(token)
        if trajectory is None:
            return (gr.skip(), "Nothing to show yet: generate or caption a clip first.", None, "")
        path, step = self.studio.trajectory_clip(token, int(index))
        return gr.skip(), self._step_info(token, trajectory.take_id, step, int(index)), str(path), step.text or ""

    @user_errors
    def trajectory_png(self, token: str | None) -> Any:
        """Save the steps as a picture: every step of the last run in one PNG, in the file box under it."""
        return gr.File(value=str(self.studio.trajectory_png(token)), visible=True)

    # -- API endpoints (the named ones scripts call) ---------------------------------------

    @user_errors
    def api_generate(
        self, prompt: str, seed: float | None, steps: float | None, guidance: float | None,
        best_of: float | None, high_noise_expert: bool | None, moving_noise: bool | None, token: str | None,
    ) -> tuple:
        """/generate: prompt, seed (blank or negative: random), steps, guidance, best_of (tries,
        the one whose caption agrees best with the prompt kept; blank: 1), high_noise_expert (False:
        every step with the model, as the Settings box unticked; blank: True), moving_noise (False:
        plain starting noise, as its Settings box unticked; blank: True) → clip, caption, seed used
        (the kept try's)."""
        token = self.studio.open_session(token)
        seed_value = None if seed is None or seed < 0 else _int(seed, "seed")
        take = self._wait(self.studio.submit_generate(
            token, prompt, seed=seed_value, num_inference_steps=_int(steps, "steps"),
            guidance_scale=_float(guidance), best_of=_tries_value(best_of),
            high_noise_expert=high_noise_expert is not False, moving_noise=moving_noise is not False,
        ))
        if take is None:
            raise gr.Error("Stopped.")
        return str(self.studio.clip_path(token, take.id)), take.caption, take.seed, token

    @user_errors
    def api_caption(self, video: str | None, start: float | None, token: str | None) -> tuple:
        """/caption: video, start (seconds into it where the model's clip begins; blank: 0) → caption."""
        token = self.studio.open_session(token)
        take = self._wait(self.studio.submit_caption_upload(token, video, start_s=start))
        if take is None:
            raise gr.Error("Stopped.")
        return take.caption, token

    @user_errors
    def api_edit(
        self, video: str | None, prompt: str, strength: float | None, seed: float | None,
        source_prompt: str | None, best_of: float | None, start: float | None,
        high_noise_expert: bool | None, token: str | None,
    ) -> tuple:
        """/edit: video, prompt, strength (blank: the model's default for the kind of edit), seed
        (blank or negative: random), source_prompt (what the clip shows before the change: the
        edit then keeps the rest; blank: a plain edit), best_of (tries, as /generate's), start (as
        /caption's), high_noise_expert (as /generate's) → clip, caption, seed used (the kept try's)."""
        token = self.studio.open_session(token)
        seed_value = None if seed is None or seed < 0 else _int(seed, "seed")
        take = self._wait(self.studio.submit_edit_upload(
            token, video, prompt, strength=_float(strength), source_prompt=(source_prompt or "").strip() or None,
            seed=seed_value, best_of=_tries_value(best_of), start_s=start,
            high_noise_expert=high_noise_expert is not False,
        ))
        if take is None:
            raise gr.Error("Stopped.")
        return str(self.studio.clip_path(token, take.id)), take.caption, take.seed, token

    # -- views -----------------------------------------------------------------------------

    def _run_takes(
        self, token: str, submit: Callable[[int | None], Job[Take]], count: float | None, seed: float | None,
        randomize: bool, progress: gr.Progress,
    ) -> Iterator[tuple]:
        """Submit ``count`` runs at once (``submit(seed)``), seeds one apart from ``seed`` (or from
        a random one), and wait for them in turn, yielding the run outputs (with the first seed) as
        each take is saved, so the page shows it while the next one runs; Stop ends the running
        one and drops the rest. Yields skips (nothing changes) when the first one was stopped."""
        count = _int(count if count is not None else 1, "number of takes")
        limit = self.studio.settings.max_jobs_per_session
        if not 1 <= count <= limit:
            raise ValueError(f"The number of takes must be from 1 to {limit}, not {count}.")
        first = None if randomize else _int(seed, "seed")
        if count > 1 and first is None:
            first = secrets.randbelow(self.studio.settings.max_seed + 1)  # one draw, so the batch reproduces
        seeds = [first] + [(first + i) % (self.studio.settings.max_seed + 1) for i in range(1, count)]
        jobs: list[Job[Take]] = []
        try:
            for s in seeds:
                jobs.append(submit(s))
        except BaseException:
            if jobs:
                self.studio.cancel(token)  # all or none: a batch the queue cannot hold is not started
            raise
        takes: list[Take] = []
        for i, job in enumerate(jobs):
            take = self._wait(job, progress, f"Take {i + 1} of {count} · " if count > 1 else "", quiet=bool(takes))
            if take is None:
                break
            takes.append(take)
            _, _, *rest = self._after_run(token, take)
            yield (token, takes[0].seed, *rest)
        if not takes:
            yield _skip(2 + len(TAKE_OUTPUTS) + len(HISTORY_OUTPUTS) + len(TRAJECTORY_OUTPUTS))
        elif len(takes) < count:
            gr.Info(f"Stopped. The {len(takes)} take{'' if len(takes) == 1 else 's'} already made "
                    f"{'is' if len(takes) == 1 else 'are'} kept; the rest were not made.")

    def _wait(self, job: Job[Take], progress: gr.Progress | None = None, prefix: str = "",
              quiet: bool = False) -> Take | None:
        """Relay the job's progress to the browser (each stage prefixed with ``prefix``); ``None``
        when it was stopped (said unless ``quiet``)."""
        if progress is not None:
            progress(0.0, desc=f"{prefix}Waiting for the model…")
            for event in job.events():
                progress((event.index + 1, event.num_steps), desc=prefix + event.stage, unit="steps")
        try:
            return job.result()
        except Cancelled:
            if not quiet:
                gr.Info("Stopped. Nothing was saved; the session is as it was.")
            return None

    def _after_run(self, token: str, take: Take) -> tuple:
        return (
            token, take.seed, *self._take_view(token, take), *self._history_view(token),
            *self._trajectory_view(token),
        )

    def _take_view(self, token: str, take: Take) -> tuple:
        return (
            text.take_title(take),
            str(self.studio.clip_path(token, take.id)),
            take.caption,
            text.read_back(take.mode, self.studio.read_back(take.prompt, take.caption) or [], self._expert_made(take)),
            text.unknown_warning(take.unknown_words) + text.input_notes(take.notes),
            take.critique,
            take.caption,
            word_diff(take.caption, take.caption),
            take.id,
            self._before_view(token, take),
        )

    def _expert_made(self, take: Take) -> bool:
        """Whether the high-noise expert made the first step of ``take``'s clip, as the hint under its
        caption needs it: a generated take, of a model with one, not made without it."""
        return (take.mode == "generate" and take.settings.get("high_noise_expert") is not False
                and self.studio.model_defaults().high_noise_expert)

    def _before_view(self, token: str, take: Take) -> Any:
        """The clip ``take`` was made from, beside it (an edit's before and after); hidden when it
        has none in the session."""
        try:
            parent = self.studio.take(token, take.parent_id) if take.parent_id else None
        except ValueError:
            parent = None
        if parent is None:
            return gr.Video(value=None, visible=False)
        return gr.Video(value=str(self.studio.clip_path(token, parent.id)), visible=True,
                        label=f"Before: take #{parent.seq}")

    @staticmethod
    def _empty_take() -> tuple:
        return ("### No take yet\nType a prompt and press **Generate**.", None, "", "", "", "", "", [], None,
                gr.Video(value=None, visible=False))

    def _history_view(self, token: str, takes: list[Take] | None = None) -> tuple:
        takes = self.studio.takes(token) if takes is None else takes
        gallery = [
            (str(self.studio.thumbnail_path(token, take.id)), f"#{take.seq} · {MODE_LABELS[take.mode]}")
            for take in takes
        ]
        return gallery, text.history(takes, self.studio.read_back)

    def _trajectory_view(self, token: str) -> tuple:
        trajectory = self.studio.trajectory(token)
        if trajectory is None or not trajectory.steps:
            return gr.Slider(minimum=0, maximum=1, value=0), "No run yet.", None, ""
        last = len(trajectory.steps) - 1
        path, step = self.studio.trajectory_clip(token, last)
        return (
            gr.Slider(minimum=0, maximum=max(last, 1), value=last, step=1),
            self._step_info(token, trajectory.take_id, step, last),
            str(path),
            step.text or "",
        )

    def _step_info(self, token: str, take_id: str, step: Any, index: int) -> str:
        """The line above a step of the last run: whose run it is (another take may be open), the
        step, what it denoises and its noise level."""
        stage = {"generate": "video", "joint": "video and text", "edit": "video (edit)",
                 "caption": "text (caption)"}.get(step.stage, step.stage)
        seq = self.studio.take(token, take_id).seq
        return f"Take #{seq}, step {index} · denoising the {stage} · σ = {step.sigma:.3f}"


def _sentence(message: str) -> str:
    return message[:1].upper() + message[1:] if message else "Something went wrong."


def _int(value: float | None, what: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, float) and not value.is_integer():
        raise ValueError(f"The {what} must be a whole number, not {value}.")
    return int(value)


def _tries_value(value: float | None) -> int:
    return _int(1 if value is None else value, "number of tries")


def _float(value: float | None) -> float | None:
    return None if value is None else float(value)


def _clock(seconds: float) -> str:
    """``m:ss.s``, short enough for a table cell."""
    minutes, rest = divmod(round(seconds * 10), 600)
    return f"{minutes}:{rest / 10:04.1f}"


def _skip(n: int) -> tuple:
    return tuple(gr.skip() for _ in range(n))
