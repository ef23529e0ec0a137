"""Handlers translate UI values to studio calls and back; checked against a fake studio."""

import dataclasses
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import gradio as gr
import numpy as np
import pytest

from ui import text
from ui.handlers import CONFIRM_OUTPUTS, HISTORY_OUTPUTS, TAKE_OUTPUTS, TRAJECTORY_OUTPUTS, Handlers
from ui.text import history
from uvigu import Cancelled
from uvigu.eval.grammar import corrected_caption, prompt_notes
from uvigu.judge import read_back
from uvigu.studio import OutOfMemory, ProgressEvent, StudioBusy, Take

RUN_OUTPUTS = 2 + len(TAKE_OUTPUTS) + len(HISTORY_OUTPUTS) + len(TRAJECTORY_OUTPUTS)


class FakeJob:
    def __init__(self, result=None, error=None, events=()):
        self._result, self._error, self._events = result, error, list(events)

    def events(self):
        yield from self._events

    def result(self, timeout=None):
        if self._error is not None:
            raise self._error
        return self._result


@dataclass
class FakeStudio:
    """Records calls; ``next_job`` is what the next submit returns, ``fail`` what it raises."""

    takes_: list = field(default_factory=list)
    calls: list = field(default_factory=list)
    next_job: FakeJob | None = None
    jobs: list = field(default_factory=list)  # taken in turn by the submits before next_job
    fail: Exception | None = None
    fail_after: int | None = None  # submits that succeed before ``fail`` is raised
    has_expert: bool = False  # the model has a high-noise expert
    settings: SimpleNamespace = field(
        default_factory=lambda: SimpleNamespace(max_seed=2**31 - 1, max_jobs_per_session=4))

    def open_session(self, token):
        return token if token == "tok" else "tok"

    def takes(self, token):
        return list(self.takes_)

    def take(self, token, take_id):
        for take in self.takes_:
            if take.id == take_id:
                return take
        raise ValueError("No such take in this session.")

    def clip_path(self, token, take_id):
        return f"/clips/{take_id}.mp4"

    def thumbnail_path(self, token, take_id):
        return f"/thumbs/{take_id}.png"

    def trajectory(self, token):
        return None

    def unknown_words(self, text):
        return [w for w in text.split() if w.startswith("zz")]

    def text_length(self, text):
        return len(text.split()), 6

    def prompt_notes(self, text):  # as the shipped model notes them
        return prompt_notes(text)

    def read_back(self, prompt, caption):  # as the shipped model reads them
        return read_back("shapes", prompt, caption) if prompt.strip() else None

    def corrected_caption(self, prompt, caption):  # as the shipped model corrects them
        return corrected_caption(prompt, caption) if prompt.strip() else None

    def cancel(self, token):
        self.calls.append(("cancel", token))
        return 1

    def set_critique(self, token, take_id, critique):
        self.calls.append(("set_critique", take_id, critique))

    def has_session(self, token):
        return token == "tok"

    def delete_takes(self, token, take_ids=None):
        ids = [t.id for t in self.takes_] if take_ids is None else take_ids
        self.calls.append(("delete", token, list(ids)))
        self.takes_ = [t for t in self.takes_ if t.id not in ids]
        return len(ids)

    def export_session(self, token):
        return "/exports/session.zip"

    def import_session(self, token, path):
        self.calls.append(("import", token, path))
        if self.fail is not None:
            raise self.fail
        added = [make_take(seq=len(self.takes_) + 1 + i, prompt=f"imported {i}") for i in range(2)]
        self.takes_ += added
        return added

    def model_defaults(self):
        return SimpleNamespace(edit_strength=0.6, keep_rest_strength=0.9, num_frames=16, fps=8,
                               high_noise_expert=self.has_expert)

    def caption_follows_grammar(self, caption):
        return None if caption is None else not caption.startswith("zz")

    def upload_length(self, video):
        if video.endswith(".txt"):
            raise ValueError("notes.txt is not a video file ffmpeg can read")
        return 83.46

    def _submit(self, name, *args, **kwargs):
        self.calls.append((name, args, kwargs))
        if self.fail is not None and (self.fail_after is None or len(self.calls) > self.fail_after):
            raise self.fail
        return self.jobs.pop(0) if self.jobs else self.next_job

    def submit_generate(self, token, prompt, **kwargs):
        return self._submit("generate", token, prompt, **kwargs)

    def submit_edit(self, token, take_id, prompt, **kwargs):
        return self._submit("edit", token, take_id, prompt, **kwargs)

    def submit_caption_upload(self, token, video, **kwargs):
        return self._submit("caption", token, video, **kwargs)

    def submit_edit_upload(self, token, video, prompt, **kwargs):
        return self._submit("edit_upload", token, video, prompt, **kwargs)

    def submit_caption_timeline(self, token, video, **kwargs):
        return self._submit("timeline", token, video, **kwargs)

    def take_gif(self, token, take_id):
        self.calls.append(("gif", (token, take_id), {}))
        path = Path(tempfile.mkdtemp()) / f"uvigu-take-{take_id}.gif"
        path.write_bytes(b"GIF89a")
        return path

    def trajectory_png(self, token):
        self.calls.append(("trajectory_png", (token,), {}))
        if token != "tok":
            raise ValueError("nothing to show yet: generate or caption a clip first.")
        path = Path(tempfile.mkdtemp()) / "uvigu-steps-3.png"
        path.write_bytes(b"\x89PNG")
        return path


def final(outputs):
    """The last outputs a streaming handler yields (it yields once per take)."""
    *_, last = outputs
    return last


def make_take(seq=1, mode="generate", **kw):
    defaults = dict(id=f"{seq:016x}", seq=seq, parent_id=None, mode=mode, prompt="a red circle",
                    caption="a red circle moves right", critique="", seed=42,
                    timings={"generate": 1.0, "caption": 0.5})
    return Take(**{**defaults, **kw})


class Progress:
    def __init__(self):
        self.calls = []

    def __call__(self, value, desc=None, unit="steps", **kwargs):
        self.calls.append((value, desc))


@pytest.fixture
def studio():
    return FakeStudio()


def test_generate_passes_settings_and_returns_the_new_take(studio):
    take = make_take(unknown_words=("zzfoo",))
    studio.takes_ = [take]
    studio.next_job = FakeJob(take, events=[ProgressEvent("Generating video", 0, 2),
                                            ProgressEvent("Generating video", 1, 2)])
    progress = Progress()
    out = final(Handlers(studio).generate("a red circle", "joint", 7.0, False, 12.0, 4.5, None, progress))

    assert studio.calls == [("generate", ("tok", "a red circle"), {
        "mode": "joint", "seed": 7, "num_inference_steps": 12, "guidance_scale": 4.5, "best_of": 1,
        "high_noise_expert": True, "moving_noise": True})]
    assert len(out) == RUN_OUTPUTS
    token, seed, *rest = out
    view = dict(zip(TAKE_OUTPUTS, rest))
    assert (token, seed) == ("tok", 42)
    assert view["video"] == f"/clips/{take.id}.mp4"
    assert view["caption"] == view["edited"] == "a red circle moves right"
    assert "zzfoo" in view["unknown"] and view["current"] == take.id
    assert progress.calls[1:] == [((1, 2), "Generating video"), ((2, 2), "Generating video")]


def test_tries_per_take_are_passed_on_and_listed_in_history(studio):
    tries = [{"seed": 7, "score": 0.3333, "caption": "a red circle moves left"},
             {"seed": 8, "score": 1.0, "caption": "a red circle moves right"}]
    take = make_take(seed=8, settings={"best_of": 2, "tries": tries})
    studio.takes_ = [take]
    studio.next_job = FakeJob(take)
    out = final(Handlers(studio).generate("a red circle", "generate", 7.0, False, 12.0, 4.5, None, Progress(), 1, 2.0))
    assert studio.calls[0][2]["best_of"] == 2
    timeline = out[2 + len(TAKE_OUTPUTS) + 1]
    assert "· generated, best of 2 tries · seed 8" in timeline
    assert ("- Tries, each read by the model and scored against the prompt (a try's seed, with *Tries per take* "
            "at 1, makes that try again):\n"
            "  - seed 7 · 0.33 · “a red circle moves left”\n"
            "  - seed 8 · 1.00 · “a red circle moves right” (kept)\n") in timeline
    # an edit's tries are scored against its edited caption; a record without captions lists seeds and scores
    edit = make_take(seq=2, mode="edit", seed=7, settings={"best_of": 2, "tries": [
        {"seed": 7, "score": 0.5}, {"seed": 8, "score": 0.25}]})
    timeline = history([take, edit])
    assert "scored against the edited caption" in timeline
    assert "  - seed 7 · 0.50 (kept)\n  - seed 8 · 0.25\n" in timeline
    with pytest.raises(gr.Error, match="number of tries must be a whole number"):
        final(Handlers(studio).generate("a red circle", "generate", 7.0, False, 12.0, 4.5, None, Progress(), 1, 1.5))


def test_the_high_noise_expert_box_is_passed_on_and_a_take_without_it_says_so_in_history(studio):
    take = make_take(seed=8, settings={"high_noise_expert": False})
    studio.takes_ = [take]
    studio.next_job = FakeJob(take)
    out = final(Handlers(studio).generate("a red circle", "generate", 7.0, False, 12.0, 4.5, None, Progress(), 1, 1,
                                          False))
    assert studio.calls[0][2]["high_noise_expert"] is False
    assert "· generated, without the high-noise expert · seed 8" in out[2 + len(TAKE_OUTPUTS) + 1]
    studio.next_job = FakeJob(make_take(2, mode="edit", parent_id=take.id))
    final(Handlers(studio).regenerate(take.id, "a blue circle", "", 1.0, False, 3, False, 8, 2.0, "tok", Progress(),
                                      1, 1, False))
    assert studio.calls[-1][0] == "edit" and studio.calls[-1][2]["high_noise_expert"] is False
    assert "without the high-noise expert" not in history([make_take(seed=8)])  # with it, the default


def test_the_moving_noise_box_is_passed_on_and_a_take_without_it_says_so_in_history(studio):
    take = make_take(seed=8, settings={"motion_noise": 0.0})
    studio.takes_ = [take]
    studio.next_job = FakeJob(take)
    out = final(Handlers(studio).generate("a red circle moving up", "generate", 7.0, False, 12.0, 4.5, None,
                                          Progress(), 1, 1, True, False))
    assert studio.calls[0][2]["moving_noise"] is False and studio.calls[0][2]["high_noise_expert"] is True
    assert "· generated, without moving noise · seed 8" in out[2 + len(TAKE_OUTPUTS) + 1]
    assert "without moving noise" not in history([make_take(seed=8)])  # with it, the default
    assert "without moving noise" not in history([make_take(seed=8, settings={"motion_noise": 0.35})])


def test_a_take_whose_caption_names_no_object_says_what_to_try(studio):
    empty = make_take(prompt="a yellow triangle moving left on a black background", caption="a black")
    named = make_take(seq=2, prompt=empty.prompt, caption="a large red square moves slowly down from the center.")
    studio.takes_ = [empty, named]
    view = lambda i: dict(zip(TAKE_OUTPUTS, Handlers(studio).open_take("tok", SimpleNamespace(index=i))))  # noqa: E731
    assert view(0)["read_back"].endswith("\n\n" + text.EMPTY_CLIP + ".")
    assert text.EMPTY_CLIP not in view(1)["read_back"]  # it names an object, if not the one asked for
    studio.has_expert = True  # the model's high-noise expert made the clip's first step: untick it, says the line
    assert view(0)["read_back"].endswith("\n\n" + text.EMPTY_CLIP + text.EMPTY_CLIP_EXPERT + ".")
    studio.takes_ = [dataclasses.replace(empty, settings={"high_noise_expert": False}), named]
    assert view(0)["read_back"].endswith(text.EMPTY_CLIP + ".")  # made without it
    studio.takes_ = [dataclasses.replace(empty, mode="joint"), named]
    assert text.EMPTY_CLIP not in view(0)["read_back"]  # a caption written with its clip, from the prompt


def test_the_take_says_what_its_caption_says_of_each_thing_asked_for(studio):
    made = make_take(prompt="a red circle moving right and a blue square moving up",
                     caption="a large red square moves slowly down from the center, while a small blue square moves "
                             "quickly up from the left on a gray background.")
    studio.takes_ = [made]
    studio.next_job = FakeJob(made)
    _, _, *rest = final(Handlers(studio).generate(made.prompt, "generate", 1, False, 4, 3, "tok", Progress()))
    assert dict(zip(TAKE_OUTPUTS, rest))["read_back"] == (
        "**Round trip: what you asked, in the model's caption of its clip**: 1 of 2 objects as asked.\n\n"
        "- red circle moving right: **square** instead of circle, **moving down** instead of moving right\n"
        "- blue square moving up: as asked")
    # An edit is read against its edited caption; a caption of an upload asked for nothing.
    edit = make_take(seq=2, mode="edit", prompt="a small green circle moves quickly to the left from the right on a "
                     "gray background.", caption="a small green circle moves slowly to the left from the top.")
    upload = make_take(seq=3, mode="caption", prompt="", caption="a small green circle moves slowly up.")
    studio.takes_ = [made, edit, upload]
    views = [dict(zip(TAKE_OUTPUTS, Handlers(studio).open_take("tok", SimpleNamespace(index=i)))) for i in (1, 2)]
    assert views[0]["read_back"] == ("**Your edit, in the model's caption of the new clip**: 1 of 1 object as "
                                     "asked; background not as asked.\n\n- green circle moving left: as asked\n"
                                     "- gray background: **no background** instead of gray")
    assert views[1]["read_back"] == ""
    # History says it too, after each model caption
    timeline = Handlers(studio)._history_view("tok")[1]
    assert ("- Model's caption: a large red square moves slowly down from the center, while a small blue square "
            "moves quickly up from the left on a gray background. (1 of 2 objects as asked)\n") in timeline
    assert ("- Model's caption: a small green circle moves slowly to the left from the top. (1 of 1 object as asked; "
            "background not as asked)\n") in timeline
    assert "- Model's caption: a small green circle moves slowly up.\n" in timeline  # an upload: nothing asked


def test_the_take_names_what_its_caption_shows_that_was_not_asked_for(studio, monkeypatch):
    said = []
    monkeypatch.setattr(gr, "Info", said.append)
    made = make_take(prompt="a red circle moving right", caption="a large red circle moves slowly to the right from "
                     "the center, while a small blue square moves quickly up from the left on a gray background.")
    studio.takes_ = [made]
    view = dict(zip(TAKE_OUTPUTS, Handlers(studio).open_take("tok", SimpleNamespace(index=0))))
    assert view["read_back"] == (
        "**Round trip: what you asked, in the model's caption of its clip**: 1 of 1 object as asked; 1 object not "
        "asked for.\n\n- red circle moving right: as asked\n- blue square moving up: **not asked for**")
    assert "(1 of 1 object as asked; 1 object not asked for)" in Handlers(studio)._history_view("tok")[1]
    # what was asked is all there: nothing for Ask for what it missed to add
    assert isinstance(Handlers(studio).ask_for_misses(made.id, "tok"), type(gr.skip()))
    assert said == [text.NOTHING_MISSED]


def test_ask_for_what_it_missed_fills_the_edited_caption_with_the_corrected_caption(studio, monkeypatch):
    said = []
    monkeypatch.setattr(gr, "Info", said.append)
    made = make_take(prompt="a red circle moving right", caption="a large red square moves slowly down from the "
                     "center on a gray background.")
    kept = make_take(seq=2, prompt="a red circle moving right", caption="a large red circle moves slowly to the "
                     "right from the center on a gray background.")
    upload = make_take(seq=3, mode="caption", prompt="", caption=kept.caption)
    odd = make_take(seq=4, prompt="a red circle moving right", caption="a red circle goes somewhere")
    dark = make_take(seq=5, prompt="a red circle moving right on a black background", caption=kept.caption)
    studio.takes_ = [made, kept, upload, odd, dark]
    handlers = Handlers(studio)
    assert handlers.ask_for_misses(made.id, "tok") == ("a large red circle moves slowly to the right from the center "
                                                       "on a gray background.")
    # the objects as asked but not the background: the caption asks for the background
    assert handlers.ask_for_misses(dark.id, "tok") == ("a large red circle moves slowly to the right from the center "
                                                       "on a black background.")
    # each correction comes with a word of caution: the caption it corrects can be the one that is wrong
    assert said == [text.ASKED_FOR_MISSES] * 2 and "can misread the clip" in said[0]
    for take, message in ((kept, "already says everything you asked"), (upload, "nothing was asked of it"),
                          (odd, "cannot be corrected word for word")):
        assert isinstance(handlers.ask_for_misses(take.id, "tok"), type(gr.skip()))  # the box is left as it is
        assert message in said[-1]
    with pytest.raises(gr.Error, match="no take yet"):
        handlers.ask_for_misses(None, "tok")


def test_randomize_sends_no_seed(studio):
    studio.next_job = FakeJob(make_take())
    final(Handlers(studio).generate("a red circle", "generate", 7, True, 4, 3, "tok", Progress()))
    assert studio.calls[0][2]["seed"] is None and studio.calls[0][2]["best_of"] == 1
    Handlers(studio).api_generate("a red circle", 5, 4, 3.0, 2.0, None, None, None)
    assert studio.calls[1][2]["best_of"] == 2


@pytest.mark.parametrize("error, title", [
    (ValueError("the prompt is empty: describe the clip."), "Please check the input"),
    (StudioBusy("The studio is busy (16 jobs waiting); try again in a minute."), "The studio is busy"),
])
def test_studio_messages_become_gradio_errors(studio, error, title):
    studio.fail = error
    with pytest.raises(gr.Error) as raised:
        final(Handlers(studio).generate("", "generate", 0, True, 4, 3, "tok", Progress()))
    assert raised.value.message == str(error)[:1].upper() + str(error)[1:]
    assert raised.value.title == title


def test_errors_raised_while_running_also_become_gradio_errors(studio):
    studio.next_job = FakeJob(error=ValueError("the prompt is 60 tokens long; this model reads at most 47."))
    with pytest.raises(gr.Error, match="The prompt is 60 tokens long"):
        final(Handlers(studio).generate("x", "generate", 0, True, 4, 3, "tok", Progress()))


def test_a_full_disk_is_said_plainly_and_the_earlier_takes_are_kept(tmp_path, monkeypatch, caplog):
    import errno

    import numpy as np

    from uvigu.studio import Studio, StudioSettings
    from uvigu.testing import tiny_pipeline

    studio = Studio(tiny_pipeline(), StudioSettings(data_dir=tmp_path / "data"))
    try:
        handlers = Handlers(studio)
        token, *_ = final(handlers.generate("a red circle", "generate", 1, False, 2, 3, None, Progress()))

        def full(*args, **kwargs):
            raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "data" / "take.npy"))

        monkeypatch.setattr(np, "save", full)
        with caplog.at_level("ERROR", logger="ui.handlers"), pytest.raises(gr.Error) as raised:
            final(handlers.generate("a blue square", "generate", 2, False, 2, 3, token, Progress()))
        assert raised.value.title == "The studio could not save"
        assert "(No space left on device)" in raised.value.message and "takes already saved" in raised.value.message
        assert str(tmp_path) not in raised.value.message  # no host paths in the browser
        assert any(record.exc_info for record in caplog.records)  # the operator gets the traceback
        assert [t.prompt for t in studio.takes(token)] == ["a red circle"]
        assert not list((tmp_path / "data").rglob(".staging-*"))
    finally:
        studio.close()


def test_running_out_of_memory_is_said_plainly(studio):
    studio.next_job = FakeJob(error=OutOfMemory("CUDA out of memory. Tried to allocate 2.00 GiB"))
    with pytest.raises(gr.Error) as raised:
        final(Handlers(studio).generate("x", "generate", 0, True, 4, 3, "tok", Progress(), 4, 1))
    assert raised.value.title == "Out of memory" and "fewer takes per click" in raised.value.message


def test_a_fractional_seed_is_refused(studio):
    with pytest.raises(gr.Error, match="seed must be a whole number"):
        final(Handlers(studio).generate("a", "generate", 1.5, False, 4, 3, "tok", Progress()))


def test_a_stopped_run_changes_nothing_on_the_page(studio):
    studio.next_job = FakeJob(error=Cancelled())
    out = final(Handlers(studio).generate("a red circle", "generate", 0, True, 4, 3, "tok", Progress()))
    assert len(out) == RUN_OUTPUTS
    assert all(isinstance(value, type(gr.skip())) for value in out)


def test_several_takes_per_click_use_seeds_one_apart(studio):
    takes = [make_take(seq=i, seed=7 + i - 1) for i in (1, 2, 3)]
    studio.takes_ = takes
    studio.jobs = [FakeJob(t, events=[ProgressEvent("Generating video", 0, 1)]) for t in takes]
    progress = Progress()
    outputs = list(Handlers(studio).generate("a red circle", "generate", 7, False, 4, 3, "tok", progress, count=3))
    assert [call[2]["seed"] for call in studio.calls] == [7, 8, 9]  # all queued at once
    assert len(outputs) == 3  # the page shows each take as it is made
    for take, (token, seed, *rest) in zip(takes, outputs):
        view = dict(zip(TAKE_OUTPUTS + HISTORY_OUTPUTS, rest))
        assert seed == 7 and view["current"] == take.id
    assert [desc for _, desc in progress.calls] == [
        f"Take {i} of 3 · {stage}" for i in (1, 2, 3) for stage in ("Waiting for the model…", "Generating video")]


def test_randomized_takes_per_click_draw_one_seed_and_count_on_from_it(studio):
    studio.jobs = [FakeJob(make_take(seq=1, seed=100)), FakeJob(make_take(seq=2, seed=101))]
    studio.settings.max_seed = 3  # the seeds wrap around past the largest
    final(Handlers(studio).regenerate(make_take().id, "a blue circle", "", 0.6, False, 0, True, 4, 3, "tok", Progress(),
                                count=2))
    first, second = (call[2]["seed"] for call in studio.calls if call[0] == "edit")
    assert 0 <= first <= 3 and second == (first + 1) % 4


def test_stopping_a_batch_keeps_the_takes_already_made(studio, monkeypatch):
    infos = []
    monkeypatch.setattr(gr, "Info", infos.append)
    made = make_take(seq=1, seed=5)
    studio.takes_ = [made]
    studio.jobs = [FakeJob(made), FakeJob(error=Cancelled()), FakeJob(error=Cancelled())]
    outputs = list(Handlers(studio).generate("a red circle", "generate", 5, False, 4, 3, "tok", Progress(), count=3))
    assert len(outputs) == 1
    token, seed, *rest = outputs[0]
    assert seed == 5 and dict(zip(TAKE_OUTPUTS, rest))["current"] == made.id
    assert infos == ["Stopped. The 1 take already made is kept; the rest were not made."]


def test_a_batch_the_queue_cannot_hold_is_not_started(studio):
    studio.fail, studio.fail_after = StudioBusy("The studio is busy (16 jobs waiting)."), 2
    studio.next_job = FakeJob(make_take())
    with pytest.raises(gr.Error, match="busy"):
        final(Handlers(studio).generate("a red circle", "generate", 5, False, 4, 3, "tok", Progress(), count=3))
    assert studio.calls[-1] == ("cancel", "tok")  # the two already queued are dropped


def test_takes_per_click_stay_within_the_session_s_job_limit(studio):
    with pytest.raises(gr.Error, match="number of takes must be from 1 to 4, not 5"):
        final(Handlers(studio).generate("a red circle", "generate", 5, False, 4, 3, "tok", Progress(), count=5))
    assert studio.calls == []


def test_stop_cancels_the_sessions_jobs(studio):
    Handlers(studio).stop("tok")
    assert studio.calls == [("cancel", "tok")]


def test_regenerate_saves_the_critique_then_edits_from_the_current_take(studio):
    parent = make_take(1)
    child = make_take(2, mode="edit", prompt="a blue circle", parent_id=parent.id)
    studio.takes_ = [parent, child]
    studio.next_job = FakeJob(child)
    out = final(Handlers(studio).regenerate(parent.id, "a blue circle", "too red", 0.4, False, 3, False, 8, 2.0,
                                      "tok", Progress(), 1, 3))
    assert studio.calls == [
        ("set_critique", parent.id, "too red"),
        ("edit", ("tok", parent.id, "a blue circle"),
         {"strength": 0.4, "keep_rest": False, "seed": 3, "num_inference_steps": 8, "guidance_scale": 2.0,
          "best_of": 3, "high_noise_expert": True}),
    ]
    timeline = out[2 + len(TAKE_OUTPUTS) + 1]
    assert "#2** · regenerated with edits from #1" in timeline
    assert "Edited caption: a blue circle" in timeline


def test_regenerate_without_a_take_says_what_to_do(studio):
    with pytest.raises(gr.Error, match="generate a clip first"):
        final(Handlers(studio).regenerate(None, "a", "", 0.5, False, 0, True, 4, 3, "tok", Progress()))


def test_keeping_the_rest_is_passed_on_shown_in_history_and_sets_its_strength(studio):
    parent = make_take(1)
    child = make_take(2, mode="edit", prompt="a blue circle", parent_id=parent.id,
                      settings={"strength": 0.9, "keep_rest": True})
    studio.takes_ = [parent, child]
    studio.next_job = FakeJob(child)
    handlers = Handlers(studio)
    out = final(handlers.regenerate(parent.id, "a blue circle", "", 0.9, True, 0, True, 8, 3.0, "tok", Progress()))
    assert studio.calls[-1][2]["keep_rest"] is True
    assert "#2** · regenerated with edits from #1, keeping the rest · seed" in out[2 + len(TAKE_OUTPUTS) + 1]
    assert (handlers.keep_rest_strength(True), handlers.keep_rest_strength(False)) == (0.9, 0.6)


def test_the_edit_endpoint_passes_the_text_before_the_change_and_leaves_blanks_to_the_model(studio):
    studio.next_job = FakeJob(make_take(mode="edit"))
    handlers = Handlers(studio)
    handlers.api_edit("/uploads/clip.mp4", "a blue circle", None, -1, "  a red circle ", None, None, None, "tok")
    handlers.api_edit("/uploads/clip.mp4", "a blue circle", 0.5, 7, "", 3.0, 1.5, False, "tok")
    assert [call[2] for call in studio.calls] == [
        {"strength": None, "source_prompt": "a red circle", "seed": None, "best_of": 1, "start_s": None,
         "high_noise_expert": True},
        {"strength": 0.5, "source_prompt": None, "seed": 7, "best_of": 3, "start_s": 1.5, "high_noise_expert": False},
    ]


def test_save_as_gif_shows_the_open_takes_gif_and_needs_a_take(studio):
    handlers = Handlers(studio)
    shown = handlers.gif("00000000000000a1", "tok")
    assert (shown.value["path"] if isinstance(shown.value, dict) else shown.value).endswith("uvigu-take-00000000000000a1.gif")
    assert shown.visible and studio.calls == [("gif", ("tok", "00000000000000a1"), {})]
    with pytest.raises(gr.Error, match="no take to save yet"):
        handlers.gif(None, "tok")


def test_a_step_of_the_trajectory_names_the_take_whose_run_it_is(studio, monkeypatch):
    # Another take may be open in the Studio tab: the Trajectory tab says which take's run it shows.
    from uvigu.studio import Trajectory, TrajectoryFrame

    studio.takes_ = [make_take(1), make_take(2)]
    frames = np.zeros((2, 8, 8, 3), np.uint8)
    steps = (TrajectoryFrame("generate", 1.0, frames, None), TrajectoryFrame("caption", 0.25, frames, "a red _"))
    monkeypatch.setattr(studio, "trajectory", lambda token: Trajectory(make_take(2).id, steps), raising=False)
    monkeypatch.setattr(studio, "trajectory_clip", lambda token, index: ("/steps/x.mp4", steps[index]), raising=False)
    handlers = Handlers(studio)
    _, info, path, text = handlers.trajectory_step(1, "tok")
    assert info == "Take #2, step 1 · denoising the text (caption) · σ = 0.250" and text == "a red _"
    slider, info, _, text = handlers._trajectory_view("tok")  # as a finished run shows it: its last step
    assert slider.maximum == 1 and info.startswith("Take #2, step 1 ·")


def test_the_steps_are_saved_as_a_picture_under_the_trajectory(studio):
    handlers = Handlers(studio)
    shown = handlers.trajectory_png("tok")
    assert (shown.value["path"] if isinstance(shown.value, dict) else shown.value).endswith("uvigu-steps-3.png")
    assert shown.visible and studio.calls == [("trajectory_png", ("tok",), {})]
    with pytest.raises(gr.Error, match="Nothing to show yet"):
        handlers.trajectory_png("another")


def test_a_timeline_shows_as_a_table_with_its_subtitles(studio, tmp_path):
    from uvigu.studio import Timeline
    from uvigu.timeline import Cue

    srt = tmp_path / "clip.srt"
    srt.write_text("1\n00:00:00,000 --> 00:00:02,000\na red circle\n")
    studio.next_job = FakeJob(Timeline([Cue(0, 2, "a red circle"), Cue(2, 3.5, "a *blue* square")], srt))
    token, table, file = Handlers(studio).understand_timeline("/uploads/clip.mp4", 0, 2, "tok", Progress())
    assert studio.calls[0][1:] == (("tok", "/uploads/clip.mp4"), {"every_s": 2, "start_s": 0})
    assert table.splitlines()[2:] == ["| 0:00.0–0:02.0 | a red circle |", "| 0:02.0–0:03.5 | a \\*blue\\* square |"]
    assert file.visible and token == "tok"


def test_a_new_upload_resets_the_start_says_how_long_it_lasts_and_clears_the_last_reading(studio):
    handlers = Handlers(studio)
    start, caption, notes, clip, table, srt = handlers.upload_changed("/uploads/clip.mp4")
    assert start.value == 0 and start.info == "Your clip lasts 1:23.5; the model takes 2 s of it from here."
    assert (caption, notes, clip, table) == ("", "", None, "") and srt.visible is False and srt.value is None
    start, *_ = handlers.upload_changed("/uploads/notes.txt")  # told on upload, before any click
    assert start.info == "⚠️ notes.txt is not a video file ffmpeg can read"
    start, *_ = handlers.upload_changed(None)  # the clip removed
    assert start.value == 0 and start.info == "The model takes its clip length from here."


def test_a_timeline_without_a_time_between_captions_takes_the_default(studio, tmp_path):
    from uvigu.studio import Timeline

    (srt := tmp_path / "clip.srt").write_text("")
    studio.next_job = FakeJob(Timeline([], srt))
    Handlers(studio).understand_timeline("/uploads/clip.mp4", None, None, "tok", Progress())
    assert studio.calls[0][2] == {"every_s": 2.0, "start_s": None}


def test_the_caption_endpoint_passes_the_start_time(studio):
    take = make_take(mode="caption", prompt="")
    studio.next_job = FakeJob(take)
    assert Handlers(studio).api_caption("/uploads/clip.mp4", 4.0, "tok") == (take.caption, "tok")
    assert studio.calls[0][1:] == (("tok", "/uploads/clip.mp4"), {"start_s": 4.0})


def test_understand_reports_what_was_changed_to_fit(studio):
    take = make_take(mode="caption", prompt="", notes=("resampled 30 fps → 8 fps",))
    studio.next_job = FakeJob(take)
    out = Handlers(studio).understand("/uploads/clip.mp4", 2.5, "tok", Progress())
    assert out[1] == take.caption
    assert out[2] == "Fitted to the model: resampled 30 fps → 8 fps."
    assert out[3] == f"/clips/{take.id}.mp4"  # the clip the model read, beside its caption
    assert studio.calls[0][1:] == (("tok", "/uploads/clip.mp4"), {"start_s": 2.5})


def test_understand_says_when_the_caption_does_not_follow_the_models_grammar(studio):
    studio.next_job = FakeJob(make_take(mode="caption", prompt="", caption="zz gray gray gray"))
    notes = Handlers(studio).understand("/uploads/clip.mp4", 0, "tok", Progress())[2]
    assert notes.endswith("\n\n⚠️ This caption does not follow the grammar the model writes: your clip is probably "
                          "unlike the footage it learned from (see *What this model knows* in the Studio tab).")
    studio.next_job = FakeJob(make_take(mode="caption", prompt=""))  # a caption of the grammar
    assert "⚠️" not in Handlers(studio).understand("/uploads/clip.mp4", 0, "tok", Progress())[2]


def test_history_lists_takes_newest_first_with_thumbnails(studio):
    studio.takes_ = [make_take(1, critique="more *speed*"), make_take(2, mode="edit", prompt="a blue circle",
                                                                   parent_id=make_take(1).id)]
    gallery, timeline = Handlers(studio)._history_view("tok")
    assert gallery == [(f"/thumbs/{make_take(1).id}.png", "#1 · generated"),
                       (f"/thumbs/{make_take(2).id}.png", "#2 · regenerated with edits")]
    assert timeline.index("**#2**") < timeline.index("**#1**")
    assert "Critique: more \\*speed\\*" in timeline  # visitor text is escaped, not rendered


def test_opening_a_take_from_history(studio):
    studio.takes_ = [make_take(1), make_take(2)]
    evt = gr.SelectData(None, {"index": 1, "value": None})
    view = dict(zip(TAKE_OUTPUTS, Handlers(studio).open_take("tok", evt)))
    assert view["current"] == make_take(2).id


def test_diff_and_word_check_are_plain_text_functions(studio):
    handlers = Handlers(studio)
    assert handlers.diff("a red circle", "a blue circle") == [("a", None), ("red", "-"), ("blue", "+"), ("circle", None)]
    assert handlers.check_words("a red circle") == "3 / 6 tokens"
    warning = handlers.check_words("a zzfoo circle")
    assert "“zzfoo”" in warning and warning.endswith("3 / 6 tokens")
    too_long = handlers.check_words("a red circle and a blue square")
    assert too_long.startswith("⚠️ **7 / 6 tokens**") and "reads at most 6; shorten it" in too_long
    assert handlers.check_words("") == handlers.check_words(None) == handlers.check_words("   ") == ""
    # what the text asks beyond the clips the model learned, before its length
    assert handlers.check_words("red circle, red square") == (
        "ℹ️ More than one red object asked for; no two objects of the clips the model learned share a colour.\n\n"
        "4 / 6 tokens")
    assert handlers.check_words("a purple triangle").startswith("ℹ️ The model never saw a purple triangle in training")


def test_an_edit_shows_the_clip_it_was_made_from_beside_it(studio):
    root = make_take(seq=1)
    child = make_take(seq=2, mode="edit", parent_id=root.id)
    orphan = make_take(seq=3, mode="edit", parent_id="f" * 16)  # its parent is not in the session
    studio.takes_ = [root, child, orphan]
    handlers = Handlers(studio)

    def before(index):
        evt = SimpleNamespace(index=index)
        return dict(zip(TAKE_OUTPUTS, handlers.open_take("tok", evt)))["before"]

    shown = before(1)
    assert shown.visible is True and shown.value["path"] == f"/clips/{root.id}.mp4"
    assert shown.label == "Before: take #1"
    assert before(0).visible is False and before(2).visible is False


def test_import_adds_the_takes_and_opens_the_last_one(studio, monkeypatch):
    infos = []
    monkeypatch.setattr(gr, "Info", infos.append)
    studio.takes_ = [make_take()]
    out = Handlers(studio).import_session("/uploads/session.zip", None)
    assert studio.calls == [("import", "tok", "/uploads/session.zip")]
    assert len(out) == 1 + len(TAKE_OUTPUTS) + len(HISTORY_OUTPUTS) + 1
    token, *rest, emptied = out
    view = dict(zip(TAKE_OUTPUTS + HISTORY_OUTPUTS, rest))
    assert token == "tok" and emptied is None
    assert "Take #3" in view["take_title"] and view["edited"] == studio.takes_[2].caption
    assert len(view["gallery"]) == 3 and "imported 1" in view["timeline"]
    assert infos == ["Imported 2 takes."]


def test_a_refused_import_shows_the_reason(studio):
    studio.fail = ValueError("the file notes.zip is not a zip file; choose a session export (.zip).")
    with pytest.raises(gr.Error, match="The file notes.zip is not a zip file"):
        Handlers(studio).import_session("/uploads/notes.zip", "tok")


def test_restore_starts_a_session_for_a_new_browser(studio):
    token, *rest = Handlers(studio).restore(None)
    assert token == "tok" and "No take yet" in rest[0]


def test_api_generate_returns_clip_caption_and_seed(studio):
    take = make_take()
    studio.next_job = FakeJob(take)
    clip, caption, seed, token = Handlers(studio).api_generate("a red circle", -1, 4, 3.0, None, None, None, None)
    assert (clip, caption, seed) == (f"/clips/{take.id}.mp4", take.caption, 42)
    first = studio.calls[0][2]
    assert first["seed"] is None and first["high_noise_expert"] is True and first["moving_noise"] is True  # blank: on
    Handlers(studio).api_generate("a red circle", 3, 4, 3.0, None, False, None, None)
    assert studio.calls[1][2]["high_noise_expert"] is False and studio.calls[1][2]["moving_noise"] is True
    Handlers(studio).api_generate("a red circle", 3, 4, 3.0, None, None, False, None)
    assert studio.calls[2][2]["high_noise_expert"] is True and studio.calls[2][2]["moving_noise"] is False


# -- deleting takes ----------------------------------------------------------------------------

DELETE_OUTPUTS = TAKE_OUTPUTS + HISTORY_OUTPUTS + TRAJECTORY_OUTPUTS + CONFIRM_OUTPUTS


def test_deleting_the_open_take_asks_first_then_opens_the_take_before_it(studio, monkeypatch):
    infos = []
    monkeypatch.setattr(gr, "Info", infos.append)
    one, two, three = make_take(1), make_take(2, mode="edit", parent_id=make_take(1).id), make_take(3)
    studio.takes_ = [one, two, three]
    handlers = Handlers(studio)
    asked = dict(zip(CONFIRM_OUTPUTS, handlers.ask_delete_take(one.id, "tok")))
    assert asked["delete_take_panel"].visible is True and asked["delete_all_panel"].visible is False
    assert "Delete take #1" in asked["delete_take_question"]
    assert "The 1 take made from it stays." in asked["delete_take_question"]
    assert asked["delete_target"] == [one.id] and studio.calls == []  # nothing deleted by asking

    asked = dict(zip(CONFIRM_OUTPUTS, handlers.ask_delete_take(two.id, "tok")))
    out = dict(zip(DELETE_OUTPUTS, handlers.delete(asked["delete_target"], two.id, "tok")))
    assert studio.calls == [("delete", "tok", [two.id])] and infos == ["Take #2 deleted."]
    assert out["current"] == one.id and "Take #1" in out["take_title"]
    assert [label for _, label in out["gallery"]] == ["#1 · generated", "#3 · generated"]
    assert out["delete_take_panel"].visible is False and out["delete_target"] is None

    out = dict(zip(DELETE_OUTPUTS, handlers.delete([one.id], one.id, "tok")))
    assert out["current"] == three.id  # no take before it: the one after opens
    out = dict(zip(DELETE_OUTPUTS, handlers.delete([three.id], three.id, "tok")))
    assert out["current"] is None and "No take yet" in out["take_title"] and out["gallery"] == []


def test_deleting_another_take_leaves_the_open_one_open(studio, monkeypatch):
    monkeypatch.setattr(gr, "Info", lambda message: None)
    studio.takes_ = [make_take(1), make_take(2), make_take(3)]
    out = dict(zip(DELETE_OUTPUTS, Handlers(studio).delete([make_take(3).id], make_take(1).id, "tok")))
    assert out["current"] == make_take(1).id


def test_delete_all_deletes_the_takes_the_question_counted(studio, monkeypatch):
    infos = []
    monkeypatch.setattr(gr, "Info", infos.append)
    studio.takes_ = [make_take(1), make_take(2)]
    handlers = Handlers(studio)
    asked = dict(zip(CONFIRM_OUTPUTS, handlers.ask_delete_all("tok")))
    assert asked["delete_all_panel"].visible is True and "Delete all 2 takes" in asked["delete_all_question"]
    studio.takes_.append(make_take(3))  # made while the question was shown: not deleted with them
    out = dict(zip(DELETE_OUTPUTS, handlers.delete(asked["delete_target"], make_take(2).id, "tok")))
    assert studio.calls == [("delete", "tok", [make_take(1).id, make_take(2).id])] and infos == ["Deleted 2 takes."]
    assert out["current"] == make_take(3).id and len(out["gallery"]) == 1
    assert out["delete_all_panel"].visible is False


def test_deleting_says_why_when_there_is_nothing_to_delete(studio):
    handlers = Handlers(studio)
    with pytest.raises(gr.Error, match="no take to delete"):
        handlers.ask_delete_take(None, "tok")
    with pytest.raises(gr.Error, match="no takes to delete"):
        handlers.ask_delete_all("tok")
    with pytest.raises(gr.Error, match="no longer in this session"):
        handlers.delete([make_take(1).id], None, "tok")  # deleted already (a second click)
    assert studio.calls == []


def test_cancelling_a_deletion_hides_the_question(studio):
    out = dict(zip(CONFIRM_OUTPUTS, Handlers(studio).cancel_delete()))
    assert out["delete_take_panel"].visible is False and out["delete_all_panel"].visible is False
    assert out["delete_target"] is None


def test_history_says_when_a_take_was_made_from_a_deleted_one():
    child = make_take(2, mode="edit", parent_id="f" * 16)
    assert "**#2** · regenerated with edits from a deleted take · seed 42" in history([child])
