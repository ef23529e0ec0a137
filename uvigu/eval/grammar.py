"""Parse Shapes-world prompts and captions (DESIGN.md §4) back into object mentions.

Well-formed text is matched strictly against the grammar, so it round-trips the generator in
`uvigu.data.shapes`. Imperfect text (a model's output) is read clause by clause: whatever a
clause says about one object is kept, clauses that do not name both a colour and a shape are
dropped, and nothing ever raises.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from uvigu.data.shapes import (
    BACKGROUNDS,
    CAPTION_MOTION_PHRASES,
    COLORS,
    PROMPT_MOTION_PHRASES,
    REGIONS,
    SHAPES,
    SIZES,
    SPEEDS,
    Scene,
)


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


def parse_caption(text: str) -> ParsedText:
    """Read a detailed caption ('a large red circle moves quickly to the right from ...'); never raises."""
    text = _normalize(text)
    return _strict_caption(text) or _loose(text)


def follows_grammar(text: str) -> bool:
    """Whether ``text`` is a detailed caption of the grammar (DESIGN §4) word for word: the
    shipped model's captions of Shapes clips are (399 of the evaluation's 400), its captions of
    footage unlike them mostly not."""
    return _strict_caption(_normalize(text)) is not None


def scene_mentions(scene: Scene) -> list[ObjectMention]:
    """The ground truth of a scene as mentions with every field set (speed None when still)."""
    return [ObjectMention(o.color, o.shape, o.size, o.motion, o.speed, o.region) for o in scene.objects]


__all__ = ["ObjectMention", "ParsedText", "follows_grammar", "parse_caption", "parse_prompt", "scene_mentions"]
