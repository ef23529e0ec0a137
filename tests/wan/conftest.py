import pytest
import torch

from .tiny_wan import save_tiny_wan_folder

# Small sizes Wan accepts: 4k + 1 frames, sides multiple of 16.
TINY_WAN_OPTIONS = dict(
    dtype=torch.float32, num_frames=9, height=16, width=16, max_text_len=16, max_prompt_len=16,
    num_inference_steps=2, caption_steps=2,
)


@pytest.fixture(scope="session")
def wan_folder(tmp_path_factory):
    return save_tiny_wan_folder(tmp_path_factory.mktemp("wan") / "Wan2.1-T2V-tiny")


@pytest.fixture(scope="session")
def wan_pipe(wan_folder):
    from uvigu.pipeline import UniViGUPipeline

    return UniViGUPipeline.from_wan_pretrained(wan_folder, **TINY_WAN_OPTIONS)
