"""The default model shipped in assets/ loads and produces outputs of the documented shapes."""

import json

import numpy as np
import pytest

from uvigu import UniViGUPipeline
from uvigu.data.shapes import make_example
from uvigu.models.presets import SHIPPED_MODEL_DIR


@pytest.fixture(scope="module")
def pipe():
    return UniViGUPipeline.from_pretrained(SHIPPED_MODEL_DIR)


def test_it_is_small_safetensors_and_describes_itself():
    files = [p for p in SHIPPED_MODEL_DIR.rglob("*") if p.is_file()]
    assert sum(p.stat().st_size for p in files) <= 30 * 2**20
    assert not [p for p in files if p.suffix in (".bin", ".pt", ".pth", ".pkl")]
    assert (SHIPPED_MODEL_DIR / "transformer" / "diffusion_pytorch_model.safetensors").is_file()
    config = json.loads((SHIPPED_MODEL_DIR / "training_config.json").read_text())
    assert config["preset"] == "shapes"
    assert (SHIPPED_MODEL_DIR / "training_summary.json").is_file()


def test_outputs_have_the_documented_shapes(pipe):
    out = pipe.generate("a red circle moving right", seed=0, num_inference_steps=2)
    assert out.frames.shape == (16, 64, 64, 3) and out.frames.dtype == np.uint8
    example = make_example(0)
    cap = pipe.caption(example.frames, seed=0, num_inference_steps=2)
    assert isinstance(cap.text, str) and cap.text
    edited = pipe.edit(example.frames, example.caption, strength=0.5, seed=0, num_inference_steps=4)
    assert edited.frames.shape == (16, 64, 64, 3)
    assert pipe.unknown_words(example.caption) == []
