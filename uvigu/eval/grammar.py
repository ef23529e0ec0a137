"""Parse Shapes-world prompts and captions (DESIGN.md §4) back into object mentions.

Well-formed text is matched strictly against the grammar, so it round-trips the generator in
`uvigu.data.shapes`. Imperfect text (a model's output) is read clause by clause: whatever a
clause says about one object is kept, clauses that do not name both a colour and a shape are
dropped, and nothing ever raises.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from uvigu.data.shapes import (
    BACKGROUNDS,
    CAPTION_MOTION_PHRASES,
    COLORS,
    HELD_OUT_PAIRS,
    PROMPT_MOTION_PHRASES,
    REGION_GRID,
    REGIONS,
    SHAPES,
    SIZES,
    SPEEDS,
    Scene,
    ShapesConfig,
    caption_text,
    possible_regions,
)

MAX_PAIRED = 12  # objects of a text considered when pairing (a scene has at most two)


@dataclass(frozen=True)
class ObjectMention:
    """What a text says about one object; a field is None when the text does not say it."""

    color: str
    shape: str
    size: str | None = None
    motion: str | None = None  # 'left' | 'right' | 'up' | 'down' | 'still'
    speed: str | None = None  # 'slowly' | 'quickly'
    region: str | None = None  # start region, one of shapes.REGIONS


@dataclass(frozen=True)
class ParsedText:
    """Objects mentioned by a prompt or caption, in text order, and the background if named."""

    objects: list[ObjectMention] = field(default_factory=list)
    background: str | None = None


def _alt(words) -> str:
    # Longest first, so 'top left' wins over 'top'.
    return "|".join(sorted((re.escape(w) for w in words), key=len, reverse=True))


_SIZE, _COLOR, _SHAPE = _alt(SIZES), _alt(COLORS), _alt(SHAPES)
_BG, _SPEED, _REGION = _alt(BACKGROUNDS), _alt(SPEEDS), _alt(REGIONS)
_PROMPT_MOTION = {phrase: motion for motion, phrase in PROMPT_MOTION_PHRASES.items()}
_CAPTION_MOTION = {phrase: motion for motion, phrase in CAPTION_MOTION_PHRASES.items()}

_PROMPT_OBJECT = re.compile(
    rf"a (?:(?P<size>{_SIZE}) )?(?P<color>{_COLOR}) (?P<shape>{_SHAPE}) "
    rf"(?P<motion>{_alt(_PROMPT_MOTION)})"
)


def _unnamed(pattern: re.Pattern) -> str:
    return re.sub(r"\?P<\w+>", "?:", pattern.pattern)


_PROMPT = re.compile(
    rf"(?P<objects>{_unnamed(_PROMPT_OBJECT)}(?: and {_unnamed(_PROMPT_OBJECT)})*)"
    rf"(?: on a (?P<background>{_BG}) background)?"
)
_CAPTION_OBJECT = re.compile(
    rf"a (?P<size>{_SIZE}) (?P<color>{_COLOR}) (?P<shape>{_SHAPE}) "
    rf"(?:moves (?P<speed>{_SPEED}) (?P<motion>{_alt(_CAPTION_MOTION)}) from the (?P<region>{_REGION})"
    rf"|stays still near the (?P<still_region>{_REGION}))"
)
_CAPTION = re.compile(
    rf"(?P<objects>{_unnamed(_CAPTION_OBJECT)}(?:, while {_unnamed(_CAPTION_OBJECT)})*)"
    rf" on a (?P<background>{_BG}) background\."
)
# Loose reading: these words separate object clauses in either text kind.
_CLAUSE_BREAKS = {"and", "while", ",", ".", ";", "a", "an"}
_DIRECTIONS = ("left", "right", "up", "down")
_MAX_TEXT_CHARS = 10_000  # longer input is model garbage; reading its head is enough


def _normalize(text: object) -> str:
    if not isinstance(text, str):
        return ""
    return " ".join(text.lower()[:_MAX_TEXT_CHARS].split())


def _tokens(text: str) -> list[str]:
    return re.sub(r"([,.;])", r" \1 ", text).split()


def _strict_prompt(text: str) -> ParsedText | None:
    match = _PROMPT.fullmatch(text)
    if match is None:
        return None
    objects = [
        ObjectMention(m["color"], m["shape"], m["size"], _PROMPT_MOTION[m["motion"]])
        for m in _PROMPT_OBJECT.finditer(match["objects"])
    ]
    return ParsedText(objects, match["background"])


def _strict_caption(text: str) -> ParsedText | None:
    match = _CAPTION.fullmatch(text)
    if match is None:
        return None
    objects = []
    for m in _CAPTION_OBJECT.finditer(match["objects"]):
        if m["still_region"] is not None:
            objects.append(ObjectMention(m["color"], m["shape"], m["size"], "still", None, m["still_region"]))
        else:
            motion = _CAPTION_MOTION[m["motion"]]
            objects.append(ObjectMention(m["color"], m["shape"], m["size"], motion, m["speed"], m["region"]))
    return ParsedText(objects, match["background"])


def _first(tokens: list[str], words) -> str | None:
    return next((t for t in tokens if t in words), None)


def _read_region(tokens: list[str]) -> str | None:
    words = [t for t in tokens if t not in ("the", "from", "near", "at", "in")]
    for i in range(len(words)):
        pair = " ".join(words[i : i + 2])
        if pair in REGIONS:
            return pair
        if words[i] in REGIONS:
            return words[i]
    return None


def _read_clause(tokens: list[str]) -> ObjectMention | None:
    color, shape = _first(tokens, COLORS), _first(tokens, SHAPES)
    if color is None or shape is None:
        return None
    # The start region follows 'from' / 'near'; direction words before it are the motion.
    cut = next((i for i, t in enumerate(tokens) if t in ("from", "near")), len(tokens))
    head, tail = tokens[:cut], tokens[cut + 1 :]
    after_shape = head[head.index(shape) + 1 :] if shape in head else []
    if "still" in head:
        motion = "still"
    else:
        motion = _first(after_shape, _DIRECTIONS)
    speed = _first(after_shape, SPEEDS) if motion != "still" else None
    return ObjectMention(color, shape, _first(tokens, SIZES), motion, speed, _read_region(tail))


def _loose(text: str) -> ParsedText:
    tokens = _tokens(text)
    background = None
    for i, token in enumerate(tokens):
        if token in BACKGROUNDS and (background is None or tokens[i + 1 : i + 2] == ["background"]):
            background = token
    # Drop the background phrase so 'on a' does not open an empty clause.
    tokens = [t for t in tokens if t not in BACKGROUNDS and t not in ("on", "background")]
    objects, clause = [], []
    for token in tokens + ["."]:
        if token in _CLAUSE_BREAKS:
            mention = _read_clause(clause)
            if mention is not None:
                objects.append(mention)
            clause = []
        else:
            clause.append(token)
    return ParsedText(objects, background)


def parse_prompt(text: str) -> ParsedText:
    """Read a short prompt ('a red circle moving right and ...'); never raises."""
    text = _normalize(text)
    return _strict_prompt(text.rstrip(".").rstrip()) or _loose(text)


def goes_one_way(prompt: str) -> bool:
    """Whether every object of ``prompt`` moves the same way (or stays still), a prompt of one object
    among them: what moving noise (``pipe.generate``'s ``motion_noise``) moves one way; the
    evaluation's generation rows and the sweep's columns split objects by it."""
    return len({o.motion for o in parse_prompt(prompt).objects}) <= 1


def parse_caption(text: str) -> ParsedText:
    """Read a detailed caption ('a large red circle moves quickly to the right from ...'); never raises."""
    text = _normalize(text)
    return _strict_caption(text) or _loose(text)


def follows_grammar(text: str) -> bool:
    """Whether ``text`` is a detailed caption of the grammar (DESIGN §4) word for word: the
    shipped model's captions of Shapes clips are (399 of the evaluation's 400), its captions of
    footage unlike them mostly not."""
    return _strict_caption(_normalize(text)) is not None


def prompt_guide() -> str:
    """How the Shapes world's prompts go (DESIGN §4), in a sentence or three for someone typing one."""
    motions = "|".join(p.removeprefix("moving ") for m, p in PROMPT_MOTION_PHRASES.items() if m != "still")
    held = ", ".join(f"{color} {shape}" for color, shape in sorted(HELD_OUT_PAIRS))
    return (
        f"It learned clips of one or two objects, and prompts that name each as “a [{'|'.join(SIZES)}] <colour> "
        f"<shape> moving {motions}” or “… staying still”, joined by “and”, optionally ending “on a "
        f"{'|'.join(BACKGROUNDS)} background”: colours {', '.join(COLORS)}; shapes {', '.join(SHAPES)}. "
        f"No two objects of a clip share a colour. Held out of its training, to test whether it puts together a "
        f"colour and a shape it has only seen apart: {held}."
    )


def prompt_notes(text: str) -> list[str]:
    """What a prompt (or edited caption) asks that the Shapes world has no clips of, or that its
    training held out, each as a sentence; empty when it asks for nothing of the kind."""
    objects = parse_prompt(text).objects
    notes = []
    most = ShapesConfig.max_objects
    if len(objects) > most:
        notes.append(f"{len(objects)} objects asked for; the model learned clips of at most {most}, so it may leave "
                     "some out.")
    colors = [o.color for o in objects]
    shared = sorted({c for c in colors if colors.count(c) > 1}, key=colors.index)
    if shared:
        notes.append(f"More than one {' and more than one '.join(shared)} object asked for; no two objects of the "
                     "clips the model learned share a colour.")
    held = list(dict.fromkeys(f"{'an' if o.color[0] in 'aeiou' else 'a'} {o.color} {o.shape}"
                              for o in objects if (o.color, o.shape) in HELD_OUT_PAIRS))
    if held:
        notes.append(f"The model never saw {' or '.join(held)} in training (held out, to test whether it "
                     "puts together a colour and a shape it has only seen apart).")
    return notes


def best_pairing(expected: Sequence[ObjectMention], found: Sequence,
                 fields: Sequence[str] = ("color", "shape", "motion")) -> tuple[int, ...]:
    """Per expected object, the index of its partner among the first ``MAX_PAIRED`` objects of
    ``found`` (-1: none), in the one-to-one pairing under which the most ``fields`` agree (the
    first such)."""
    found = list(found)[:MAX_PAIRED]
    best_score, partner = -1, tuple(-1 for _ in expected)
    # Injective maps expected -> found index or -1 (unpaired); at most (F + E)! / F! of them.
    for pick in itertools.permutations(list(range(len(found))) + [-1] * len(expected), len(expected)):
        score = sum(j >= 0 and getattr(e, f) == getattr(found[j], f, None) for e, j in zip(expected, pick) for f in fields)
        if score > best_score:
            best_score, partner = score, pick
    return partner


def corrected_caption(prompt: str, caption: str) -> str | None:
    """``caption`` (a detailed caption of the grammar) with each object the prompt asks for given
    the colour, shape, motion and size the prompt asks of it, its partner's other words kept (speed,
    start region; a still object set moving goes "slowly"; a start its new size or motion cannot
    have moves to the nearest one it can), an object the caption lacks added (small unless the
    prompt says, slowly, from the center or the start nearest it), and the background the prompt
    names, if it names one; ``None`` when the caption is not of the grammar, the prompt names no
    object, or the caption already says all it asks.
    The text to edit a clip with so that it shows what its prompt asked (the studio's *Ask for what
    it missed*)."""
    parsed = _strict_caption(_normalize(caption))
    prompted = parse_prompt(prompt)
    asked = prompted.objects
    if parsed is None or not asked:
        return None
    objects = list(parsed.objects)
    for want, j in zip(asked, best_pairing(asked, objects)):
        if j < 0:
            motion, size = want.motion or "still", want.size or "small"
            speed = None if motion == "still" else "slowly"
            objects.append(ObjectMention(want.color, want.shape, size, motion, speed,
                                         _nearest("center", possible_regions(size, motion, speed))))
            continue
        have = objects[j]
        motion = want.motion or have.motion
        speed = None if motion == "still" else have.speed or "slowly"
        size = want.size or have.size
        # A start is re-placed only for a new size or motion, which it may not suit; one the caption
        # reads where the world would not put it stays, for nothing asked differs there.
        moved = (size, motion, speed) != (have.size, have.motion, have.speed)
        region = _nearest(have.region, possible_regions(size, motion, speed)) if moved else have.region
        objects[j] = replace(have, color=want.color, shape=want.shape, size=size, motion=motion, speed=speed,
                             region=region)
    text = caption_text(objects, prompted.background or parsed.background)
    return None if text == _normalize(caption) else text


def _nearest(region: str, allowed: list[str]) -> str:
    """``region`` if it is ``allowed``, else the allowed one fewest grid steps from it (the first
    of those, in reading order)."""
    if region in allowed or not allowed:
        return region
    cell = {name: (row, col) for row, names in enumerate(REGION_GRID) for col, name in enumerate(names)}
    row, col = cell[region]
    return min(allowed, key=lambda name: abs(cell[name][0] - row) + abs(cell[name][1] - col))


def scene_mentions(scene: Scene) -> list[ObjectMention]:
    """The ground truth of a scene as mentions with every field set (speed None when still)."""
    return [ObjectMention(o.color, o.shape, o.size, o.motion, o.speed, o.region) for o in scene.objects]


__all__ = ["MAX_PAIRED", "ObjectMention", "ParsedText", "best_pairing", "corrected_caption", "follows_grammar",
           "parse_caption", "parse_prompt", "scene_mentions"]
