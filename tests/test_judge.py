from dataclasses import replace

import pytest

import numpy as np

from uvigu.data.shapes import COLORS, caption_text, make_example, object_center, scene_prompt
from uvigu.eval.grammar import parse_caption, parse_prompt
from uvigu.judge import (
    JUDGES, edit_places, get_judge, names_no_object, object_places, prompt_motions, prompt_words, read_back,
    read_back_count, shapes_judge, words_judge,
)


def test_words_judge_counts_the_prompts_distinct_words_the_caption_repeats():
    assert words_judge("a red circle moving left", "a red circle moves slowly left.") == pytest.approx(4 / 5)
    assert words_judge("Red red CIRCLE", "a red circle") == 1.0  # case and repeats do not count twice
    assert words_judge("a red circle", "a blue square") == pytest.approx(1 / 3)
    assert words_judge("", "a red circle") == 0.0


def test_shapes_judge_reads_colour_shape_and_motion_through_the_grammar():
    prompt = "a small red diamond moving down"
    right = "a small red diamond moves slowly down from the left on a gray background."
    wrong_way = "a small red diamond moves slowly up from the left on a gray background."
    wrong_shape = "a small red circle moves slowly down from the left on a gray background."
    # the place words of a caption ("from the bottom") are not read as its motion
    placed = "a small red diamond moves slowly up from the bottom on a gray background."
    assert shapes_judge(prompt, right) == 1.0
    assert shapes_judge(prompt, wrong_way) == shapes_judge(prompt, wrong_shape) == pytest.approx(2 / 6)
    assert shapes_judge(prompt, placed) == shapes_judge(prompt, wrong_way)
    # the words judge counts "left" whether the object goes left or starts there
    went = "a red circle moves slowly left from the right."
    started = "a red circle moves slowly up from the left."
    assert words_judge("a red circle moving left", went) == words_judge("a red circle moving left", started)
    assert shapes_judge("a red circle moving left", went) > shapes_judge("a red circle moving left", started)


def test_shapes_judge_weighs_the_background_the_prompt_names_as_one_field():
    prompt = "a red circle moving up on a black background"
    black = "a small red circle moves slowly up from the center on a black background."
    gray = black.replace("black", "gray")
    assert shapes_judge(prompt, black) == 1.0 and shapes_judge(prompt, gray) == pytest.approx(6 / 7)
    # the background breaks a tie, and weighs less than an object's field
    assert shapes_judge(prompt, black.replace("up", "down")) < shapes_judge(prompt, gray)
    assert shapes_judge("a red circle moving up", gray) == shapes_judge("a red circle moving up", black) == 1.0


def test_shapes_judge_prefers_one_object_fully_named_over_two_half_named():
    prompt = "a red circle moving left and a blue square staying still"
    one_right = "a large red circle moves slowly left from the right, while a small green triangle moves quickly up from the bottom on a gray background."
    two_halves = "a large red triangle moves slowly up from the right, while a small blue circle stays still near the top on a gray background."
    assert shapes_judge(prompt, one_right) > shapes_judge(prompt, two_halves)
    assert 0.0 < shapes_judge(prompt, two_halves) < shapes_judge(prompt, one_right) < 1.0


def test_shapes_judge_falls_back_to_words_where_the_grammar_names_no_object():
    assert shapes_judge("sunset over the sea", "a sunset over a calm sea") == words_judge(
        "sunset over the sea", "a sunset over a calm sea")


def test_get_judge_by_name_or_callable():
    assert get_judge("words") is JUDGES["words"] and get_judge("shapes") is JUDGES["shapes"]
    mine = lambda prompt, caption: 0.5  # noqa: E731
    assert get_judge(mine) is mine
    with pytest.raises(ValueError, match="take_judge must be one of words, shapes"):
        get_judge("vibes")


def test_prompt_words_are_what_the_judge_reads_and_the_directions_it_must_not():
    assert prompt_words("shapes", "a red circle moving left and a small blue square staying still") == (
        ["red", "circle", "left", "blue", "square", "still"], ["right"])
    # two objects going opposite ways: each direction is wanted, so neither is unwanted
    assert prompt_words("shapes", "a red circle moving left and a blue square moving right") == (
        ["red", "circle", "left", "blue", "square", "right"], [])
    assert prompt_words("shapes", "something shiny") == (["shiny", "something"], [])  # no object: words
    assert prompt_words("words", "A red circle, moving up") == (["a", "circle", "moving", "red", "up"], [])


def test_prompt_motions_are_each_objects_motion_in_order():
    assert prompt_motions("shapes", "a red circle moving left on a black background") == ["left"]
    assert prompt_motions("shapes", "a red circle moving up and a large blue square moving up") == ["up", "up"]
    assert prompt_motions("shapes", "a red circle moving left and a blue square staying still") == ["left", "still"]
    assert prompt_motions("shapes", "something shiny moving left") == []  # no object the grammar reads
    assert prompt_motions("words", "a red circle moving left") == []  # a judge without a grammar reads none


def _two_object_clip():
    """A Shapes clip of two objects of different colours going different ways, with its scene."""
    for seed in range(200):
        example = make_example(seed)
        objects = example.scene.objects
        if len(objects) == 2 and len({o.color for o in objects}) == 2 and len({o.motion for o in objects}) == 2:
            return example
    raise AssertionError("no such clip in 200 seeds")


def test_object_places_finds_where_a_draft_shows_each_prompted_colour():
    example = _two_object_clip()
    frames, objects = example.frames, example.scene.objects
    prompt = scene_prompt(example.scene)
    places = object_places("shapes", prompt, frames)
    assert [p.motion for p in places] == [o.motion for o in objects]
    assert [p.index for p in places] == [0, 1]
    for place, obj in zip(places, objects):
        # the colour's middle over the frames: where the object is half way through the clip
        xs, ys = zip(*(object_center(obj, t, len(frames), frames.shape[2]) for t in range(len(frames))))
        assert place.center == pytest.approx((np.mean(ys), np.mean(xs)), abs=1.5)
        assert place.radius == (6.0 if obj.size == "small" else 10.0) + 3.0
        # the object alone in a prompt of its own, which the grammar reads back as that one object
        alone = parse_prompt(place.prompt)
        assert alone.objects == [o for o in parse_prompt(prompt).objects if o.color == obj.color]
        assert alone.background == example.scene.background and place.prompt.startswith(f"a {obj.size} ")
    # an object whose colour the draft does not show is left out; a judge without a grammar finds none
    missing = next(c for c in COLORS if c not in {o.color for o in objects})
    first, second = prompt.split(" and ", 1)
    other = first.replace(objects[0].color, missing)
    assert [p.motion for p in object_places("shapes", f"{other} and {second}", frames)] == [objects[1].motion]
    assert object_places("words", prompt, frames) == []
    assert object_places("shapes", "something shiny", frames) == []


def test_object_places_gives_two_objects_of_one_colour_its_heaviest_blobs_in_turn():
    frames = np.full((4, 32, 32, 3), 128, np.uint8)
    frames[:, 4:8, 4:8] = COLORS["red"]  # 16 pixels a frame
    frames[:, 20:30, 20:30] = COLORS["red"]  # 100 pixels a frame: the heavier blob
    frames[0, 14:16, 26:28] = COLORS["red"]  # 4 pixels in one frame: too faint to be an object yet
    places = object_places("shapes", "a red circle moving left and a red square moving up", frames)
    assert [(p.motion, p.center, p.index) for p in places] == [("left", (24.5, 24.5), 0), ("up", (5.5, 5.5), 1)]
    assert [p.prompt for p in places] == ["a red circle moving left", "a red square moving up"]  # no background
    assert places[0].radius == pytest.approx(13.0 / 2)  # a large object at half the world's 64 pixels
    assert len(object_places("shapes", "a red circle moving left and a red square moving up and a red diamond "
                             "staying still", frames)) == 2  # the faint blob is nobody's


def test_object_places_fills_in_an_object_the_draft_lacks_where_its_path_keeps_clear_of_the_others():
    frames = np.full((4, 64, 64, 3), 128, np.uint8)
    frames[:, 6:18, 28:40] = COLORS["red"]  # a red blob at the top middle, centred on (11.5, 33.5)
    prompt = "a small red circle moving left and a small blue square moving right on a gray background"
    assert [p.index for p in object_places("shapes", prompt, frames)] == [0]  # no blue: left out
    red, blue = object_places("shapes", prompt, frames, fill=True)
    assert red == object_places("shapes", prompt, frames)[0]
    # blue, placed last: as far below the red path as a small object's box lets it (6 px from the
    # bottom), and across the frame in the middle, so its 16-pixel path stays in the frame
    assert (blue.index, blue.motion) == (1, "right")
    assert blue.prompt == "a small blue square moving right on a gray background"
    assert blue.center[0] == pytest.approx(63 - 6.0)
    assert 6.0 + 8.0 <= blue.center[1] <= 63 - 6.0 - 8.0
    assert blue.radius == red.radius == 6.0 + 3.0
    # going up, it stays in the frame from top to bottom; with nothing found it takes the middle
    up = prompt.replace("blue square moving right", "blue square moving up")
    assert 6.0 + 8.0 <= object_places("shapes", up, frames, fill=True)[1].center[0] <= 63 - 6.0 - 8.0
    empty = np.full_like(frames, 128)
    red, blue = object_places("shapes", prompt, empty, fill=True)
    assert (red.index, red.center, blue.index) == (0, (31.5, 31.5), 1)
    assert abs(blue.center[0] - 31.5) == pytest.approx(31.5 - 6.0)  # a row as far from red's as there is
    # an object the draft shows is never moved by fill; a judge without a grammar still finds none
    assert object_places("words", prompt, frames, fill=True) == []


def test_edit_places_pairs_each_object_before_an_edit_with_itself_after_it():
    example = _two_object_clip()
    frames, caption, background = example.frames, example.caption, example.scene.background
    first, second = parse_caption(caption).objects
    turned = replace(second, motion="down" if second.motion != "down" else "up", speed=second.speed or "slowly")
    edited = caption_text([first, turned], background)
    pairs = edit_places("shapes", caption, edited, frames)
    # before the edit: where the clip shows each object, as object_places finds it, each alone in a caption
    assert [before for before, _ in pairs] == object_places("shapes", caption, frames)
    assert [before.prompt for before, _ in pairs] == [caption_text([o], background) for o in (first, second)]
    # after it: the same object and place, moving and named as the edited caption says
    assert [(after.index, after.center, after.motion, after.radius) for after in (a for _, a in pairs)] == [
        (before.index, before.center, obj.motion, before.radius) for (before, _), obj in zip(pairs, (first, turned))]
    assert [after.prompt for _, after in pairs] == [caption_text([o], background) for o in (first, turned)]
    assert parse_caption(pairs[1][1].prompt).objects == [turned]
    # an edit of one object (its own text is the whole text), of texts naming other objects, or by a
    # judge without a grammar, has no places
    alone = caption_text([first], background)
    assert edit_places("shapes", alone, alone.replace(first.shape, "square" if first.shape != "square" else "circle"),
                       frames) == []
    assert edit_places("shapes", caption, alone, frames) == []
    assert edit_places("words", caption, edited, frames) == []


def test_read_back_says_what_the_caption_says_of_each_object_asked_for():
    prompt = "a red circle moving right and a blue square moving up"
    # the objects the other way round in the caption, the circle drawn as a square going down
    caption = ("a small blue square moves quickly up from the left, while a large red square moves slowly down "
               "from the center on a gray background.")
    circle, square = read_back("shapes", prompt, caption)
    assert circle.name == "red circle moving right" and not circle.agrees and circle.found
    assert [(c.field, c.asked, c.said, c.agrees) for c in circle.checks] == [
        ("color", "red", "red", True), ("shape", "circle", "square", False),
        ("motion", "moving right", "moving down", False)]
    assert square.name == "blue square moving up" and square.agrees
    # the fields the prompt gives, and only those; an object the caption has no partner for
    (plain,) = read_back("shapes", "a green triangle", "a small green triangle stays still near the top.")
    assert plain.agrees and [c.field for c in plain.checks] == ["color", "shape"]
    (gone,) = read_back("shapes", "a green triangle moving left", "a gray gray on")
    assert not gone.found and not gone.agrees and all(c.said is None for c in gone.checks)
    # an edit's caption reads as a prompt; the score of the judge and the read-back agree
    edited = "a small red circle stays still near the center on a gray background."
    still, gray = read_back("shapes", edited, "a small red circle moves slowly up from the center on a gray background.")
    assert [(c.asked, c.said) for c in still.checks if not c.agrees] == [("staying still", "moving up")]
    assert gray.name == "gray background" and gray.is_background and gray.agrees
    assert all(r.agrees for r in read_back("shapes", edited, edited)) and shapes_judge(edited, edited) == 1.0


def test_read_back_says_whether_the_caption_names_the_background_the_prompt_asks_for():
    caption = "a small red circle moves slowly up from the center on a gray background."
    circle, black = read_back("shapes", "a red circle moving up on a black background", caption)
    assert circle.agrees and not circle.is_background
    assert black.name == "black background" and black.is_background and black.found and not black.agrees
    assert black.misses() == [("gray", "black")]
    assert read_back_count([circle, black]) == "1 of 1 object as asked; background not as asked"
    _, gray = read_back("shapes", "a red circle moving up on a gray background", caption)
    assert gray.agrees and read_back_count([circle, gray]) == "1 of 1 object as asked; background as asked"
    # a caption that names none; a prompt that names none asks nothing of it
    _, unnamed = read_back("shapes", "a red circle on a black background", "a small red circle stays still near the top.")
    assert unnamed.misses() == [("no background", "black")]
    asked = read_back("shapes", "a red circle moving up and a blue square", caption)
    assert not any(item.is_background for item in asked) and read_back_count(asked) == "1 of 2 objects as asked"


def test_read_back_names_each_object_the_caption_adds_to_those_asked_for():
    caption = ("a small red circle moves slowly up from the center, while a large blue square stays still near the "
               "top on a gray background.")
    circle, black, extra = read_back("shapes", "a red circle moving up on a black background", caption)
    assert circle.agrees and black.is_background and not black.agrees
    assert extra.name == "blue square staying still" and not extra.asked and not extra.agrees and extra.checks == ()
    assert read_back_count([circle, black, extra]) == (
        "1 of 1 object as asked; background not as asked; 1 object not asked for")
    assert not names_no_object([circle, black, extra])
    # the one asked for is paired with its best partner, whichever comes first in the caption
    square, circle_extra = read_back("shapes", "a blue square", caption)
    assert square.agrees and (circle_extra.name, circle_extra.asked) == ("red circle moving up", False)
    # as many as asked, or more asked: nothing added
    assert all(item.asked for item in read_back("shapes", "a red circle moving up and a blue square", caption))
    assert all(item.asked for item in read_back("shapes", "a red circle and a blue square",
                                                "a small red circle stays still near the top."))


def test_read_back_by_words_for_other_models_and_prompts_the_grammar_cannot_read():
    for judge in ("words", "shapes"):
        (words,) = read_back(judge, "a lighthouse at dusk", "a lighthouse on a cliff")
        assert words.name == "" and [(c.asked, c.agrees) for c in words.checks] == [
            ("a", True), ("at", False), ("dusk", False), ("lighthouse", True)]


def test_a_caption_names_no_object_when_none_of_the_asked_ones_is_paired():
    prompt = "a red circle moving left and a blue square moving up on a black background"
    assert names_no_object(read_back("shapes", prompt, "a black"))
    assert names_no_object(read_back("shapes", prompt, "a black background"))
    # any object it names is paired with one asked for, however little of it agrees
    assert not names_no_object(read_back("shapes", prompt, "a large green triangle moves down from the top."))
    assert not names_no_object(read_back("shapes", "a red circle", "a red circle moves right."))
    assert not names_no_object(read_back("words", "something shiny", "nothing"))  # no object asked for: words
    assert not names_no_object([])
