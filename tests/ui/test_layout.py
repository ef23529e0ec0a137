from types import SimpleNamespace

import pytest

from tests.studio.fake_pipeline import FakePipeline
from ui import build_demo, launch_options
from uvigu.studio import Studio, StudioSettings

MODEL_EVENTS = {"ui_generate", "ui_regenerate", "ui_understand", "ui_timeline", "generate", "caption", "edit"}


@pytest.fixture
def demo(tmp_path):
    studio = Studio(FakePipeline(), StudioSettings(data_dir=tmp_path, max_queue=9))
    yield build_demo(studio)
    studio.close()


def test_every_model_event_shares_one_worker(demo):
    events = {fn.api_name: fn for fn in demo.fns.values()}
    assert MODEL_EVENTS <= set(events)
    for name in MODEL_EVENTS:
        assert (events[name].concurrency_id, events[name].concurrency_limit) == ("model", 1), name
    others = set(events) - MODEL_EVENTS
    assert all(events[name].concurrency_id != "model" for name in others)


def test_the_queue_is_bounded_by_the_studio_limit(demo):
    assert demo._queue.max_size == 9


def test_only_the_three_scripting_endpoints_are_public(demo):
    public = {fn.api_name for fn in demo.fns.values() if fn.api_visibility == "public"}
    assert public == {"generate", "caption", "edit"}


def test_theme_and_css_go_to_launch_not_blocks():
    options = launch_options()
    assert set(options) == {"theme", "css"} and "pixelated" in options["css"]


def test_the_gpu_wrapper_wraps_the_model_handlers(tmp_path):
    wrapped = []

    def gpu(fn):
        wrapped.append(fn.__name__)
        return fn

    studio = Studio(FakePipeline(), StudioSettings(data_dir=tmp_path))
    try:
        build_demo(studio, gpu=gpu)
    finally:
        studio.close()
    assert sorted(wrapped) == sorted(["generate", "regenerate", "understand", "understand_timeline", "api_generate",
                                      "api_caption", "api_edit"])


def test_understand_states_the_studio_upload_limits(tmp_path):
    import gradio as gr

    studio = Studio(FakePipeline(), StudioSettings(data_dir=tmp_path, max_upload_duration_s=90,
                                                   max_upload_bytes=20 * 2**20))
    try:
        demo = build_demo(studio)
    finally:
        studio.close()
    texts = [block.value or "" for block in demo.blocks.values() if isinstance(block, gr.Markdown)]
    assert any("Upload a clip (up to 1.5 minutes and 20 MB)" in text for text in texts)


def model_help_shown(pipe, data_dir) -> str:
    """The text of *What this model knows* on the page the studio builds for ``pipe``."""
    import gradio as gr

    studio = Studio(pipe, StudioSettings(data_dir=data_dir))
    try:
        demo = build_demo(studio)
    finally:
        studio.close()
    texts = [block.value or "" for block in demo.blocks.values() if isinstance(block, gr.Markdown)]
    (help_text,) = [text for text in texts if text.startswith("It makes clips of")]
    return help_text


def test_the_model_help_gives_its_clip_format_prompt_length_and_words(tmp_path):
    from tests.studio.fake_pipeline import VOCAB

    help_text = model_help_shown(FakePipeline(), tmp_path)
    assert "4 frames at 8 fps (0.5 s), 8×8 pixels" in help_text and "up to 32 tokens" in help_text
    assert f"It knows these {len(VOCAB)} words" in help_text and ", ".join(sorted(VOCAB)) in help_text
    from ui import text

    assert "spells out any word" in text.model_help(81, 16, 832, 480, 512, None)  # a Wan model's UMT5
    assert "Here it runs" not in help_text  # the fake pipeline does not say where it runs
    assert "Here it runs on the CPU, in bfloat16: a seed makes the same clip again on this server" in text.model_help(
        16, 8, 64, 64, 47, None, "the CPU, in bfloat16")


def test_the_model_help_says_where_a_real_pipeline_runs(tmp_path):
    from uvigu.testing import tiny_pipeline

    assert "Here it runs on the CPU, in float32" in model_help_shown(tiny_pipeline(), tmp_path)


def test_the_model_help_says_how_the_prompts_it_learned_go(tmp_path):
    from uvigu.testing import tiny_pipeline

    help_text = model_help_shown(tiny_pipeline(), tmp_path)
    # the grammar's placeholders escaped, so that Markdown shows them rather than taking them for HTML tags
    assert "It learned clips of one or two objects" in help_text and "\\<colour\\> \\<shape\\>" in help_text
    assert "Held out of its training" in help_text
    assert "It learned clips" not in model_help_shown(FakePipeline(), tmp_path)  # a model that declares no grammar


def settings_box(pipe, elem_id, tmp_path):
    """The checkbox ``elem_id`` of the studio built on ``pipe``."""
    import gradio as gr

    studio = Studio(pipe, StudioSettings(data_dir=tmp_path))
    try:
        demo = build_demo(studio)
    finally:
        studio.close()
    (found,) = [b for b in demo.blocks.values() if isinstance(b, gr.Checkbox) and b.elem_id == elem_id]
    return found


def test_the_high_noise_expert_box_shows_only_for_a_model_with_an_expert(tmp_path):
    assert settings_box(FakePipeline(), "high-noise-expert", tmp_path).visible is False
    pipe = FakePipeline()
    pipe.high_noise_expert = (object(), 0.99)
    shown = settings_box(pipe, "high-noise-expert", tmp_path)
    assert shown.visible is True and shown.value is True  # on by default, as the model samples


def test_the_moving_noise_box_shows_only_for_a_model_that_samples_with_it(tmp_path):
    from uvigu.testing import tiny_pipeline

    assert settings_box(FakePipeline(), "moving-noise", tmp_path).visible is False
    assert settings_box(tiny_pipeline(), "moving-noise", tmp_path).visible is False  # motion_noise 0
    pipe = FakePipeline()
    pipe.config = SimpleNamespace(motion_noise=0.35)
    shown = settings_box(pipe, "moving-noise", tmp_path)
    assert shown.visible is True and shown.value is True  # on by default, as the model samples
    assert "each object's path" not in shown.info
    assert "own prompt" not in shown.info
    pipe.config = SimpleNamespace(motion_noise=0.35, motion_noise_paths=1.0)  # and along paths a draft shows
    info = settings_box(pipe, "moving-noise", tmp_path).info
    assert "along each object's path" in info and "own prompt" not in info
    pipe.config = SimpleNamespace(motion_noise=0.35, motion_noise_paths=1.0, object_guidance=1.0)  # each guided
    info = settings_box(pipe, "moving-noise", tmp_path).info
    assert "along each object's path and each object's own prompt guides its path" in info
    assert "Untick to start from plain noise, guided by the whole prompt alone." in info
