import pytest

from tests.studio.fake_pipeline import FakePipeline
from uvigu.studio import Studio, StudioSettings


@pytest.fixture
def fake_pipe() -> FakePipeline:
    return FakePipeline()


@pytest.fixture
def make_studio(tmp_path):
    studios: list[Studio] = []

    def make(pipe=None, **limits) -> Studio:
        studio = Studio(pipe or FakePipeline(), StudioSettings(data_dir=tmp_path / "data", **limits))
        studios.append(studio)
        return studio

    yield make
    for studio in studios:
        studio.close()
