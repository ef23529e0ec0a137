"""Accuracy of one task under several pipeline settings, on the same clips and seeds.

``uvigu sweep`` answers "would other settings do better?" for the tasks the evaluation measures:
``generate`` (the analyzer finds each prompted object with its colour, shape and motion),
``caption`` (the caption of the reference clip names each object), ``round_trip`` (the caption of
the clip generated from the prompt names each prompted object; the settings are the caption's) and
``edit`` (the edited attribute shows, the rest is kept, the old version is gone; ``with_source=1``
gives each edit the caption before the change too, as ``pipe.edit``'s ``source_prompt``, and
``with_source=2`` the model's own caption of the clip instead, as the studio's *Keep the rest*
does; its seconds include that caption), and ``fix`` (the clip generated from the prompt, captioned,
and edited once with its caption corrected to what the prompt asked — the studio's *Ask for what
it missed* then *Regenerate with edits*, keeping the rest; ``with_source=0``: a plain edit, *Keep
the rest* unticked; ``keep_better=1``: the edit kept only when the model's caption of it agrees
better with the prompt than the clip's caption did, as a visitor comparing the two takes' read-backs
would keep it —; the analyzer scores the result as
``generate`` scores a clip; ``rounds=0`` scores the generated clip itself, the baseline, and a
clip whose caption already says all that was asked is scored as generated; the settings are the
edit's, and the seconds the caption's and edit's). Generate and fix also count the clips whose
prompt names a background and those the analyzer finds that background in, the objects the
analyzer finds beyond the scene's (drawn though not asked for; the objects-right figure does not
count them against a setting), and the clips in which it finds no object. The clips and the
pipeline seeds are the evaluation's (`uvigu.eval.clips`), and so is the counting
(`uvigu.eval.report`): for generate, caption and round trip the main column counts every object of
the main set, the held-out column the objects with a held-out colour–shape pair; edits count the
clips of each set. A row at the default settings
reproduces the evaluation's figures on the same clips.

A caption setting can look free on reference clips and still cost round-trip objects: generated
clips leave the text stream unsure of more words (docs/EVAL.md), so choose caption settings with
``round_trip`` too. It generates each clip once, at the pipeline's defaults, and captions that clip
under every setting; its seconds per clip are the caption's alone.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

from uvigu.eval.analyzer import analyze_clip, match_objects
from uvigu.eval.grammar import goes_one_way, parse_caption, parse_prompt, scene_mentions
from uvigu.eval.clips import SETS, EvalConfig, clip_config, counted_objects, eval_example
from uvigu.eval.tasks import WITH_SOURCE, score_edit
from uvigu.flows import check_renoise_from
from uvigu.flows.moving_noise import check_draft, check_share, check_speed
from uvigu.judge import shapes_judge
from uvigu.object_guidance import check_every, check_guidance_to, check_weight

FIELDS = ("color", "shape", "motion")
EDIT_FIELDS = ("changed", "kept", "stale")  # the edit record's parts: shows, rest kept, old still seen
# The settings each task takes, and their types (the pipeline checks their ranges).
SETTINGS: dict[str, dict[str, type]] = {
    # best_of=N: N takes, the one whose caption agrees best with the prompt kept (pipe.generate), each
    # judged after the share judge_at of its steps by a caption of judge_steps steps (0: the full caption)
    # read_guidance=S: the model's own reading of the clip steers it (pipe.generate's read_guidance), at the
    # steps from σ 0.95 down to read_guidance_from=L (the model's, unless given)
    # shift=S: the sampler's noise levels under another shift than the model's scheduler's (σ' = Sσ/(1+(S−1)σ);
    # larger spends more of the steps at high noise, where a clip's layout and motion are decided)
    # expert=0: without the model's high-noise expert (the task's high_noise_expert=False), 1 with it
    # motion_noise=S: the share of the starting noise that moves the way the prompt asks (pipe.generate's),
    # motion_noise_speed=V: the cells a frame it moves; motion_noise_paths=S: the share moving along each
    # object's path when they go different ways, found in a draft of motion_noise_draft=N steps;
    # object_guidance=W: the share of guidance along each such path from the object's own prompt, at the
    # steps down to σ object_guidance_to=L, calling the network every object_guidance_every=N of them
    # (the model's config, for the row); renoise=S: the share of the noise each step from σ renoise_from=L
    # down draws afresh (the model's config, for the row; flows.Renoise)
    "generate": {"guidance_scale": float, "num_inference_steps": int, "best_of": int, "judge_at": float,
                 "judge_steps": int, "read_guidance": float, "read_guidance_from": float, "motion_noise": float,
                 "motion_noise_speed": float, "motion_noise_paths": float, "motion_noise_draft": int,
                 "object_guidance": float, "object_guidance_to": float, "object_guidance_every": int,
                 "renoise": float, "renoise_from": float, "shift": float, "expert": int},
    "caption": {"num_inference_steps": int, "temperature": float, "reread": int, "reread_threshold": float,
                "reread_period": int, "verify_weight": float, "verify_max_texts": int, "verify_draws": int},
    # with_source=1: the edit is also given the caption before the change (pipe.edit's source_prompt);
    # 2: the model's own caption of the clip, as the studio's Keep the rest
    # (object_guidance and object_guidance_to, as generate's: with_source's edits of two or more objects)
    "edit": {"strength": float, "guidance_scale": float, "num_inference_steps": int, "with_source": int,
             "best_of": int, "judge_at": float, "judge_steps": int, "shift": float, "expert": int,
             "object_guidance": float, "object_guidance_to": float, "object_guidance_every": int},
}
SETTINGS["round_trip"] = SETTINGS["caption"]  # the caption of the generated clip, under caption settings
# rounds=0: the generated clip as it is; 1: edited once with its caption corrected (pipe.corrected_caption)
SETTINGS["fix"] = {"strength": float, "guidance_scale": float, "num_inference_steps": int, "rounds": int,
                  "expert": int, "with_source": int, "keep_better": int}
# settings of how the pipeline samples, not arguments of the task
SAMPLER_SETTINGS = ("shift", "expert", "motion_noise_speed", "motion_noise_paths", "motion_noise_draft",
                    "object_guidance", "object_guidance_to", "object_guidance_every", "renoise", "renoise_from")
# those of them the model's config holds, each with the check of its value
CONFIG_SETTINGS = {"motion_noise_speed": check_speed,
                   "motion_noise_paths": lambda share: check_share(share, "motion_noise_paths"),
                   "motion_noise_draft": check_draft, "object_guidance": check_weight,
                   "object_guidance_to": check_guidance_to, "object_guidance_every": check_every,
                   "renoise": lambda share: check_share(share, "renoise"), "renoise_from": check_renoise_from}


def parse_setting(task: str, text: str) -> dict[str, int | float]:
    """``"guidance_scale=6,num_inference_steps=40"`` → keyword arguments of ``task``; ``""`` or
    ``"defaults"`` → ``{}`` (the pipeline's defaults)."""
    if task not in SETTINGS:
        raise ValueError(f"task must be one of {', '.join(SETTINGS)}, got {task!r}.")
    text = text.strip()
    if text in ("", "defaults"):
        return {}
    values: dict[str, int | float] = {}
    for part in text.split(","):
        name, sep, value = part.partition("=")
        name = name.strip()
        if not sep or name not in SETTINGS[task]:
            allowed = ", ".join(f"{n}=…" for n in SETTINGS[task])
            raise ValueError(f"{part.strip()!r} is not a setting of {task}; use {allowed} (comma-separated).")
        try:
            values[name] = SETTINGS[task][name](value.strip())
        except ValueError:
            raise ValueError(f"{name} needs a number, got {value.strip()!r}.") from None
        if name == "with_source" and task == "fix" and values[name] not in (0, 1):  # fix's source: the caption
            raise ValueError(f"fix's with_source is 0 (a plain edit) or 1 (keeping the rest), got {value.strip()!r}.")
        if name == "with_source" and values[name] not in WITH_SOURCE:
            raise ValueError(f"with_source is 0, 1 or 2, got {value.strip()!r}.")
        if name in ("keep_better", "rounds") and values[name] not in (0, 1):
            raise ValueError(f"{name} is 0 or 1, got {value.strip()!r}.")
        if name == "shift" and not values[name] > 0:
            raise ValueError(f"shift must be above 0, got {value.strip()!r}.")
        if name in CONFIG_SETTINGS:
            CONFIG_SETTINGS[name](values[name])
        if name == "expert" and values[name] not in (0, 1):
            raise ValueError(f"expert is 0 (without the model's high-noise expert) or 1, got {value.strip()!r}.")
    return values


@dataclass(frozen=True)
class SweepRow:
    settings: dict[str, int | float]
    set_name: str  # "main" | "heldout"
    right: int  # objects with colour, shape and motion all right
    total: int
    fields: dict[str, int] = field(default_factory=dict)  # objects right on each field alone
    seconds_per_clip: float = 0.0
    # generate and fix: clips whose prompt names a background, and those the analyzer finds it in
    backgrounds_named: int = 0
    backgrounds_right: int = 0
    # generate and fix: objects the analyzer finds beyond the scene's, over the row's clips (drawn unasked)
    unasked: int = 0
    # generate and fix: clips in which the analyzer finds no object at all
    empty: int = 0
    # objects right, and counted, of prompts whose objects all go one way (the rest go different ways)
    one_way_right: int = 0
    one_way_total: int = 0

    @property
    def accuracy(self) -> float:
        return self.right / self.total if self.total else float("nan")


def run_sweep(
    pipe,
    task: str,
    settings: Sequence[dict[str, int | float]],
    config: EvalConfig = EvalConfig(),
    progress: Callable[[int, int], None] | None = None,
) -> list[SweepRow]:
    """One row per (settings, set) with clips and seeds of the evaluation (``config``)."""
    if task not in SETTINGS:
        raise ValueError(f"task must be one of {', '.join(SETTINGS)}, got {task!r}.")
    shapes = clip_config(pipe)
    clips = [(s, i, eval_example(config, s, i, shapes)) for s in SETS for i in range(config.count(s))]
    fields = EDIT_FIELDS if task == "edit" else FIELDS
    generated: dict[tuple[str, int], object] = {}  # round trip: each clip generated once, for every setting
    rows, done = [], 0
    for row_settings in settings:
        kwargs = {k: v for k, v in row_settings.items() if k not in SAMPLER_SETTINGS}  # the task's arguments
        expert = row_settings.get("expert", 1) != 0
        without = {} if expert else {"high_noise_expert": False}
        kwargs.update(without)
        # each set's counts, under the names of SweepRow's fields
        counts = {s: dict(right=0, total=0, backgrounds_named=0, backgrounds_right=0, unasked=0, empty=0,
                          one_way_right=0, one_way_total=0) for s in SETS}
        field_counts = {s: {f: 0 for f in fields} for s in SETS}
        seconds = {s: 0.0 for s in SETS}
        with sampling_shift(pipe, row_settings.get("shift")), config_values(
            pipe, {k: v for k, v in row_settings.items() if k in CONFIG_SETTINGS}
        ):
            for set_name, index, example in clips:
                seed = config.pipeline_seed(set_name, index)
                frames = example.frames
                if task in ("round_trip", "fix"):
                    key = (set_name, index, expert)  # fix's expert=0 makes its clip without the expert too
                    if key not in generated:
                        generated[key] = pipe.generate(example.prompt, seed=seed, **without).frames
                    frames = generated[key]
                start = time.perf_counter()
                score = _score_clip(
                    pipe, task, example, set_name=set_name, index=index, seed=seed, kwargs=kwargs, frames=frames,
                )
                seconds[set_name] += time.perf_counter() - start
                c = counts[set_name]
                c["right"] += score.right
                c["total"] += score.counted
                c["backgrounds_named"] += score.background is not None
                c["backgrounds_right"] += bool(score.background)
                c["unasked"] += score.unasked
                c["empty"] += score.empty
                if task != "edit" and goes_one_way(example.prompt):
                    c["one_way_right"] += score.right
                    c["one_way_total"] += score.counted
                for f, n in score.fields.items():
                    field_counts[set_name][f] += n
                done += 1
                if progress is not None:
                    progress(done, len(clips) * len(settings))
        for set_name in SETS:
            n = config.count(set_name)
            if n:
                rows.append(SweepRow(dict(row_settings), set_name, fields=field_counts[set_name],
                                     seconds_per_clip=seconds[set_name] / n, **counts[set_name]))
    return rows


@contextmanager
def sampling_shift(pipe, shift: float | None) -> Iterator[None]:
    """``pipe`` samples its videos under the scheduler shift ``shift`` inside the block (``None``:
    as it is); its own scheduler is put back after."""
    if shift is None:
        yield
        return
    original = pipe.scheduler
    pipe.scheduler = type(original).from_config(original.config, shift=float(shift))
    try:
        yield
    finally:
        pipe.scheduler = original


@contextmanager
def config_values(pipe, values: dict[str, int | float]) -> Iterator[None]:
    """``pipe``'s config holds ``values`` (names of `CONFIG_SETTINGS`, each checked) inside the
    block; its own values are put back after. No values: nothing is set."""
    if not values:
        yield
        return
    original = {name: getattr(pipe.config, name) for name in values}
    pipe.register_to_config(**{name: CONFIG_SETTINGS[name](value) for name, value in values.items()})
    try:
        yield
    finally:
        pipe.register_to_config(**original)


@dataclass(frozen=True)
class _ClipScore:
    """One clip under one setting. Generate, caption and round trip count the clip's objects (on the
    held-out set only those with a held-out pair); edit counts the clip's one edit, or none when its
    scene has no valid edit."""

    right: int  # objects (edits) right
    counted: int
    fields: dict[str, int]  # right on each field alone
    # a clip generate or fix makes: whether the analyzer finds the background its prompt names (None:
    # the prompt names none), how many more objects it finds than the scene has, and whether it finds none
    background: bool | None = None
    unasked: int = 0
    empty: bool = False


def _score_clip(pipe, task: str, example, *, set_name: str, index: int, seed: int,
                kwargs: dict[str, int | float], frames) -> _ClipScore:
    """``example`` under ``task`` with the setting's ``kwargs``. Caption and round trip caption
    ``frames``: the reference clip, or the one generated from its prompt."""
    if task == "edit":
        record = score_edit(pipe, example, index=index, set_name=set_name, seed=seed, **kwargs)
        if record is None:
            return _ClipScore(0, 0, dict.fromkeys(EDIT_FIELDS, 0))
        return _ClipScore(int(record["success"]), 1, {f: int(record[f]) for f in EDIT_FIELDS})
    made = {}
    if task in ("generate", "fix"):
        clip = (pipe.generate(example.prompt, seed=seed, **kwargs).frames if task == "generate"
                else _fixed(pipe, example.prompt, frames, seed, dict(kwargs)))
        analysis = analyze_clip(clip)
        found, named = analysis.objects, parse_prompt(example.prompt).background
        made = {"background": None if named is None else analysis.background == named,
                "unasked": max(0, len(found) - len(example.scene.objects)), "empty": not found}
    else:
        found = parse_caption(pipe.caption(frames, seed=seed, **kwargs).text).objects
    truth = scene_mentions(example.scene)
    counted = counted_objects(set_name, truth)

    def right(fields: Sequence[str]) -> int:
        return sum(ok for ok, keep in zip(match_objects(truth, found, fields), counted) if keep)

    return _ClipScore(right(FIELDS), sum(counted), {f: right((f,)) for f in FIELDS}, **made)


def _fixed(pipe, prompt: str, frames, seed: int, kwargs: dict[str, int | float]):
    """``frames`` (generated from ``prompt``) edited once with their caption corrected to what the
    prompt asked, keeping the rest (the caption as ``source_prompt``; ``with_source=0``: a plain
    edit); as they are with ``rounds=0`` or when the caption says all that was asked (or cannot be
    corrected), and with ``keep_better=1`` unless the caption of the edit agrees better with the
    prompt (`uvigu.judge.shapes_judge`, as best-of compares takes)."""
    with_source, keep_better = kwargs.pop("with_source", 1), kwargs.pop("keep_better", 0)
    if not kwargs.pop("rounds", 1):
        return frames
    caption = pipe.caption(frames, seed=seed).text
    corrected = pipe.corrected_caption(prompt, caption)
    if corrected is None:
        return frames
    source = {"source_prompt": caption} if with_source else {}
    edited = pipe.edit(frames, corrected, seed=seed, **source, **kwargs).frames
    if keep_better and shapes_judge(prompt, pipe.caption(edited, seed=seed).text) <= shapes_judge(prompt, caption):
        return frames
    return edited


def _rate(hits: int, count: int) -> str:
    return f"{hits / count:.3f} ({hits}/{count})" if count else "–"


def render_table(rows: Sequence[SweepRow], task: str) -> str:
    """A markdown table: one line per row, accuracy with counts, per-field rates (for objects also
    split by the prompts whose objects go one way and those whose go different ways), seconds."""
    if task == "edit":
        head, fields, unit = "edits right (shows, rest kept, old gone) | shows | rest kept | old still seen", EDIT_FIELDS, "edits"
    else:
        head, fields, unit = "objects right (colour, shape, motion) | colour | shape | motion", FIELDS, "objects"
    objects = task != "edit"
    if objects:
        head += " | prompts going one way | going different ways"
    made = task in ("generate", "fix")  # clips made from the prompt: is the background it names there?
    if made:
        head += " | background as the prompt names it | objects not asked for | clips with no object"
    lines = [f"| {task} settings | set | {head} | s per clip |",
             "|---|---|---|" + "---:|" * (4 + 2 * objects + 3 * made)]
    for r in rows:
        settings = ", ".join(f"{k}={v:g}" for k, v in r.settings.items()) or "defaults"
        per_field = " | ".join(f"{r.fields[f] / r.total:.3f}" if r.total else "–" for f in fields)
        if objects:
            per_field += f" | {_rate(r.one_way_right, r.one_way_total)} | "
            per_field += _rate(r.right - r.one_way_right, r.total - r.one_way_total)
        if made:
            per_field += (f" | {r.backgrounds_right / r.backgrounds_named:.3f} ({r.backgrounds_right}/"
                          f"{r.backgrounds_named})" if r.backgrounds_named else " | –")
            per_field += f" | {r.unasked} | {r.empty}"
        acc = f"{r.accuracy:.3f} ({r.right}/{r.total})" if r.total else f"– (0 {unit})"
        lines.append(f"| {settings} | {r.set_name} | {acc} | {per_field} | {r.seconds_per_clip:.2f} |")
    return "\n".join(lines)
