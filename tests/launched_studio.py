"""A studio on a tiny random model, launched on localhost for API and browser tests."""

from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from ui import build_demo, launch_options
from uvigu.studio import Studio, StudioSettings
from uvigu.testing import tiny_pipeline


@contextmanager
def launched_studio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Studio]]:
    """Yield (url, studio); Gradio's cache lives in a temporary folder, analytics are off."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv("GRADIO_TEMP_DIR", str(tmp_path_factory.mktemp("gradio")))
        env.setenv("GRADIO_ANALYTICS_ENABLED", "False")
        pipe = tiny_pipeline()
        pipe.register_to_config(motion_noise=0.35)  # as the shipped model samples, so its box shows
        studio = Studio(pipe, StudioSettings(data_dir=tmp_path_factory.mktemp("data")))
        demo = build_demo(studio)
        _, url, _ = demo.launch(prevent_thread_lock=True, quiet=True, **launch_options())
        try:
            yield url, studio
        finally:
            demo.close()
            studio.close()
