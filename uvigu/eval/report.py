"""The evaluation report of `uvigu eval`: the DESIGN §5 metrics on fresh Shapes clips, as markdown.

Two clip sets (`uvigu.eval.clips`), both drawn with seeds no training item can have:
* **main**: the training distribution (split 'train') — seen colour–shape pairs, unseen clips;
* **held-out**: scenes that each contain a held-out colour–shape pair (split 'heldout').

Per clip, the five tasks of `uvigu.eval.tasks` (caption, generation, round trip, edit, joint)
through the pipeline's public methods at default settings and fixed seeds; BLEU-4 and CIDEr-D of
the captions over each set; the analyzer's accuracy on the reference clips beside them.

Every clip's results are one JSON record (`results.jsonl`); `summarize` recomputes the table
from those records alone, so the numbers can be re-checked without the model.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from uvigu.data.shapes import SHAPES
from uvigu.eval.clips import SETS, EvalConfig, clip_config, eval_example
from uvigu.eval.edits import ATTRIBUTES
from uvigu.eval.grammar import ObjectMention, best_pairing, goes_one_way, parse_prompt
from uvigu.eval.journal import RunJournal, run_key
from uvigu.eval.metrics import bleu4, cider_d
from uvigu.eval.tasks import CORE_FIELDS, STRIP_KINDS, evaluate_clip

logger = logging.getLogger(__name__)

DEFAULT_MODEL_DIR = "assets/uvigu-shapes"
# Ends the generated report. Notes written below it (what a run showed, what was tried) are kept
# when `write_report` writes the report again; everything above it is replaced.
NOTES_MARKER = "<!-- uvigu eval: the generated report ends here; what follows is kept when it is written again -->"
JOURNAL_NAME = "results.partial.jsonl"  # beside results.jsonl while a run is under way
ProgressCallback = Callable[[int, int], None]


@dataclass(frozen=True)
class Target:
    """A target of issue 3: `metric` on `set_name` at least `threshold`."""

    metric: str
    set_name: str
    threshold: float


TARGETS: tuple[Target, ...] = (
    Target("caption", "main", 0.95),
    Target("caption", "heldout", 0.85),
    Target("generation", "main", 0.90),
    Target("generation", "heldout", 0.75),
    Target("round_trip", "main", 0.85),
    Target("edit", "main", 0.80),
)


def journal_fields(config: EvalConfig) -> dict[str, int]:
    """What of ``config`` a clip's record depends on, for ``run_key``: the seeds (not how many
    clips, so a run with more clips also goes on from a shorter one's)."""
    return {"main_seed_start": config.main_seed_start, "heldout_seed_start": config.heldout_seed_start,
            "main_pipeline_seed": config.main_pipeline_seed, "heldout_pipeline_seed": config.heldout_pipeline_seed}


# ---------------------------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------------------------


def evaluate(
    pipe,
    config: EvalConfig = EvalConfig(),
    *,
    strips_dir: str | Path | None = None,
    progress: ProgressCallback | None = None,
    journal: RunJournal | None = None,
) -> list[dict]:
    """Evaluate `pipe` on both sets; one record per clip, main set first.

    The first `config.num_examples` clips of each set are written as PNG strips to `strips_dir`
    (named '<set>-<index>-<kind>.png'). `progress(done, total)` is called after every clip. With a
    `journal` (of `run_key(pipe, journal_fields(config))`), each record is kept there as it is made,
    and the records an interrupted run left there are taken instead of being made again.
    """
    shapes = clip_config(pipe)
    total = config.num_clips + config.num_heldout
    scale = max(1, 128 // shapes.size)
    records: list[dict] = []
    made = 0  # clips evaluated here, not taken from the journal: what the time left is reckoned by
    start = time.perf_counter()
    logger.info("evaluating %d main + %d held-out clips (%d px, %d frames)", config.num_clips, config.num_heldout, shapes.size, shapes.num_frames)
    if journal is not None and journal.done:
        carried = sum((s, i) in journal.done for s in SETS for i in range(config.count(s)))
        logger.info("continuing an interrupted run: %d clips done, kept in %s", carried, journal.path)
    for set_name in SETS:
        for index in range(config.count(set_name)):
            strips = None
            if strips_dir is not None and index < config.num_examples:
                strips = {k: Path(strips_dir) / f"{set_name}-{index:03d}-{k}.png" for k in STRIP_KINDS}
            kept = journal.done.get((set_name, index)) if journal is not None else None
            if kept is not None and journal.files_intact((set_name, index), (strips or {}).values()):
                records.append(kept)
            else:
                example = eval_example(config, set_name, index, shapes)
                records.append(evaluate_clip(
                    pipe, example, set_name=set_name, index=index, seed=config.pipeline_seed(set_name, index),
                    shapes_seed=config.shapes_seed(set_name, index), strip_paths=strips, strip_scale=scale,
                ))
                made += 1
                if journal is not None:
                    journal.add(records[-1], files=(strips or {}).values())
            done = len(records)
            if made and (done % config.log_every == 0 or done == total):
                elapsed = time.perf_counter() - start
                logger.info(
                    "%d/%d clips, %.0f s elapsed, %.1f s per clip, about %.0f s left",
                    done, total, elapsed, elapsed / made, elapsed / made * (total - done),
                )
            if progress is not None:
                progress(done, total)
    return records


def write_results(records: Sequence[dict], path: str | Path) -> Path:
    """One JSON record per line."""
    return write_text(path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in records))


def write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` (its folder made if need be) whole or not at all: through a
    temporary file beside it, moved into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return path


def read_results(path: str | Path) -> list[dict]:
    """The records written by `write_results`."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


# ---------------------------------------------------------------------------------------------
# Summary
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Score:
    """A rate `hits / count`, or a plain value (a corpus metric) over `count` items."""

    value: float | None
    count: int
    hits: int | None = None

    def text(self) -> str:
        if self.value is None:
            return "—"
        if self.hits is None:
            return f"{self.value:.3f} (n={self.count})"
        return f"{self.value:.3f} ({self.hits}/{self.count})"


def _rate(flags: Sequence[bool]) -> Score:
    hits = sum(bool(f) for f in flags)
    return Score(hits / len(flags) if flags else None, len(flags), hits)


@dataclass(frozen=True)
class Row:
    """One metric on the main set and on the held-out pairs."""

    key: str
    label: str
    main: Score
    heldout: Score
    group: str  # 'targets' | 'caption' | 'edit' | 'joint' | 'reference'


@dataclass(frozen=True)
class Summary:
    rows: list[Row]
    seconds: dict[str, float]  # median seconds per clip of each pipeline call, and 'clip' (all of them)
    num_clips: dict[str, int]  # per set

    def row(self, key: str) -> Row:
        return next(r for r in self.rows if r.key == key)

    def target_status(self, target: Target) -> bool | None:
        """Whether `target` is met (None: nothing measured)."""
        row = self.row(target.metric)
        score = row.main if target.set_name == "main" else row.heldout
        return None if score.value is None else score.value >= target.threshold


def _objects(records: Sequence[dict], set_name: str) -> list[dict]:
    """Objects scored in a column: every object of the main set; held-out-pair objects of the held-out set."""
    objs = [o for r in records if r["set"] == set_name for o in r["objects"]]
    return objs if set_name == "main" else [o for o in objs if o["heldout_pair"]]


def edit_records(record: dict) -> dict[str, dict | None]:
    """A clip's two scored edits: ``keep_rest`` (given the caption before the change too, as the
    studio edits by default) and ``plain`` (the edited caption alone). Records written before both
    were scored hold one plain edit under ``edit``; their ``keep_rest`` is None."""
    edit = record.get("edit")
    if edit is not None and not edit.get("with_source", False):
        return {"keep_rest": None, "plain": edit}
    return {"keep_rest": edit, "plain": record.get("edit_plain")}


def _background_as_named(record: dict) -> bool | None:
    """Whether the analyzer finds the background the clip's prompt names in the clip generated from
    it; None when the prompt names none, or the record is older than the field."""
    named = parse_prompt(record["prompt"]).background
    if named is None or "generation_background" not in record:
        return None
    return record["generation_background"] == named


def _drew_unasked(record: dict) -> bool | None:
    """Whether the analyzer finds more objects in the clip generated from the record's prompt than
    its scene has: an object drawn that the prompt did not ask for, which generation object accuracy
    does not count against the clip."""
    return len(record["generation_found"]) > len(record["objects"]) if "generation_found" in record else None


def generation_partners(record: dict) -> list[dict | None] | None:
    """Per prompted object of ``record``, what the analyzer found in the clip generated from its
    prompt that pairs with it — in the one-to-one pairing under which most of colour, shape and
    motion agree (`best_pairing`) — or None where nothing does; None for a record older than
    ``generation_found``."""
    if "generation_found" not in record:
        return None
    found = record["generation_found"]
    asked = [ObjectMention(o["color"], o["shape"], motion=o["motion"]) for o in record["objects"]]
    partner = best_pairing(asked, [ObjectMention(**f) for f in found], CORE_FIELDS)
    return [found[j] if j >= 0 else None for j in partner]


def _with_generation_fields(record: dict) -> dict:
    """``record`` with ``generation_<field>`` on each object: whether its partner in the generated
    clip (`generation_partners`) has its colour, shape, motion (None when not measured)."""
    partners = generation_partners(record)
    objects = [{**o, **{f"generation_{f}": None if partners is None else p is not None and p[f] == o[f]
                        for f in CORE_FIELDS}}
               for o, p in zip(record["objects"], partners or [None] * len(record["objects"]))]
    return {**record, "objects": objects}


def shapes_as_generated(records: Sequence[dict], set_name: str = "main") -> dict[str, dict[str | None, int]]:
    """Per shape a prompt asked for (the objects of ``set_name``'s column), how often its partner in
    the generated clip (`generation_partners`) came out as each shape, None: no partner."""
    table: dict[str, dict[str | None, int]] = {shape: dict.fromkeys((*SHAPES, None), 0) for shape in SHAPES}
    for r in records:
        if r["set"] != set_name or (partners := generation_partners(r)) is None:
            continue
        for o, p in zip(r["objects"], partners):
            if set_name == "main" or o["heldout_pair"]:
                table[o["shape"]][None if p is None else p["shape"]] += 1
    return table


def summarize(records: Sequence[dict]) -> Summary:
    """The report's numbers, from the per-clip records alone."""
    records = [_with_generation_fields(r) for r in records]
    by_set = {s: [r for r in records if r["set"] == s] for s in SETS}
    objects = {s: _objects(records, s) for s in SETS}
    rows: list[Row] = []

    def object_row(key: str, label: str, field_name: str, group: str,
                   clips: Callable[[dict], bool] | None = None, asked: Callable[[dict], bool] | None = None) -> None:
        scored = objects if clips is None else {s: _objects([r for r in records if clips(r)], s) for s in SETS}
        scores = [_rate([o[field_name] for o in scored[s] if o[field_name] is not None and (asked is None or asked(o))])
                  for s in SETS]
        rows.append(Row(key, label, *scores, group))

    def clip_row(key: str, label: str, pick: Callable[[dict], bool | None], group: str) -> None:
        scores = []
        for s in SETS:
            flags = [pick(r) for r in by_set[s]]
            scores.append(_rate([f for f in flags if f is not None]))
        rows.append(Row(key, label, *scores, group))

    def corpus_row(key: str, label: str, metric: Callable, group: str) -> None:
        scores = []
        for s in SETS:
            clips = by_set[s]
            value = metric([r["caption"] for r in clips], [[r["reference"]] for r in clips]) if clips else None
            scores.append(Score(value, len(clips)))
        rows.append(Row(key, label, *scores, group))

    def edit_flag(name: str, attribute: str | None = None, kind: str = "keep_rest") -> Callable[[dict], bool | None]:
        def pick(r: dict) -> bool | None:
            e = edit_records(r)[kind]
            if e is None or (attribute is not None and e["attribute"] != attribute):
                return None
            return e[name]
        return pick

    object_row("caption", "caption object accuracy (colour, shape, motion)", "caption", "targets")
    object_row("generation", "generation object accuracy (analyzer)", "generation", "targets")
    object_row("round_trip", "round trip (caption of the generated clip)", "round_trip", "targets")
    clip_row("edit", "edit success (keeping the rest, as the studio edits)", edit_flag("success"), "targets")
    for f in CORE_FIELDS:
        object_row(f"caption_{f}", f"caption {f} accuracy", f"caption_{f}", "caption")
    corpus_row("bleu4", "caption BLEU-4", bleu4, "caption")
    corpus_row("cider_d", "caption CIDEr-D", cider_d, "caption")
    for attribute in ATTRIBUTES:
        clip_row(f"edit_{attribute}", f"edit success, {attribute} edits", edit_flag("success", attribute), "edit")
    for key, label, many in (("edit_one_object", "clips of one object", False),
                             ("edit_objects", "clips of two or more objects", True)):
        clip_row(key, f"edit success, {label}",
                 lambda r, many=many: edit_flag("success")(r) if (len(r["objects"]) > 1) == many else None, "edit")
    clip_row("edit_changed", "edit: the changed object shows as edited", edit_flag("changed"), "edit")
    clip_row("edit_kept", "edit: the other objects are kept", edit_flag("kept"), "edit")
    clip_row("edit_stale", "edit: the old version is still seen (lower is better)", edit_flag("stale"), "edit")
    clip_row("edit_plain", "plain edit (the edited caption alone): success", edit_flag("success", kind="plain"), "edit")
    clip_row("edit_plain_changed", "plain edit: the changed object shows as edited", edit_flag("changed", kind="plain"),
             "edit")
    clip_row("edit_plain_kept", "plain edit: the other objects are kept", edit_flag("kept", kind="plain"), "edit")
    clip_row("edit_plain_stale", "plain edit: the old version is still seen (lower is better)",
             edit_flag("stale", kind="plain"), "edit")
    clip_row("generation_background", "generation: the background the prompt names (clips whose prompt names one)",
             _background_as_named, "joint")
    clip_row("generation_unasked", "generation: clips with an object not asked for (lower is better)",
             _drew_unasked, "joint")
    for key, label, one_way in (("generation_one_way", "one way", True),
                                ("generation_different_ways", "different ways", False)):
        object_row(key, f"generation: objects of prompts whose objects go {label}", "generation", "joint",
                   lambda r, one_way=one_way: goes_one_way(r["prompt"]) == one_way)
    for f in CORE_FIELDS:
        object_row(f"generation_{f}", f"generation {f} accuracy (the object paired with it)", f"generation_{f}",
                   "joint")
    for shape in SHAPES:
        object_row(f"generation_{shape}", f"generation: objects asked for as a {shape}", "generation", "joint",
                   asked=lambda o, shape=shape: o["shape"] == shape)
    object_row("joint_generation", "joint: generation object accuracy", "joint_generation", "joint")
    object_row("joint_caption", "joint: its caption names the prompted object", "joint_caption", "joint")
    object_row("analyzer_reference", "analyzer on the reference clips", "analyzer_reference", "reference")
    object_row("analyzer_codec", "analyzer on the reference clips through the codec (ceiling of generation)",
               "analyzer_codec", "reference")

    names = sorted({k for r in records for k in r["seconds"]})
    seconds = {k: statistics.median(r["seconds"][k] for r in records if k in r["seconds"]) for k in names}
    if records:
        seconds["clip"] = statistics.median(sum(r["seconds"].values()) for r in records)
    return Summary(rows, seconds, {s: len(by_set[s]) for s in SETS})


# ---------------------------------------------------------------------------------------------
# Markdown
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunInfo:
    """How the report was made."""

    command: str  # the command line that made it
    model: str  # the model directory as the user named it, or a description
    date: str  # ISO date (UTC)
    elapsed_s: float  # wall time of the whole evaluation
    settings: dict[str, object] = field(default_factory=dict)  # the pipeline's default settings
    config: EvalConfig = EvalConfig()


def pipeline_settings(pipe) -> dict[str, object]:
    """The default settings the evaluation ran at (read from the pipeline's config)."""
    config = getattr(pipe, "config", {}) or {}
    keys = ("num_inference_steps", "guidance_scale", "caption_steps", "caption_reread", "caption_reread_period",
            "caption_reread_threshold", "caption_verify_weight", "caption_verify_max_texts", "caption_verify_draws",
            "num_frames", "height", "width")
    settings = {k: config[k] for k in keys if k in config}
    # The evaluation's edits give no strength or guidance: each kind of edit runs at its defaults.
    if hasattr(pipe, "default_flow_edit_strength"):
        settings["keep-the-rest edit strength"] = pipe.default_flow_edit_strength
    if hasattr(pipe, "default_flow_edit_guidance"):
        settings["keep-the-rest edit guidance"] = pipe.default_flow_edit_guidance
    if hasattr(pipe, "default_edit_strength"):
        settings["plain edit strength"] = pipe.default_edit_strength
    if (expert := getattr(pipe, "high_noise_expert", None)) is not None:
        settings["high-noise expert from σ"] = expert[1]
    if config.get("read_guidance"):  # generate's levers that are off unless the model sets them
        settings.update(read_guidance=config["read_guidance"], read_guidance_from=config["read_guidance_from"])
    if config.get("motion_noise"):
        settings.update(motion_noise=config["motion_noise"], motion_noise_speed=config["motion_noise_speed"])
        if config.get("motion_noise_paths"):  # objects going different ways: along each path a draft shows
            settings.update(motion_noise_paths=config["motion_noise_paths"])
        if config.get("object_guidance"):  # ... and each path guided by its object's own prompt
            settings.update(object_guidance=config["object_guidance"], object_guidance_to=config["object_guidance_to"])
        if config.get("motion_noise_paths") or config.get("object_guidance"):
            settings.update(motion_noise_draft=config["motion_noise_draft"])
    return settings


def _target_cells(summary: Summary, key: str) -> tuple[str, str]:
    targets = [t for t in TARGETS if t.metric == key]
    if not targets:
        return "", ""
    wanted, status = [], []
    for t in targets:
        column = "main" if t.set_name == "main" else "held-out"
        wanted.append(f"{column} ≥ {t.threshold:.2f}")
        met = summary.target_status(t)
        status.append(f"{column}: " + ("not measured" if met is None else "met" if met else "**not met**"))
    return "; ".join(wanted), "; ".join(status)


def _seed_text(seed: int) -> str:
    if seed < 2**64:
        return str(seed)
    rest = seed - 2**64
    return "2^64" + (" + 2^32" if rest == 2**32 else f" + {rest}" if rest else "")


def _table(summary: Summary, group: str, with_targets: bool) -> list[str]:
    head = "| metric | main set | held-out pairs |" + (" target | status |" if with_targets else "")
    rule = "|---|---|---|" + ("---|---|" if with_targets else "")
    lines = [head, rule]
    for row in summary.rows:
        if row.group != group:
            continue
        cells = [row.label, row.main.text(), row.heldout.text()]
        if with_targets:
            cells += list(_target_cells(summary, row.key))
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _shapes_table(records: Sequence[dict]) -> list[str]:
    """`shapes_as_generated` of both columns as markdown: a row per set and shape asked for (that
    set has objects of), a column per shape drawn."""
    lines = ["| set | asked for, drawn as | " + " | ".join(SHAPES) + " | nothing paired |",
             "|---|---|" + "---:|" * (len(SHAPES) + 1)]
    for set_name, label in (("main", "main"), ("heldout", "held-out pairs")):
        for shape, drawn in shapes_as_generated(records, set_name).items():
            if any(drawn.values()):
                lines.append(f"| {label} | {shape} | " + " | ".join(str(n) for n in drawn.values()) + " |")
    return lines


def _example_lines(records: Sequence[dict], strips_link: str) -> list[str]:
    lines = []
    for r in records:
        if not r["strips"]:
            continue
        title = "main set" if r["set"] == "main" else "held-out set"
        lines += [f"### {title}, clip {r['index']}", ""]
        lines.append(f"* prompt: `{r['prompt']}`")
        lines.append(f"* reference caption: `{r['reference']}`")
        lines.append(f"* model's caption of the reference clip: `{r['caption']}`")
        lines.append(f"* model's caption of the generated clip: `{r['round_trip_caption']}`")
        edits = edit_records(r)
        for kind, e in edits.items():
            if e is not None:
                how = "keeping the rest" if kind == "keep_rest" else "plain"
                verdict = "success" if e["success"] else "failed"
                lines.append(f"* edit, {how} ({e['attribute']} {e['old']} → {e['new']}, {verdict}): "
                             f"`{e['edited_caption']}`")
        lines.append(f"* joint caption: `{r['joint_caption']}`")
        lines.append("")
        edited_label = "edited reference clip" + (", keeping the rest" if edits["keep_rest"] is not None else "")
        labels = {"reference": "reference clip", "generated": "generated from the prompt", "edited": edited_label,
                  "joint": "joint generation"}
        for kind, label in labels.items():
            if kind in r["strips"]:
                lines.append(f"{label}:  ")
                lines.append(f"![{label}]({strips_link}/{r['strips'][kind]})")
                lines.append("")
    return lines


def render_markdown(
    records: Sequence[dict], info: RunInfo, strips_link: str = "eval", notes: str | None = None, kept: str = ""
) -> str:
    """The whole `docs/EVAL.md`; `strips_link` is the strips folder relative to the report, `notes`
    a section of the report, `kept` the text that goes below its end marker (see `kept_text`)."""
    summary = summarize(records)
    c = info.config
    settings = ", ".join(f"{k} {v}" for k, v in info.settings.items()) or "the pipeline's defaults"
    per_clip = info.elapsed_s / max(1, len(records))
    missed = [t for t in TARGETS if summary.target_status(t) is False]
    lines = [
        "# Evaluation report",
        "",
        f"Made by `{info.command}` on {info.date}, model `{info.model}`.",
        f"{summary.num_clips['main']} main-set clips and {summary.num_clips['heldout']} held-out-set clips in "
        f"{info.elapsed_s / 60:.1f} min ({per_clip:.1f} s per clip for all five tasks); pipeline defaults: {settings}.",
        "",
        "## Targets",
        "",
        *_table(summary, "targets", with_targets=True),
        "",
        "Targets not met: " + (", ".join(f"{t.metric} ({'main' if t.set_name == 'main' else 'held-out'})" for t in missed) if missed else "none") + ".",
        "",
        "Object-level rows count objects: in the main-set column every object of the main set, in the "
        "held-out column the objects with a held-out colour–shape pair (purple triangle, orange square, "
        "green diamond) in the held-out set. Clip-level rows (edit, BLEU-4, CIDEr-D) count the clips of each set. "
        "An object is right when colour, shape and motion all agree (one-to-one matching).",
        "",
        "## Captions",
        "",
        *_table(summary, "caption", with_targets=False),
        "",
        "BLEU-4 and CIDEr-D: the model's captions of the reference clips against the one reference "
        "caption per clip (corpus scores over each set).",
        "",
        "## Edits",
        "",
        *_table(summary, "edit", with_targets=False),
        "",
        "Each clip's reference caption gets one attribute of one object changed (colour, shape, motion in "
        "turn, by clip index; position, size, speed and the other objects unchanged; on the main set no "
        "edit creates a held-out pair) and the reference clip is edited with it twice, at each kind of "
        "edit's default settings: keeping the rest, as the studio edits by default (the caption before the "
        "change goes too, as `pipe.edit`'s `source_prompt`; the rows without a prefix and the target), and "
        "plain, given the edited caption alone (`uvigu edit` without `--source-prompt`). "
        "Success: the analyzer sees the edited object with its new attributes, every other object kept, "
        "and no longer the old version of the edited object.",
        "",
        "## Generation, joint generation and the analyzer",
        "",
        *_table(summary, "joint", with_targets=False),
        *_table(summary, "reference", with_targets=False)[2:],
        "",
        "Colour, shape and motion accuracy pair each prompted object with one object the analyzer found in "
        "the generated clip, one to one, so that the most of those three agree; the shape a prompted object "
        "came out as, by the same pairing (objects as the columns above count them):",
        "",
        *_shapes_table(records),
        "",
        "## Time",
        "",
        "| call | median seconds |",
        "|---|---|",
        *[f"| {k} | {v:.2f} |" for k, v in summary.seconds.items()],
        "",
        "## The clip sets",
        "",
        f"Main set: Shapes clips of the training split with seeds {_seed_text(c.main_seed_start)} + i (i < {c.num_clips}); "
        f"held-out set: clips of the held-out split with seeds {_seed_text(c.heldout_seed_start)} + i (i < {c.num_heldout}). "
        "Training item i draws its scene from a 64-bit hash of (training seed, i), always below 2^64, "
        "so no evaluation clip shares a seed with a training item; held-out scenes also carry pairs the "
        "training split never contains. Pipeline calls of clip i use seed "
        f"{c.main_pipeline_seed} + i (main) or {c.heldout_pipeline_seed} + i (held-out). Per-clip results: `{strips_link}/results.jsonl` "
        "(`uvigu.eval.report.read_results` and `summarize` recompute these tables from it).",
        "",
    ]
    if notes:
        lines += ["## Notes", "", notes.strip(), ""]
    examples = _example_lines(records, strips_link)
    if examples:
        lines += ["## Examples", "", *examples]
    report = "\n".join(lines).rstrip() + "\n\n" + NOTES_MARKER + "\n"
    return report + ("\n" + kept.strip("\n") + "\n" if kept.strip() else "")


def kept_text(path: str | Path) -> str:
    """What a report at ``path`` holds below its end marker: the notes a new report keeps ("" when
    there is no report or nothing below the marker). A report without the marker (written before
    it, or edited) cannot tell its notes from its tables, so it is copied to ``<name>.bak`` before
    it is replaced, and nothing is kept from it."""
    path = Path(path)
    if not path.exists():
        return ""
    text = path.read_text(encoding="utf-8")
    if NOTES_MARKER in text:
        return text.split(NOTES_MARKER, 1)[1].strip("\n")
    backup = path.with_name(path.name + ".bak")
    shutil.copyfile(path, backup)
    logger.warning("%s has no end-of-report marker, so its notes cannot be told apart: copied to %s", path, backup)
    return ""


@dataclass(frozen=True)
class EvalReport:
    """What `write_report` wrote."""

    summary: Summary
    report_path: Path
    results_path: Path
    elapsed_s: float
    kept_lines: int = 0  # lines of notes kept from the report it replaced, below the end marker


def write_report(
    pipe,
    out: str | Path = "docs/EVAL.md",
    config: EvalConfig = EvalConfig(),
    *,
    command: str = "uvigu eval",
    model: str = DEFAULT_MODEL_DIR,
    notes: str | None = None,
    progress: ProgressCallback | None = None,
) -> EvalReport:
    """Evaluate `pipe` and write the report to `out`, the strips and `results.jsonl` to `<out dir>/eval/`.
    The notes below the end marker of a report already at `out` are kept (`kept_text`). While it runs,
    each clip's record is kept in `<out dir>/eval/results.partial.jsonl` (`RunJournal`): started
    again after an interruption, with the same model, settings and seeds, it goes on from there."""
    out = Path(out)
    strips_dir = out.parent / "eval"
    # An interrupted run of the same model, settings and clips goes on from where it stopped.
    with RunJournal(strips_dir / JOURNAL_NAME, run_key(pipe, journal_fields(config))) as journal:
        records = evaluate(pipe, config, strips_dir=strips_dir, progress=progress, journal=journal)
        elapsed = journal.elapsed_s()
        results = write_results(records, strips_dir / "results.jsonl")
        info = RunInfo(
            command=command,
            model=model,
            date=datetime.now(timezone.utc).date().isoformat(),
            elapsed_s=elapsed,
            settings=pipeline_settings(pipe),
            config=config,
        )
        kept = kept_text(out)  # read once the run is done: notes edited while it ran are kept too
        write_text(out, render_markdown(records, info, strips_link="eval", notes=notes, kept=kept))
        journal.finish()
    logger.info("wrote %s and %s in %.0f s", out, results, elapsed)
    return EvalReport(summarize(records), out, results, elapsed, len(kept.splitlines()))


__all__ = [
    "DEFAULT_MODEL_DIR", "EvalReport", "Row", "RunInfo", "Score", "Summary", "TARGETS", "Target",
    "edit_records", "evaluate", "generation_partners", "pipeline_settings", "read_results",
    "render_markdown", "shapes_as_generated", "summarize", "write_report", "write_results", "write_text",
]
