"""The studio facade: sessions of takes around one shared pipeline.

Everything a front end needs goes through :class:`Studio`: it checks input against the
:class:`~uvigu.studio.settings.StudioSettings` limits (``ValueError`` with a message for the
visitor), runs model work on the single job queue (what each job does is in
:mod:`uvigu.studio.runs`), and stores each finished take, keeping its run's steps
(:mod:`uvigu.studio.trajectories`).

Sessions are addressed by an opaque random token that only the visitor holds; the store
knows a session by the token's SHA-256, so neither the database nor the folder names reveal
a token.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import math
import os
import secrets
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from uvigu.inputs import number_in_range
from uvigu.judge import ReadBack
from uvigu.studio.archive import ArchivedTake, ArchiveLimits, read_archive, write_archive
from uvigu.studio.jobs import Job, JobQueue
from uvigu.studio.runs import (
    ModelDefaults, NewTake, Pipeline, Timeline, caption_take, caption_timeline, edit_take, generate_take, off_option,
    unknown_words,
)
from uvigu.studio.settings import StudioSettings
from uvigu.studio.store import Take, TakeStore, new_take_id
from uvigu.studio.trajectories import Trajectories, Trajectory, TrajectoryFrame, shown_trajectory, step_clip, steps_png
from uvigu.timeline import plan_timeline
from uvigu.videoio import check_video, probe_video, read_clip, write_gif, write_mp4

logger = logging.getLogger(__name__)

TOKEN_BYTES = 24
CLEANUP_EVERY_S = 3600.0  # old sessions are also swept while serving, at most this often
GENERATE_MODES = ("generate", "joint")


class Studio:
    """Sessions, takes and the model queue for one pipeline shared by every visitor."""

    def __init__(self, pipeline: Pipeline, settings: StudioSettings) -> None:
        self.pipe = pipeline
        self.settings = settings
        self.store = TakeStore(settings.data_dir)
        self.jobs = JobQueue(settings.max_queue, settings.max_jobs_per_session)
        self.trajectories = Trajectories()
        self._last_cleanup = time.monotonic()

    def close(self) -> None:
        self.jobs.close(timeout=30)
        self.store.close()

    def model_defaults(self) -> ModelDefaults:
        return ModelDefaults.from_pipeline(self.pipe)

    def browser_secret(self) -> str:
        """A secret that stays the same across restarts of this data directory."""
        return self.store.instance_secret()

    # -- sessions --------------------------------------------------------------------------

    def new_session(self) -> str:
        """Start a session and return its token (the only key to it; keep it secret)."""
        if time.monotonic() - self._last_cleanup > CLEANUP_EVERY_S:
            self._last_cleanup = time.monotonic()
            self.cleanup()
        token = secrets.token_urlsafe(TOKEN_BYTES)
        self.store.create_session(_session_id(token))
        return token

    def has_session(self, token: str | None) -> bool:
        return isinstance(token, str) and self.store.has_session(_session_id(token))

    def open_session(self, token: str | None) -> str:
        """The same token if it names a live session, else a new session's token."""
        if self.has_session(token):
            assert token is not None
            self.store.touch_session(_session_id(token))
            return token
        return self.new_session()

    def _sid(self, token: str | None) -> str:
        if not self.has_session(token):
            raise ValueError("This session has expired or does not exist; reload the page.")
        assert token is not None
        return _session_id(token)

    # -- model work ------------------------------------------------------------------------

    def unknown_words(self, text: str) -> list[str]:
        return unknown_words(self.pipe, text)

    def known_words(self) -> list[str] | None:
        """The words the model knows, sorted; ``None`` when it spells out any word (a subword
        tokenizer) or does not say."""
        words = getattr(self.pipe, "known_words", None)
        return None if words is None else words()

    def prompt_guide(self) -> str | None:
        """How the prompts the model learned go (`UniViGUPipeline.prompt_guide`); ``None`` when it
        does not say."""
        guide = getattr(self.pipe, "prompt_guide", None)
        return None if guide is None else guide()

    def prompt_notes(self, text: str) -> list[str]:
        """What ``text`` asks beyond what the model learned (`UniViGUPipeline.prompt_notes`)."""
        notes = getattr(self.pipe, "prompt_notes", None)
        return [] if notes is None or not text.strip() else list(notes(text))

    def caption_follows_grammar(self, caption: str) -> bool | None:
        """Whether ``caption`` follows the grammar the model was trained to write (``None``: the
        model declares none): a caption of an upload that does not says the clip is unlike what it
        learned from."""
        check = getattr(self.pipe, "follows_grammar", None)
        return None if check is None else check(caption)

    def read_back(self, prompt: str, caption: str) -> list[ReadBack] | None:
        """What the model's ``caption`` of a clip says of each thing ``prompt`` asked for
        (`UniViGUPipeline.read_back`); ``None`` for a pipeline that cannot say."""
        check = getattr(self.pipe, "read_back", None)
        return None if check is None or not prompt.strip() else check(prompt, caption)

    def corrected_caption(self, prompt: str, caption: str) -> str | None:
        """``caption`` rewritten to say what ``prompt`` asked where it says otherwise
        (`UniViGUPipeline.corrected_caption`); ``None`` when there is nothing to correct or the
        pipeline cannot say."""
        correct = getattr(self.pipe, "corrected_caption", None)
        return None if correct is None or not prompt.strip() else correct(prompt, caption)

    def text_length(self, text: str) -> tuple[int, int]:
        """(tokens of ``text`` as a prompt, the most the model reads): a longer prompt or edited
        caption is refused."""
        return (self.pipe.count_tokens(text) if text.strip() else 0), int(self.pipe.max_text_tokens)

    def submit_generate(
        self,
        token: str,
        prompt: str,
        *,
        mode: str = "generate",
        seed: int | None = None,
        num_inference_steps: int | None = None,
        guidance_scale: float | None = None,
        best_of: int = 1,
        high_noise_expert: bool = True,
        moving_noise: bool = True,
    ) -> Job[Take]:
        """Queue text → clip, then clip → caption (``mode="generate"``) or both in one pass
        (``mode="joint"``). The job's result is the new take. ``best_of`` > 1 (generate mode) makes
        that many tries, seeds one apart, and keeps the one whose caption agrees best with the
        prompt (``pipe.generate(best_of=…)``); the take's settings list every try.
        ``high_noise_expert=False`` leaves the model's high-noise expert out of the clip (the model
        makes every step; ``model_defaults().high_noise_expert`` says whether it has one), and
        ``moving_noise=False`` starts from plain noise where the model's would move as the prompt
        asks (``motion_noise`` 0; ``model_defaults().motion_noise`` is the model's share); the take's
        settings record either."""
        sid = self._sid(token)
        if mode not in GENERATE_MODES:
            raise ValueError(f"Mode must be one of {', '.join(GENERATE_MODES)}, not {mode!r}.")
        prompt = self.settings.check_text(prompt, "prompt")
        seed = self.settings.check_seed(seed)
        steps = self.settings.check_steps(num_inference_steps)
        guidance = self.settings.check_guidance(guidance_scale)
        best_of = self.settings.check_best_of(best_of, mode)
        self._check_room(sid)
        options = {"num_inference_steps": steps, "guidance_scale": guidance,
                   **off_option("high_noise_expert", high_noise_expert, "high_noise_expert", False),
                   **off_option("moving_noise", moving_noise, "motion_noise", 0.0)}
        return self._submit_take(sid, lambda job: generate_take(
            self.pipe, job, prompt, mode=mode, seed=seed, best_of=best_of, options=options,
        ))

    def submit_edit(
        self,
        token: str,
        take_id: str,
        prompt: str,
        *,
        strength: float | None = None,
        keep_rest: bool = False,
        seed: int | None = None,
        num_inference_steps: int | None = None,
        guidance_scale: float | None = None,
        best_of: int = 1,
        high_noise_expert: bool = True,
    ) -> Job[Take]:
        """Queue a regeneration of take ``take_id`` conditioned on ``prompt`` (the edited
        caption), then caption the result. The new take's parent is ``take_id``. ``best_of`` > 1
        makes that many tries and keeps the one whose caption agrees best with ``prompt``, and
        ``high_noise_expert`` leaves the expert in or out, as ``submit_generate`` does (the expert
        only makes the steps of a plain edit at its noise levels, reached at strength 1).

        With ``keep_rest`` the take's own caption is the text before the change (the pipeline's
        ``source_prompt``): the edit moves the clip only by what the two captions disagree on
        (FlowEdit), keeping more of the rest, at about 2.5 times the time. Left out, ``strength``
        is the model's default for the kind of edit (``model_defaults``: its ``edit_strength``
        plain, 0.9 keeping the rest, since what the captions share is not redrawn)."""
        sid = self._sid(token)
        parent = self.store.get_take(sid, take_id)
        # Read now, so deleting the take while the edit waits in the queue leaves the edit whole.
        frames = np.load(self.store.take_file(sid, take_id, "frames.npy"), allow_pickle=False)
        prompt = self.settings.check_text(prompt, "edited caption")
        source_prompt = None
        if keep_rest:
            source_prompt = parent.caption.strip()
            if not source_prompt:
                raise ValueError(
                    f"Take #{parent.seq} has no caption to compare the edit with; "
                    "regenerate without keeping the rest."
                )
            if prompt.split() == source_prompt.split():
                raise ValueError(
                    "The caption is unchanged, so keeping the rest leaves nothing to change; "
                    "edit the caption, or untick Keep the rest for a variation."
                )
        return self._submit_edit(
            sid, frames, prompt, parent_id=take_id,
            notes=(), strength=strength, seed=seed, num_inference_steps=num_inference_steps,
            guidance_scale=guidance_scale, source_prompt=source_prompt, best_of=best_of,
            high_noise_expert=high_noise_expert,
        )

    def submit_edit_upload(
        self,
        token: str,
        video_path: str | os.PathLike,
        prompt: str,
        *,
        strength: float | None = None,
        source_prompt: str | None = None,
        seed: int | None = None,
        num_inference_steps: int | None = None,
        guidance_scale: float | None = None,
        best_of: int = 1,
        start_s: float | None = 0.0,
        high_noise_expert: bool = True,
    ) -> Job[Take]:
        """Queue an edit of an uploaded clip, the model's length of it from ``start_s`` (fitted to
        the model first; see ``load_upload``). Given ``source_prompt`` — what the clip shows,
        before the change — the edit keeps the rest of the clip as ``submit_edit``'s ``keep_rest``
        does; ``best_of`` and ``high_noise_expert`` as ``submit_edit``'s."""
        sid = self._sid(token)
        prompt = self.settings.check_text(prompt, "prompt")
        if source_prompt is not None:
            source_prompt = self.settings.check_text(source_prompt, "text before the change")
        frames, notes = self.load_upload(video_path, start_s)
        return self._submit_edit(
            sid, frames, prompt, parent_id=None, notes=tuple(notes), strength=strength,
            seed=seed, num_inference_steps=num_inference_steps, guidance_scale=guidance_scale,
            source_prompt=source_prompt, best_of=best_of, high_noise_expert=high_noise_expert,
        )

    def _submit_edit(
        self,
        sid: str,
        source: np.ndarray,
        prompt: str,
        *,
        parent_id: str | None,
        notes: tuple[str, ...],
        strength: float | None,
        seed: int | None,
        num_inference_steps: int | None,
        guidance_scale: float | None,
        source_prompt: str | None = None,
        best_of: int = 1,
        high_noise_expert: bool = True,
    ) -> Job[Take]:
        if strength is None:
            defaults = self.model_defaults()
            strength = defaults.edit_strength if source_prompt is None else defaults.keep_rest_strength
        strength = self.settings.check_strength(strength)
        seed = self.settings.check_seed(seed)
        steps = self.settings.check_steps(num_inference_steps)
        guidance = self.settings.check_guidance(guidance_scale)
        best_of = self.settings.check_best_of(best_of, "edit")
        self._check_room(sid)
        options = {"num_inference_steps": steps, "guidance_scale": guidance,
                   **off_option("high_noise_expert", high_noise_expert, "high_noise_expert", False)}
        return self._submit_take(sid, lambda job: edit_take(
            self.pipe, job, source, prompt, parent_id=parent_id, notes=notes, strength=strength,
            source_prompt=source_prompt, seed=seed, best_of=best_of, options=options,
        ))

    def submit_caption_upload(
        self,
        token: str,
        video_path: str | os.PathLike,
        *,
        start_s: float | None = 0.0,
        seed: int | None = None,
        num_inference_steps: int | None = None,
    ) -> Job[Take]:
        """Queue captioning of an uploaded clip, the model's length of it from ``start_s``; it
        becomes a take of mode ``caption`` (whose ``notes`` say how the upload was fitted to the
        model), which can be edited like any."""
        sid = self._sid(token)
        seed = self.settings.check_seed(seed)
        steps = self.settings.check_steps(num_inference_steps)
        frames, notes = self.load_upload(video_path, start_s)
        self._check_room(sid)
        options = {"num_inference_steps": steps}
        return self._submit_take(sid, lambda job: caption_take(
            self.pipe, job, frames, notes=tuple(notes), seed=seed, options=options,
        ))

    def cancel(self, token: str) -> int:
        """Stop this session's running job (between two steps) and drop its queued ones."""
        if not self.has_session(token):
            return 0
        return self.jobs.cancel(_session_id(token))

    def load_upload(self, video_path: str | os.PathLike, start_s: float | None = 0.0) -> tuple[np.ndarray, list[str]]:
        """Decode an uploaded clip, from ``start_s`` seconds in (None: its start), and fit it to
        the model's size, length and frame rate.

        Returns the frames uint8 (f, h, w, 3) and notes naming every change. Refuses (with a
        ``ValueError`` saying why) files that are not videos, corrupt, empty, too large or
        too long.
        """
        path, start_s = self.settings.check_upload(video_path), self.settings.check_start(start_s)
        conformed = read_clip(
            path, num_frames=self.pipe.default_num_frames, fps=self.pipe.fps,
            height=self.pipe.default_height, width=self.pipe.default_width, start_s=start_s,
            max_duration_s=self.settings.max_upload_duration_s, max_side=self.settings.max_upload_side,
        )
        return conformed.frames, list(conformed.notes)

    def upload_length(self, video_path: str | os.PathLike) -> float:
        """How long an upload's video lasts, in seconds, after the checks of the whole file that
        ``load_upload`` makes (a ``ValueError`` saying why it cannot be used). Reads no frames."""
        path = self.settings.check_upload(video_path)
        info = probe_video(path)
        check_video(info, path.name, max_duration_s=self.settings.max_upload_duration_s,
                    max_side=self.settings.max_upload_side)
        return info.video_s

    def submit_caption_timeline(
        self,
        token: str,
        video_path: str | os.PathLike,
        *,
        every_s: float,
        start_s: float | None = 0.0,
        seed: int | None = None,
    ) -> Job[Timeline]:
        """Queue captioning an upload every ``every_s`` seconds from ``start_s`` to its end
        (`uvigu.timeline`), at most ``max_timeline_captions`` captions (refused before queueing);
        the result's cues, and the same as SubRip subtitles in the session's folder (the latest
        timeline's only). No take is made: a timeline is read, not edited."""
        sid = self._sid(token)
        seed = self.settings.check_seed(seed)
        path, start_s = self.settings.check_upload(video_path), self.settings.check_start(start_s)
        every_s = number_in_range(every_s, "The time between captions", 0.5, 60.0, "a time in seconds")
        plan = plan_timeline(
            path, every_s, start_s=start_s, max_captions=self.settings.max_timeline_captions,
            max_duration_s=self.settings.max_upload_duration_s, max_side=self.settings.max_upload_side,
        )
        self._check_room(sid)
        out_dir = self.store.session_dir(sid) / "timelines"
        return self.jobs.submit(sid, lambda job: caption_timeline(self.pipe, job, plan, seed=seed, out_dir=out_dir))

    # -- takes -----------------------------------------------------------------------------

    def takes(self, token: str) -> list[Take]:
        return self.store.list_takes(self._sid(token))

    def take(self, token: str, take_id: str) -> Take:
        return self.store.get_take(self._sid(token), take_id)

    def clip_path(self, token: str, take_id: str) -> Path:
        """The take's H.264 clip, enlarged for display."""
        return self.store.take_file(self._sid(token), take_id, "clip.mp4")

    def take_gif(self, token: str, take_id: str) -> Path:
        """The take as a looping GIF (``uvigu-take-<seq>.gif``) of its exact frames, enlarged as its
        clip is and played at the model's frame rate, for slides and messages that take no MP4.
        Written when asked; only the session's latest one is kept."""
        sid = self._sid(token)
        take = self.store.get_take(sid, take_id)
        frames = np.load(self.store.take_file(sid, take_id, "frames.npy"), allow_pickle=False)
        out_dir = self.store.session_dir(sid) / "gifs"
        shutil.rmtree(out_dir, ignore_errors=True)
        return write_gif(frames, out_dir / f"uvigu-take-{take.seq}.gif", self.pipe.fps,
                         scale=self._display_scale(frames))

    def thumbnail_path(self, token: str, take_id: str) -> Path:
        return self.store.take_file(self._sid(token), take_id, "thumb.png")

    def session_file(self, token: str, relative: str | os.PathLike) -> Path:
        """A file of this session by its path relative to the session folder (checked)."""
        path = self.store.resolve_in_session(self._sid(token), relative)
        if not path.is_file():
            raise ValueError("That file is not part of this session.")
        return path

    def set_critique(self, token: str, take_id: str, critique: str) -> Take:
        critique = (critique or "").strip()
        if len(critique) > self.settings.max_critique_chars:
            raise ValueError(
                f"The critique is {len(critique)} characters long; the limit is "
                f"{self.settings.max_critique_chars}."
            )
        return self.store.set_critique(self._sid(token), take_id, critique)

    def delete_takes(self, token: str, take_ids: list[str] | None = None) -> int:
        """Delete takes of this session (``None``: all of them), with their clips, captions and
        critiques; takes made from a deleted one are kept. Refused while a take of this session is
        being made (it may be an edit of one of them). Returns how many were deleted."""
        sid = self._sid(token)
        if self.jobs.unfinished(sid):
            raise ValueError(
                "A take of this session is still being made; wait for it (or press Stop) before "
                "deleting takes."
            )
        if take_ids is None:
            take_ids = [take.id for take in self.store.list_takes(sid)]
        else:
            for take_id in take_ids:
                self.store.get_take(sid, take_id)  # "No such take in this session." before any goes
        deleted = self.store.delete_takes(sid, take_ids)
        self.trajectories.forget_takes(sid, take_ids, self.store.session_dir(sid))
        logger.info("deleted %d takes of a session", deleted)
        return deleted

    def export_session(self, token: str) -> Path:
        """A zip of the session (``uvigu.studio.archive``): ``takes.json``, and every take's clip
        as ``take-<seq>-<id>.mp4`` and its frames as ``take-<seq>-<id>.npy``."""
        sid = self._sid(token)
        takes = self.store.list_takes(sid)
        if not takes:
            raise ValueError("This session has no takes to export yet.")
        out_dir = self.store.session_dir(sid) / "exports"
        shutil.rmtree(out_dir, ignore_errors=True)  # only the latest export is kept
        out_dir.mkdir(parents=True, exist_ok=True)
        target = out_dir / f"uvigu-session-{time.strftime('%Y%m%d-%H%M%S')}.zip"
        fd, tmp = tempfile.mkstemp(dir=out_dir, suffix=".zip.tmp")
        os.close(fd)
        try:
            write_archive(Path(tmp), takes, lambda take, name: self.store.take_file(sid, take.id, name),
                          fps=int(self.pipe.fps))
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return target

    def import_session(self, token: str, archive_path: str | os.PathLike) -> list[Take]:
        """Add the takes of a session export (made by :meth:`export_session`, here or on another
        studio) to this session, after its own takes and in their order, with new ids; a take
        keeps its parent when the parent came with it. Returns the added takes.

        The whole file is checked before anything is added (``ValueError`` saying what is wrong).
        Takes come back with their exact frames; an export made before frames were included gives
        its clips decoded and fitted to the model, with a note on each take."""
        sid = self._sid(token)
        if archive_path is None or not str(archive_path).strip():
            raise ValueError("No file was uploaded; choose a session export (.zip).")
        self._check_room(sid)
        room = self.settings.max_takes_per_session - self.store.count_takes(sid)
        limits = ArchiveLimits(
            max_bytes=self.settings.max_import_bytes, max_takes=room,
            max_prompt_chars=self.settings.max_prompt_chars, max_critique_chars=self.settings.max_critique_chars,
            max_seed=self.settings.max_seed,
        )
        archived = read_archive(archive_path, limits)
        contents = [self._archived_frames(item) for item in archived]  # every take decodes before any is added
        new_ids: dict[str, str] = {}
        added = []
        for item, (frames, notes) in zip(archived, contents):
            take = dataclasses.replace(
                item.take, id=new_take_id(), seq=0, parent_id=new_ids.get(item.take.parent_id),
                notes=item.take.notes + tuple(notes),
            )
            added.append(self._store_take(sid, take, frames))
            new_ids[item.take.id] = take.id
        logger.info("imported %d takes into a session", len(added))
        return added

    # -- trajectory ------------------------------------------------------------------------

    def trajectory(self, token: str) -> Trajectory | None:
        """The denoising trajectory of this session's last run (kept in memory only)."""
        return self.trajectories.get(self._sid(token))

    def trajectory_clip(self, token: str, index: int) -> tuple[Path, TrajectoryFrame]:
        """An H.264 clip of step ``index`` of the last run, and that step."""
        sid = self._sid(token)
        trajectory = shown_trajectory(self.trajectory(token))
        return step_clip(trajectory, index, self.store.session_dir(sid), fps=int(self.pipe.fps),
                         scale=self._display_scale)

    def trajectory_png(self, token: str) -> Path:
        """Every step of the last run as one picture (``uvigu-steps-<seq>.png``, `write_trajectory_png`):
        a row per step with its noise level, four frames of the clean-clip estimate and the text,
        under the take's description — for slides and handouts. Written when asked, beside the
        run's step clips (so it goes when they do)."""
        sid = self._sid(token)
        trajectory = shown_trajectory(self.trajectory(token))
        take = self.store.get_take(sid, trajectory.take_id)
        return steps_png(trajectory, take, self.store.session_dir(sid))

    # -- housekeeping ----------------------------------------------------------------------

    def cleanup(self, max_age_days: float | None = None) -> int:
        """Delete sessions unused for ``max_age_days`` (default from settings); returns how many."""
        days = self.settings.session_max_age_days if max_age_days is None else max_age_days
        cutoff = time.time() - days * 86400
        removed = 0
        for sid in self.store.sessions_unused_since(cutoff):
            self.jobs.cancel(sid)
            self.trajectories.forget(sid)
            self.store.delete_session(sid)
            removed += 1
        if removed:
            logger.info("removed %d sessions unused for %g days", removed, days)
        return removed

    # -- internals -------------------------------------------------------------------------

    def _submit_take(self, sid: str, run: Callable[[Job[Take]], NewTake]) -> Job[Take]:
        """Queue ``run`` and store the take it makes, its trajectory kept as the session's last run."""

        def work(job: Job[Take]) -> Take:
            take, frames, trajectory = run(job)
            job.raise_if_cancelled()
            saved = self._store_take(sid, take, frames)
            self.trajectories.keep(sid, Trajectory(saved.id, tuple(trajectory)), self.store.session_dir(sid),
                                   self.settings.trajectory_sessions)
            return saved

        return self.jobs.submit(sid, work)

    def _store_take(self, sid: str, take: Take, frames: np.ndarray) -> Take:
        """Write a take's frames, clip and thumbnail and record it; returns it with its ``seq``."""
        staging = self.store.stage(sid)
        try:
            np.save(staging / "frames.npy", np.ascontiguousarray(frames), allow_pickle=False)
            scale = self._display_scale(frames)
            write_mp4(frames, staging / "clip.mp4", fps=int(self.pipe.fps), scale=scale)
            middle = frames[len(frames) // 2].repeat(scale, axis=0).repeat(scale, axis=1)
            Image.fromarray(middle).save(staging / "thumb.png")
            return self.store.commit_take(sid, take, staging)
        except BaseException:
            self.store.discard(staging)
            raise

    def _archived_frames(self, item: ArchivedTake) -> tuple[np.ndarray, list[str]]:
        """An imported take's frames, and notes when they had to be read from its clip."""
        if item.frames is not None:
            return item.frames, []
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "clip.mp4"
            path.write_bytes(item.clip or b"")
            try:
                frames, notes = self.load_upload(path)
            except ValueError as error:
                raise ValueError(f"Take #{item.take.seq} of the export could not be read: {error}") from None
        return frames, ["read from the exported clip (an export without frames)", *notes]

    def _display_scale(self, frames: np.ndarray) -> int:
        side = min(frames.shape[1:3])
        return max(1, math.ceil(self.settings.display_min_side / max(side, 1)))

    def _check_room(self, sid: str) -> None:
        limit = self.settings.max_takes_per_session
        if self.store.count_takes(sid) >= limit:
            raise ValueError(
                f"This session has reached its limit of {limit} takes; export it to keep a copy "
                "and delete takes you no longer need (History tab)."
            )

def _session_id(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()
