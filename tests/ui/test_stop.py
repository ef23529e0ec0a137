"""Stop through the real handler path: a running generation ends between steps, nothing saved."""

import threading

import gradio as gr

from tests.studio.fake_pipeline import FakePipeline
from ui.handlers import Handlers
from uvigu.studio import Studio, StudioSettings


def test_stop_ends_a_running_generation_and_the_page_keeps_its_state(tmp_path):
    started = threading.Event()

    def step(kind, index):
        started.set()
        threading.Event().wait(0.01)

    studio = Studio(FakePipeline(on_step=step), StudioSettings(data_dir=tmp_path))
    try:
        handlers = Handlers(studio)
        token = studio.new_session()
        result = {}
        worker = threading.Thread(target=lambda: result.setdefault(
            "out", list(handlers.generate("a red circle", "generate", 0, False, 100, 3.0, token, None))[-1]))
        worker.start()
        assert started.wait(10)
        handlers.stop(token)
        worker.join(10)
        assert not worker.is_alive()
        assert all(isinstance(value, type(gr.skip())) for value in result["out"])
        assert studio.takes(token) == []
    finally:
        studio.close()


def test_stop_during_a_batch_keeps_the_takes_made_and_drops_the_rest(tmp_path):
    second = threading.Event()
    starts = []

    def step(kind, index):
        if kind == "generate" and index == 0:
            starts.append(kind)
            if len(starts) == 2:
                second.set()
        threading.Event().wait(0.01)

    pipe = FakePipeline(on_step=step)
    studio = Studio(pipe, StudioSettings(data_dir=tmp_path))
    try:
        handlers = Handlers(studio)
        token = studio.new_session()
        result = {}
        worker = threading.Thread(target=lambda: result.setdefault(
            "out", list(handlers.generate("a red circle", "generate", 5, False, 100, 3.0, token, None, count=3))))
        worker.start()
        assert second.wait(20)  # the second take is running
        handlers.stop(token)
        worker.join(20)
        assert not worker.is_alive()
        (take,) = studio.takes(token)
        assert take.seed == 5
        (out,) = result["out"]  # the page got the first take, and nothing after the stop
        assert out[1] == 5 and take.id in out
        assert [kind for kind, _ in pipe.calls].count("generate") == 2  # the third never started
    finally:
        studio.close()
