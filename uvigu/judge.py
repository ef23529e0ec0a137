"""How well a take's caption agrees with the prompt it was made from: the judge of best-of-N generation.

``pipe.generate(prompt, best_of=N)`` makes N takes from N seeds, captions each with the same
network, and keeps the take whose caption agrees best with the prompt — the model's understanding
checks its own generation. A judge reads two texts only, never the pixels, so the rule-based
analyzer the evaluation scores clips with stays independent of the choice (docs/EVAL.md).

A judge maps (prompt, caption) to a score from 0 to 1; higher agrees more, and a tie goes to the
earlier take. Two are built in, named by the pipeline's ``take_judge`` setting:

* ``"words"`` — the share of the prompt's distinct words that the caption also uses. It knows no
  grammar, so it suits any model; it cannot tell which object a word belongs to, and in the Shapes
  world "left" is both a direction ("moving left") and a place ("near the left").
* ``"shapes"`` — the Shapes world's grammar (DESIGN §4; `uvigu.eval.grammar`): each object of the
  prompt paired with one of the caption's, scored on colour, shape and motion, a fully right object
  weighing more than right fields spread over several, and the background, when the prompt names
  one, weighing as one field. A prompt the grammar names no object in is
  scored as ``"words"`` does. The shipped Shapes model uses this one (its ``model_index.json``).

The same reading of a prompt serves generation: `prompt_words` (read guidance), `prompt_motions` and
`object_places` (moving noise, object guidance), and edits: `edit_places`. Those two alone look at
pixels — a draft's, or the clip being edited, to find where each asked colour sits — by a colour
rule of their own, not the analyzer, and score nothing.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

TakeJudge = Callable[[str, str], float]

_WORD = re.compile(r"[a-z0-9]+")
_FIELDS = ("color", "shape", "motion")
_FULL_WEIGHT = 3  # a fully right object adds this beyond its three fields: one beats two half-right ones
_MIN_BLOB = 15.0  # object_places: pixels a frame (at 64) a blob holds on average, or it is no object yet
_PATH_MARGIN = 3.0  # object_places: pixels (at the Shapes world's 64) around an object its moving noise covers


def _words(text: str) -> set[str]:
    return set(_WORD.findall(text.lower()))


def words_judge(prompt: str, caption: str) -> float:
    """The share of the prompt's distinct words the caption uses too (0 for an empty prompt)."""
    asked = _words(prompt)
    return len(asked & _words(caption)) / len(asked) if asked else 0.0


def shapes_judge(prompt: str, caption: str) -> float:
    """The prompt's objects as the caption names them, by the Shapes grammar: per object of the
    prompt, its fields (colour, shape, motion) that agree with its partner in the caption, plus
    ``_FULL_WEIGHT`` when all three do, and one more when the prompt names a background and the
    caption names the same, over the most that could score. A prompt in which the grammar finds no
    object falls back to :func:`words_judge`."""
    from uvigu.eval.analyzer import match_objects
    from uvigu.eval.grammar import parse_caption, parse_prompt
    from uvigu.eval.tasks import align_fields

    prompted = parse_prompt(prompt)
    asked = prompted.objects
    if not asked:
        return words_judge(prompt, caption)
    said = parse_caption(caption)
    named = said.objects
    fields = sum(sum(agree) for agree in align_fields(asked, named, _FIELDS).values())
    full = sum(match_objects(asked, named, _FIELDS))
    background = prompted.background is not None
    score = fields + _FULL_WEIGHT * full + (background and said.background == prompted.background)
    return score / ((len(_FIELDS) + _FULL_WEIGHT) * len(asked) + background)


JUDGES: dict[str, TakeJudge] = {"words": words_judge, "shapes": shapes_judge}


def get_judge(judge: str | TakeJudge) -> TakeJudge:
    """A judge by name (``JUDGES``), or the callable itself."""
    if callable(judge):
        return judge
    if judge not in JUDGES:
        raise ValueError(f"take_judge must be one of {', '.join(JUDGES)} or a callable, got {judge!r}.")
    return JUDGES[judge]


@dataclass(frozen=True)
class Check:
    """One thing a prompt asks for, and what a caption says in its place (``said`` None: nothing)."""

    field: str  # "color", "shape", "motion", "background" (the Shapes grammar) or "word"
    asked: str
    said: str | None

    @property
    def agrees(self) -> bool:
        return self.asked == self.said


@dataclass(frozen=True)
class ReadBack:
    """What a caption says of one thing the prompt asks for: an object of the Shapes grammar
    (``name`` as the prompt words it, e.g. "red circle moving right"), its background ("black
    background", one ``Check`` of field "background"), or the prompt's words (``name`` empty, a
    ``Check`` per distinct word) — or, ``asked`` False, an object the caption names that the prompt
    did not ask for (``name`` worded as a prompt would, no checks), which never agrees."""

    name: str
    checks: tuple[Check, ...]
    found: bool = True  # an object: whether the caption names any object to pair it with
    asked: bool = True

    @property
    def agrees(self) -> bool:
        return self.asked and self.found and all(check.agrees for check in self.checks)

    @property
    def is_background(self) -> bool:
        return any(check.field == "background" for check in self.checks)

    def misses(self) -> list[tuple[str, str]]:
        """(what the caption says, what was asked) for each check that does not agree; what it says
        is "no colour" (shape, motion, word) where it says nothing."""
        return [(c.said or f"no {_FIELD_WORDS[c.field]}", c.asked) for c in self.checks if not c.agrees]


_FIELD_WORDS = {"color": "colour", "shape": "shape", "motion": "motion", "background": "background", "word": "word"}


def read_back_count(read_backs: list[ReadBack]) -> str:
    """How much of what was asked a caption names: "1 of 2 objects as asked", followed, when the
    prompt names a background, by "; background as asked" or "; background not as asked"; or for
    the prompt's words "5 of its 7 words"; "" when nothing was asked."""
    if len(read_backs) == 1 and not read_backs[0].name:
        checks = read_backs[0].checks
        return f"{sum(c.agrees for c in checks)} of its {len(checks)} words" if checks else ""
    if not read_backs:
        return ""
    objects = [item for item in read_backs if item.asked and not item.is_background]
    count = f"{sum(item.agrees for item in objects)} of {len(objects)} object{'s' if len(objects) > 1 else ''} as asked"
    if backgrounds := [item for item in read_backs if item.is_background]:
        count += "; background as asked" if all(item.agrees for item in backgrounds) else "; background not as asked"
    if unasked := sum(not item.asked for item in read_backs):
        count += f"; {unasked} object{'s' if unasked > 1 else ''} not asked for"
    return count


# What the studio and the commands say when the model's caption of its own clip names no object
# (`names_no_object`), before what to try.
NAMES_NO_OBJECT = "the caption names no object, so the clip probably shows none"
# What the studio and the CLI add, for a clip the high-noise expert began, when its caption names no
# object (docs/EVAL.md measures it, in the expert's bullet).
EXPERT_LEAVES_EMPTY = ("the high-noise expert, which draws the background the prompt names, sometimes leaves a clip "
                       "on a black or white background without its objects")


def names_no_object(read_backs: list[ReadBack]) -> bool:
    """Whether the caption names none of the objects asked for, and so none at all (`read_back`
    pairs any object a caption names with one asked for): the clip it describes probably shows none."""
    objects = [item for item in read_backs if item.asked and item.name and not item.is_background]
    return bool(objects) and not any(item.found for item in objects)


def read_back(judge: str, prompt: str, caption: str) -> list[ReadBack]:
    """The prompt's asks, each with what ``caption`` says of it, as the judge named ``judge``
    reads them: for ``"shapes"``, each object of the prompt against its partner in the caption
    (paired as :func:`shapes_judge` pairs them) on the colour, shape and motion the prompt gives;
    then, when the prompt names a background, that background against the caption's; and last each
    object the caption names beyond those (``asked`` False); for ``"words"`` (or a prompt the
    grammar names no object in), the prompt's distinct words."""
    if judge == "shapes":
        from uvigu.data.shapes import PROMPT_MOTION_PHRASES
        from uvigu.eval.grammar import best_pairing, parse_caption, parse_prompt

        parsed = parse_prompt(prompt)
        asked = parsed.objects
        if asked:
            said = parse_caption(caption)
            named = said.objects

            def words(field: str, value: str | None) -> str | None:  # a motion as a prompt words it
                return PROMPT_MOTION_PHRASES[value] if field == "motion" and value else value

            out = []
            pairing = best_pairing(asked, named, _FIELDS)
            for obj, j in zip(asked, pairing):
                partner = named[j] if j >= 0 else None
                checks = tuple(Check(f, words(f, getattr(obj, f)), words(f, getattr(partner, f, None)))
                               for f in _FIELDS if getattr(obj, f) is not None)
                out.append(ReadBack(" ".join(c.asked for c in checks), checks, found=partner is not None))
            if parsed.background:
                out.append(ReadBack(f"{parsed.background} background",
                                    (Check("background", parsed.background, said.background),)))
            for j, obj in enumerate(named):
                if j not in pairing:
                    name = " ".join(w for f in _FIELDS if (w := words(f, getattr(obj, f))) is not None)
                    out.append(ReadBack(name, (), asked=False))
            return out
    said = _words(caption)
    return [ReadBack("", tuple(Check("word", w, w if w in said else None) for w in sorted(_words(prompt))))]


_OPPOSITE = {"left": "right", "right": "left", "up": "down", "down": "up"}


def prompt_words(judge: str, prompt: str) -> tuple[list[str], list[str]]:
    """The words a caption of a clip made from ``prompt`` should use, and those it should not, as
    the judge named ``judge`` reads a caption — what read guidance (``pipe.generate(...,
    read_guidance=)``) pushes the clip towards. ``"shapes"``: each object's colour, shape and
    motion, and the direction opposite to each motion; ``"words"`` (or a prompt the grammar names
    no object in): the prompt's distinct words, none unwanted."""
    if judge == "shapes":
        from uvigu.eval.grammar import parse_prompt

        asked = parse_prompt(prompt).objects
        if asked:
            wanted = [w for o in asked for w in (o.color, o.shape, o.motion) if w]
            unwanted = [_OPPOSITE[o.motion] for o in asked if o.motion in _OPPOSITE]
            return list(dict.fromkeys(wanted)), [w for w in dict.fromkeys(unwanted) if w not in wanted]
    return sorted(_words(prompt)), []


def prompt_motions(judge: str, prompt: str) -> list[str]:
    """How each object of ``prompt`` moves, in order, as the judge named ``judge`` reads a prompt —
    which way the starting noise moves (``pipe.generate(..., motion_noise=)``). ``"shapes"``:
    ``"left"``, ``"right"``, ``"up"``, ``"down"`` or ``"still"`` per object the grammar finds;
    ``"words"`` reads no motion: []."""
    if judge != "shapes":
        return []
    from uvigu.eval.grammar import parse_prompt

    return [o.motion for o in parse_prompt(prompt).objects if o.motion]


@dataclass(frozen=True)
class ObjectPlace:
    """Where a draft of a clip shows one object of its prompt, and how the prompt asks it to move:
    ``center`` (y, x) in pixels is the middle of the object's colour over the draft's frames."""

    motion: str  # "left", "right", "up", "down" or "still"
    center: tuple[float, float]
    radius: float  # pixels: half the object's size as the prompt says it (large when it does not), and a margin
    prompt: str  # the object alone in a prompt of its own, on the prompt's background when it names one
    index: int  # which of the prompt's objects it is (0: the first named)


def object_places(judge: str, prompt: str, frames: np.ndarray, tolerance: float = 90.0,
                  fill: bool = False) -> list[ObjectPlace]:
    """Each object of ``prompt`` whose colour a draft of its clip, uint8 ``frames`` (f, h, w, 3), shows,
    as the judge named ``judge`` reads the prompt — where moving noise goes when the objects move
    different ways (`uvigu.flows.moving_noise.path_noise`). ``"shapes"``: a pixel is of an object
    colour when that colour of the Shapes palette is the nearest of the palette and its backgrounds
    and lies within ``tolerance`` (RGB distance); the pixels of a colour, summed over the frames,
    fall into blobs, and the prompt's objects of that colour take its blobs, the heaviest first
    (one that holds fewer than ``_MIN_BLOB`` pixels a frame on average, at the world's 64 pixels,
    is no object yet; an object whose colour the draft lacks is left out, or, with ``fill``, put
    last where its path keeps furthest from the others', `_free_place`). This reads colours only —
    it is not the evaluation's analyzer, and judges nothing. ``"words"`` reads no objects: []."""
    if judge != "shapes":
        return []
    import cv2

    from uvigu.data.shapes import BACKGROUNDS, COLORS, REFERENCE_SIDE
    from uvigu.eval.grammar import parse_prompt

    parsed = parse_prompt(prompt)
    asked = [(i, o) for i, o in enumerate(parsed.objects) if o.color in COLORS and o.motion]
    if not asked:
        return []
    frames = np.asarray(frames, dtype=np.float32)
    scale = min(frames.shape[1:3]) / REFERENCE_SIDE
    names = list(COLORS)
    palette = np.array([*COLORS.values(), *BACKGROUNDS.values()], dtype=np.float32)
    distance = np.linalg.norm(frames[..., None, :] - palette, axis=-1)  # (f, h, w, colours)
    nearest, near = distance.argmin(-1), distance.min(-1) <= tolerance
    heavy = max(1.0, _MIN_BLOB * scale**2 * len(frames))  # a fainter blob is no object yet
    places = []
    for color in dict.fromkeys(o.color for _, o in asked):
        weight = ((nearest == names.index(color)) & near).sum(0).astype(np.float32)  # (h, w): frames showing it
        count, labels = cv2.connectedComponents((weight > 0).astype(np.uint8), connectivity=8)
        mass = {k: float(weight[labels == k].sum()) for k in range(1, count)}
        blobs = sorted((k for k in mass if mass[k] >= heavy), key=lambda k: -mass[k])
        for (index, obj), k in zip(((i, o) for i, o in asked if o.color == color), blobs):
            ys, xs = np.nonzero(labels == k)
            w = weight[ys, xs]
            center = float(ys @ w / w.sum()), float(xs @ w / w.sum())
            places.append(ObjectPlace(obj.motion, center, _radius(obj, scale), _alone(obj, parsed.background), index))
    if fill:
        found = {place.index for place in places}
        for index, obj in asked:
            if index not in found:
                center = _free_place(obj, [parsed.objects[p.index] for p in places], [p.center for p in places],
                                     frames.shape[1:3], scale)
                places.append(ObjectPlace(obj.motion, center, _radius(obj, scale), _alone(obj, parsed.background),
                                          index))
    return places


def _free_place(obj, others: list, centers: list[tuple[float, float]], side: tuple[int, int],
                scale: float) -> tuple[float, float]:
    """Where (y, x, the middle of its path, in pixels) an object a draft does not show should go in a
    clip of ``side`` (h, w): of the spots from which its path, as long as the text's speed makes it,
    stays in the frame, the one whose path keeps furthest from the paths of ``others`` (parsed
    objects, placed at ``centers``); with no others, the spot nearest the middle of the frame."""
    from uvigu.data.shapes import BOX_PX, MOTION_DIRECTIONS, TRAVEL_PX

    def path(o, center):  # points along o's path through the clip, centred on its middle
        dx, dy = MOTION_DIRECTIONS[o.motion]
        travel = TRAVEL_PX[o.speed or "slowly"] * scale * np.linspace(-0.5, 0.5, 9)[:, None]
        return np.asarray(center) + travel * (dy, dx)

    dx, dy = MOTION_DIRECTIONS[obj.motion]
    half = BOX_PX[obj.size or "large"] / 2 * scale
    reach = half + TRAVEL_PX[obj.speed or "slowly"] * scale / 2
    ys, xs = (np.linspace(margin, length - 1 - margin, 9) if length - 1 > 2 * margin else np.array([(length - 1) / 2])
              for length, margin in ((side[0], reach if dy else half), (side[1], reach if dx else half)))
    spots = [(float(y), float(x)) for y in ys for x in xs]
    if not others:
        return min(spots, key=lambda c: (c[0] - (side[0] - 1) / 2) ** 2 + (c[1] - (side[1] - 1) / 2) ** 2)
    taken = np.concatenate([path(o, c) for o, c in zip(others, centers)])
    gap = lambda c: np.linalg.norm(path(obj, c)[:, None] - taken[None], axis=-1).min()  # noqa: E731
    return max(spots, key=gap)


def edit_places(judge: str, source_prompt: str, prompt: str,
                frames: np.ndarray) -> list[tuple[ObjectPlace, ObjectPlace]]:
    """Where an edit's objects go: each object of ``source_prompt`` (the text before the edit) that the
    clip being edited, uint8 ``frames``, shows (`object_places`), paired with the same object as
    the edited ``prompt`` names it — its motion, size and own text, from the same start (``center``
    stays the source's; the edit's path is laid from where the source's path begins). Objects pair
    in the order the texts name them, so only texts naming the same objects, two or more, get
    places (one object's own text is the whole text); [] otherwise, and for the ``"words"`` judge."""
    if judge != "shapes":
        return []
    from uvigu.data.shapes import REFERENCE_SIDE
    from uvigu.eval.grammar import parse_prompt

    target = parse_prompt(prompt)
    if len(target.objects) < 2 or len(parse_prompt(source_prompt).objects) != len(target.objects):
        return []
    scale = min(np.shape(frames)[1:3]) / REFERENCE_SIDE
    pairs = []
    for place in object_places(judge, source_prompt, frames):
        obj = target.objects[place.index]
        if obj.motion:
            pairs.append((place, ObjectPlace(obj.motion, place.center, _radius(obj, scale),
                                             _alone(obj, target.background), place.index)))
    return pairs


def _radius(obj, scale: float) -> float:
    """Pixels around the middle of a parsed object its path covers: half its size as the text says it
    (large when it does not), and a margin; ``scale``: the clip's side over the Shapes world's."""
    from uvigu.data.shapes import BOX_PX

    return (BOX_PX[obj.size or "large"] / 2 + _PATH_MARGIN) * scale


def _alone(obj, background: str | None) -> str:
    """A parsed object alone in a text of its own: a caption's clause when it was read from a caption
    (it names where it starts), else the prompt grammar's phrase; on ``background`` when one is named."""
    from uvigu.data.shapes import caption_text, object_phrase, prompt_text

    if obj.region and obj.size and background and (obj.speed or obj.motion == "still"):
        return caption_text([obj], background)
    return prompt_text([object_phrase(obj.color, obj.shape, obj.motion, obj.size)], background)
