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
            "out", handlers.generate("a red circle", "generate", 0, False, 100, 3.0, token, None)))
        worker.start()
        assert started.wait(10)
        handlers.stop(token)
        worker.join(10)
        assert not worker.is_alive()
        assert all(isinstance(value, type(gr.skip())) for value in result["out"])
        assert studio.takes(token) == []
    finally:
        studio.close()
