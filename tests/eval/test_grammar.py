import numpy as np
import pytest

from uvigu.data.shapes import (BACKGROUNDS, COLORS, HELD_OUT_PAIRS, SHAPES, ShapesConfig, make_example,
                               possible_regions, sample_scene, scene_prompt, shapes_vocabulary)
from uvigu.eval.grammar import (ObjectMention, ParsedText, corrected_caption, follows_grammar, parse_caption,
                                parse_prompt, prompt_guide, prompt_notes, scene_mentions)


@pytest.mark.parametrize("split", ["train", "heldout"])
def test_captions_round_trip_every_field(split):
    for seed in range(400):
        ex = make_example(seed, split=split)
        parsed = parse_caption(ex.caption)
        assert parsed.objects == scene_mentions(ex.scene), ex.caption
        assert parsed.background == ex.scene.background


@pytest.mark.parametrize("split", ["train", "heldout"])
def test_prompts_round_trip_every_field_they_state(split):
    rng = np.random.default_rng(0)
    for _ in range(400):
        scene = sample_scene(rng, ShapesConfig(), split)
        for prompt in (scene_prompt(scene), scene_prompt(scene, rng)):
            parsed = parse_prompt(prompt)
            assert len(parsed.objects) == len(scene.objects)
            for mention, obj in zip(parsed.objects, scene.objects):
                assert (mention.color, mention.shape, mention.motion) == (obj.color, obj.shape, obj.motion)
                assert mention.size in (None, obj.size)
                assert mention.speed is None and mention.region is None
                assert (mention.size is None) == (f"{obj.size} {obj.color}" not in prompt)
            assert parsed.background == (scene.background if prompt.endswith("background") else None)
        full = parse_prompt(scene_prompt(scene))
        assert [m.size for m in full.objects] == [o.size for o in scene.objects]


def test_design_examples():
    prompt = parse_prompt("a red circle moving right and a large blue square staying still")
    assert prompt == ParsedText(
        [ObjectMention("red", "circle", None, "right"), ObjectMention("blue", "square", "large", "still")], None
    )
    caption = parse_caption(
        "a large red circle moves quickly to the right from the left, while a small blue square stays "
        "still near the center on a black background."
    )
    assert caption == ParsedText(
        [
            ObjectMention("red", "circle", "large", "right", "quickly", "left"),
            ObjectMention("blue", "square", "small", "still", None, "center"),
        ],
        "black",
    )


def test_loose_reading_of_imperfect_text():
    # Doubled words, missing article, no final period, capitals and odd spacing.
    text = "A large red circle moves quickly to the right from the the top left,  while small BLUE square stays still near center"
    parsed = parse_caption(text)
    assert parsed.objects == [
        ObjectMention("red", "circle", "large", "right", "quickly", "top left"),
        ObjectMention("blue", "square", "small", "still", None, "center"),
    ]
    assert parsed.background is None
    # A clause without a shape is dropped; the others survive; the background is still read.
    parsed = parse_caption("a green moves up from the top, while a yellow diamond moves slowly down on a gray background.")
    assert parsed.objects == [ObjectMention("yellow", "diamond", None, "down", "slowly", None)]
    assert parsed.background == "gray"
    # Region words before 'from' are not a motion; direction words after it are the region.
    assert parse_caption("a red square moves from the left").objects == [ObjectMention("red", "square", None, None, None, "left")]
    # Caption-style phrasing given to the prompt parser, and the reverse.
    assert parse_prompt("a small purple triangle moves slowly up from the bottom.").objects == [
        ObjectMention("purple", "triangle", "small", "up", "slowly", "bottom")
    ]
    assert parse_caption("an orange square moving left").objects == [ObjectMention("orange", "square", None, "left")]


@pytest.mark.parametrize(
    "text", ["", "   ", "....", ",,, while and", "garbage !!! ??", "a a a a", "red", "circle", "🙂 ünïcode", "x" * 50_000, None, 42]
)
def test_garbage_never_raises(text):
    for parse in (parse_prompt, parse_caption):
        parsed = parse(text)
        assert isinstance(parsed, ParsedText)
        assert parsed.objects == []


def test_corrupted_generator_text_never_raises_and_keeps_intact_clauses():
    rng = np.random.default_rng(1)
    for seed in range(200):
        caption = make_example(seed).caption
        words = caption.split()
        for _ in range(3):  # drop, duplicate or swap a word
            i = int(rng.integers(len(words)))
            op = rng.integers(3)
            if op == 0 and len(words) > 1:
                words.pop(i)
            elif op == 1:
                words.insert(i, words[i])
            else:
                j = int(rng.integers(len(words)))
                words[i], words[j] = words[j], words[i]
        parsed = parse_caption(" ".join(words))
        assert len(parsed.objects) <= 2
        for mention in parsed.objects:
            assert mention.color and mention.shape


def test_random_vocabulary_soup_never_raises():
    vocab = shapes_vocabulary()
    rng = np.random.default_rng(0)
    for _ in range(2000):
        text = " ".join(rng.choice(vocab, size=int(rng.integers(0, 40))))
        for parse in (parse_prompt, parse_caption):
            for mention in parse(text).objects:
                assert mention.color and mention.shape


def test_possible_regions_are_the_generators_starts():
    seen = {}
    for seed in range(3000):
        for obj in make_example(seed).scene.objects:
            seen.setdefault((obj.size, obj.motion, obj.speed), set()).add(obj.region)
    assert len(seen) == 18  # 2 sizes × (4 motions × 2 speeds + still)
    for (size, motion, speed), regions in seen.items():
        assert set(possible_regions(size, motion, speed)) == regions, (size, motion, speed)


def test_a_caption_corrected_to_what_the_prompt_asked():
    caption = ("a large red square moves slowly down from the center, while a small blue square moves quickly up "
               "from the left on a gray background.")
    # the red object: circle, and right (from the center it can); the blue one is as asked, kept word for word
    assert corrected_caption("a red circle moving right and a blue square moving up", caption) == (
        "a large red circle moves slowly to the right from the center, while a small blue square moves quickly up "
        "from the left on a gray background.")
    assert corrected_caption("a blue square moving up", caption) is None  # it says all that was asked
    # ... also when the caption puts it where the world would not start it: nothing asked differs
    off_grid = "a large red circle moves quickly to the right from the center on a gray background."
    assert corrected_caption("a red circle moving right", off_grid) is None
    assert corrected_caption("a blue circle moving right", off_grid) == (
        "a large blue circle moves quickly to the right from the center on a gray background.")
    # a start the new motion cannot have moves to the nearest one it can; a still one gets a speed when set moving
    assert corrected_caption("a red circle moving right",
                             "a large red circle moves quickly to the left from the right on a gray background.") == (
        "a large red circle moves quickly to the right from the left on a gray background.")
    assert corrected_caption("a small green triangle moving up",
                             "a large red triangle stays still near the top on a white background.") == (
        "a small green triangle moves slowly up from the center on a white background.")
    # an object the caption lacks is added; a caption off the grammar, or a prompt of no object, gets none
    assert corrected_caption("a red square moving down and a yellow diamond staying still",
                             "a large red square moves slowly down from the center on a gray background.") == (
        "a large red square moves slowly down from the center, while a small yellow diamond stays still near the "
        "center on a gray background.")
    # the background the prompt names, if it names one
    assert corrected_caption("a blue square moving up on a black background", caption) == (
        "a large red square moves slowly down from the center, while a small blue square moves quickly up from the "
        "left on a black background.")
    assert corrected_caption("a blue square moving up on a gray background", caption) is None
    assert corrected_caption("a red circle", "a red circle goes somewhere") is None
    assert corrected_caption("something nice", caption) is None
    # what it writes is a caption of the grammar, and says all that was asked
    fixed = corrected_caption("a purple triangle moving left and a blue square staying still", caption)
    assert follows_grammar(fixed) and corrected_caption("a purple triangle moving left and a blue square staying "
                                                        "still", fixed) is None


@pytest.mark.parametrize("split", ["train", "heldout"])
def test_prompts_and_captions_of_the_world_get_no_note_but_a_held_out_pair(split):
    rng = np.random.default_rng(1)
    for seed in range(300):
        example = make_example(seed, split=split)
        held = any((o.color, o.shape) in HELD_OUT_PAIRS for o in example.scene.objects)
        assert held or split == "train"
        for text in (example.prompt, scene_prompt(example.scene, rng), example.caption):
            notes = prompt_notes(text)
            assert len(notes) == held and all(n.startswith("The model never saw") for n in notes), (text, notes)


def test_what_a_prompt_asks_beyond_the_world_is_said():
    assert prompt_notes("a red circle moving right and a large blue square staying still") == []
    assert prompt_notes("a red circle moving right and a blue square moving up and a green triangle moving down") == [
        "3 objects asked for; the model learned clips of at most 2, so it may leave some out."]
    assert prompt_notes("a red circle moving right and a red square moving left") == [
        "More than one red object asked for; no two objects of the clips the model learned share a colour."]
    assert prompt_notes("a purple triangle moving up and an orange square staying still") == [
        "The model never saw a purple triangle or an orange square in training (held out, to test whether it "
        "puts together a colour and a shape it has only seen apart)."]
    assert len(prompt_notes("a green diamond, a green diamond and a green diamond")) == 3
    assert prompt_notes("") == prompt_notes("a dragon flying") == prompt_notes("a circle moving right") == []


def test_the_prompt_guide_names_the_whole_grammar():
    guide = prompt_guide()
    for word in [*COLORS, *SHAPES, *BACKGROUNDS, "small", "large", "left", "right", "up", "down", "staying still"]:
        assert word in guide, word
    for color, shape in HELD_OUT_PAIRS:
        assert f"{color} {shape}" in guide
    assert "one or two objects" in guide


def test_a_prompt_goes_one_way_when_every_object_moves_alike():
    from uvigu.eval.grammar import goes_one_way

    assert goes_one_way("a red circle moving left")
    assert goes_one_way("a red circle moving up and a blue square moving up")
    assert goes_one_way("a red circle staying still and a blue square staying still")
    assert not goes_one_way("a red circle moving left and a blue square staying still")
    assert not goes_one_way("a red circle moving left and a blue square moving right")
