"""The five evaluation tasks on one Shapes clip, scored (DESIGN §5; `uvigu.eval.report` runs them).

Through the pipeline's public methods at their default settings, with one fixed seed per clip:
1. caption: caption the reference clip; per object, colour, shape and motion all named
   (one-to-one matching against the scene), also per field (`align_fields`);
2. generation: generate from the prompt; the analyzer finds each prompted object with its
   colour, shape and motion;
3. round trip: the caption of the generated clip names each prompted object;
4. edit: change one attribute of one object in the reference caption (`uvigu.eval.edits`) and edit
   the reference clip with it; success = the changed object is seen as edited, every other object
   is kept, and the old version of the edited object is gone. Scored twice: as the studio edits by
   default (*Keep the rest*: the caption before the change goes too, as ``source_prompt``;
   ``edit``) and as a plain edit given only the edited caption (``edit_plain``);
5. joint: `generate_with_caption`; generation accuracy and whether its caption names the objects.
The analyzer's accuracy on the reference clip itself, and on the clip passed through the pipeline's
codec (encoded and decoded), is recorded beside them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from uvigu.data.shapes import HELD_OUT_PAIRS, ShapesExample, scene_caption
from uvigu.eval.analyzer import analyze_clip, match_objects
from uvigu.eval.edits import ATTRIBUTES, edit_scene
from uvigu.eval.grammar import ObjectMention, best_pairing, parse_caption, scene_mentions
from uvigu.videoio import write_strip_png

logger = logging.getLogger(__name__)

CORE_FIELDS = ("color", "shape", "motion")
STRIP_KINDS = ("reference", "generated", "edited", "joint")
# An edit's text before the change: 0 none (plain), 1 the reference caption, 2 the model's caption of the clip.
WITH_SOURCE = (0, 1, 2)


def align_fields(expected: Sequence[ObjectMention], found: Sequence, fields: Sequence[str] = CORE_FIELDS) -> dict[str, list[bool]]:
    """Per field, per expected object: whether its partner in the best one-to-one pairing agrees.

    The pairing (`best_pairing`) maximises the number of agreeing fields over all pairs (a text
    that swaps two objects' shapes is scored on shape, not on colour). Unpaired expected objects
    agree on nothing.
    """
    found = list(found)  # best_pairing pairs among its first MAX_PAIRED, by their indices here
    partner = best_pairing(expected, found, fields)
    return {
        f: [j >= 0 and getattr(e, f) == getattr(found[j], f, None) for e, j in zip(expected, partner)] for f in fields
    }


def _mentions_json(mentions: Sequence) -> list[dict]:
    keys = ("color", "shape", "size", "motion", "speed", "region")
    return [{k: getattr(m, k, None) for k in keys} for m in mentions]


def _timed(fn: Callable[[], object], timings: dict[str, float], name: str):
    start = time.perf_counter()
    out = fn()
    timings[name] = round(time.perf_counter() - start, 4)
    return out


def evaluate_clip(
    pipe,
    example: ShapesExample,
    *,
    set_name: str,
    index: int,
    seed: int,
    shapes_seed: int,
    strip_paths: dict[str, Path] | None = None,
    strip_scale: int = 1,
) -> dict:
    """Run the five tasks on one clip and score them; a JSON-ready record (see module doc).

    `strip_paths` maps 'reference' | 'generated' | 'edited' | 'joint' to PNG paths to write the
    clips to (image strips of 8 frames).
    """
    scene = example.scene
    truth = scene_mentions(scene)
    timings: dict[str, float] = {}

    reference_caption = _timed(lambda: pipe.caption(example.frames, seed=seed).text, timings, "caption")
    parsed = parse_caption(reference_caption).objects
    caption_ok = match_objects(truth, parsed, CORE_FIELDS)
    caption_fields = align_fields(truth, parsed)

    generated = _timed(lambda: pipe.generate(example.prompt, seed=seed).frames, timings, "generate")
    generated_analysis = analyze_clip(generated)
    generation_found = generated_analysis.objects
    generation_ok = match_objects(truth, generation_found, CORE_FIELDS)

    round_trip_caption = _timed(lambda: pipe.caption(generated, seed=seed).text, timings, "caption_generated")
    round_trip_ok = match_objects(truth, parse_caption(round_trip_caption).objects, CORE_FIELDS)

    edit_record, edited = _edit(pipe, example, index=index, set_name=set_name, seed=seed, timings=timings,
                                with_source=1)
    plain_edit_record, _ = _edit(pipe, example, index=index, set_name=set_name, seed=seed, timings=timings,
                                 timing="edit_plain")

    joint = _timed(lambda: pipe.generate_with_caption(example.prompt, seed=seed), timings, "joint")
    joint_generation_ok = match_objects(truth, analyze_clip(joint.frames).objects, CORE_FIELDS)
    joint_caption_ok = match_objects(truth, parse_caption(joint.caption or "").objects, CORE_FIELDS)

    reference_ok = match_objects(truth, analyze_clip(example.frames).objects, CORE_FIELDS)
    # What the codec keeps of the clip bounds what the transformer can draw through it.
    reconstructed = pipe.codec.decode(pipe.codec.encode(torch.from_numpy(example.frames)[None]))[0].numpy()
    codec_ok = match_objects(truth, analyze_clip(reconstructed).objects, CORE_FIELDS)

    objects = []
    for i, obj in enumerate(scene.objects):
        objects.append({
            "color": obj.color, "shape": obj.shape, "motion": obj.motion,
            "heldout_pair": (obj.color, obj.shape) in HELD_OUT_PAIRS,
            "caption": caption_ok[i],
            **{f"caption_{f}": caption_fields[f][i] for f in CORE_FIELDS},
            "generation": generation_ok[i],
            "round_trip": round_trip_ok[i],
            "joint_generation": joint_generation_ok[i],
            "joint_caption": joint_caption_ok[i],
            "analyzer_reference": reference_ok[i],
            "analyzer_codec": codec_ok[i],
        })

    if strip_paths:
        clips = {"reference": example.frames, "generated": generated, "edited": edited, "joint": joint.frames}
        for kind, path in strip_paths.items():
            if clips.get(kind) is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
                write_strip_png(clips[kind], path, num=8, scale=strip_scale)

    return {
        "set": set_name,
        "index": index,
        "shapes_seed": shapes_seed,
        "pipeline_seed": seed,
        "prompt": example.prompt,
        "reference": example.caption,
        "background": scene.background,
        "caption": reference_caption,
        "caption_objects": _mentions_json(parsed),
        "generation_found": _mentions_json(generation_found),
        "generation_background": generated_analysis.background,
        "round_trip_caption": round_trip_caption,
        "edit": edit_record,
        "edit_plain": plain_edit_record,
        "joint_caption": joint.caption,
        "objects": objects,
        "seconds": timings,
        "strips": {kind: path.name for kind, path in (strip_paths or {}).items()},
    }


def _edit(pipe, example: ShapesExample, *, index: int, set_name: str, seed: int, timings: dict,
          with_source: int = 0, timing: str = "edit", **edit_kwargs) -> tuple[dict | None, np.ndarray | None]:
    """Edit one attribute of one object of the clip's caption (by clip index), regenerate from the
    clip (``edit_kwargs`` go to ``pipe.edit``; ``with_source`` 1: the reference caption before the
    change goes too, as its ``source_prompt``; 2: the model's own caption of the clip does, as in the
    studio, captioned within the timing) and score it, timed in ``timings[timing]``; ``(None, None)``
    when the scene has no valid edit of that attribute."""
    attribute = ATTRIBUTES[index % len(ATTRIBUTES)]
    rng = np.random.default_rng([seed, index])
    change = edit_scene(example.scene, attribute, rng, allow_heldout=set_name == "heldout")
    if change is None:
        logger.warning("%s clip %d: no valid %s edit of its scene; edit not scored", set_name, index, attribute)
        return None, None
    text = scene_caption(change.edited)
    if with_source not in WITH_SOURCE:
        raise ValueError(f"with_source is 0, 1 or 2, got {with_source!r}.")

    def run() -> np.ndarray:
        if with_source == 2:
            edit_kwargs["source_prompt"] = pipe.caption(example.frames, seed=seed).text
        elif with_source == 1:
            edit_kwargs["source_prompt"] = scene_caption(change.scene)
        return pipe.edit(example.frames, text, seed=seed, **edit_kwargs).frames

    frames = _timed(run, timings, timing)
    found = analyze_clip(frames).objects
    ok = match_objects(scene_mentions(change.edited), found, CORE_FIELDS)
    old = scene_mentions(change.scene)[change.object_index]
    changed = ok[change.object_index]
    kept = all(v for i, v in enumerate(ok) if i != change.object_index)
    stale = match_objects([old], found, CORE_FIELDS)[0]
    record = {
        "attribute": attribute,
        "object": change.object_index,
        "old": change.old,
        "new": change.new,
        "edited_caption": text,
        "with_source": bool(with_source),
        "found": _mentions_json(found),
        "changed": changed,
        "kept": kept,
        "stale": stale,
        "success": changed and kept and not stale,
        "heldout_pair": any((o.color, o.shape) in HELD_OUT_PAIRS for o in change.edited.objects),
    }
    return record, frames


def score_edit(pipe, example: ShapesExample, *, index: int, set_name: str, seed: int, with_source: int = 0,
               **edit_kwargs) -> dict | None:
    """The evaluation's edit of clip ``index`` with ``edit_kwargs`` for ``pipe.edit`` (and, with
    ``with_source`` 1, the reference caption before the change as its ``source_prompt``; 2, the
    model's own caption of the clip): its record
    (``success``, ``changed``, ``kept``, ``stale``, ...), or None when the scene has no valid edit."""
    return _edit(pipe, example, index=index, set_name=set_name, seed=seed, timings={}, with_source=with_source,
                 **edit_kwargs)[0]


__all__ = ["CORE_FIELDS", "STRIP_KINDS", "WITH_SOURCE", "align_fields", "evaluate_clip", "score_edit"]
