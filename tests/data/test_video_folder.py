"""VideoFolderDataset: real MP4s listed in metadata.jsonl, conformed; bad metadata refused."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import default_collate

from uvigu.data.video_folder import VideoFolderDataset
from uvigu.videoio import write_mp4


def solid_clip(num_frames: int, height: int, width: int, color: tuple[int, int, int]) -> np.ndarray:
    return np.broadcast_to(np.array(color, np.uint8), (num_frames, height, width, 3)).copy()


def write_metadata(root: Path, records: list) -> None:
    lines = [r if isinstance(r, str) else json.dumps(r) for r in records]
    (root / "metadata.jsonl").write_text("\n".join(lines) + "\n")


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "clips"
    (root / "sub").mkdir(parents=True)
    write_mp4(solid_clip(16, 64, 64, (230, 40, 40)), root / "red.mp4", fps=8)
    # 3 s at 16 fps, 48×32: resampled to 8 fps, trimmed to 2 s, cropped and resized.
    write_mp4(solid_clip(48, 32, 48, (40, 90, 235)), root / "sub" / "blue.mp4", fps=16)
    return root


def test_loads_real_mp4s_conformed_with_caption_fallback(folder: Path) -> None:
    write_metadata(folder, [
        {"video": "red.mp4", "prompt": "a red screen", "caption": "the screen is red."},
        "",
        {"video": "sub/blue.mp4", "prompt": "a blue screen"},
    ])
    dataset = VideoFolderDataset(folder, num_frames=16, height=64, width=64, fps=8)
    assert len(dataset) == 2

    red, blue = dataset[0], dataset[1]
    assert red["prompt"] == "a red screen" and red["caption"] == "the screen is red."
    assert blue["prompt"] == "a blue screen" and blue["caption"] == "a blue screen"
    for item, color in [(red, (230, 40, 40)), (blue, (40, 90, 235))]:
        assert item["frames"].shape == (16, 64, 64, 3) and item["frames"].dtype == np.uint8
        assert np.abs(item["frames"].reshape(-1, 3).mean(0) - color).max() < 4

    batch = default_collate([red, blue])
    assert batch["frames"].shape == (2, 16, 64, 64, 3) and batch["frames"].dtype == torch.uint8


def test_other_sizes_and_lengths(folder: Path) -> None:
    write_metadata(folder, [{"video": "sub/blue.mp4", "prompt": "blue"}])
    item = VideoFolderDataset(folder, num_frames=4, height=16, width=32, fps=4)[0]
    assert item["frames"].shape == (4, 16, 32, 3)


@pytest.mark.parametrize("video", ["../outside.mp4", "sub/../../outside.mp4"])
def test_refuses_paths_that_escape_the_root(folder: Path, video: str) -> None:
    write_mp4(solid_clip(2, 8, 8, (0, 0, 0)), folder.parent / "outside.mp4", fps=8)
    write_metadata(folder, [{"video": video, "prompt": "escape"}])
    with pytest.raises(ValueError, match="line 1: .*points outside"):
        VideoFolderDataset(folder)


def test_refuses_absolute_paths_and_symlinks_out_of_the_root(folder: Path) -> None:
    outside = write_mp4(solid_clip(2, 8, 8, (0, 0, 0)), folder.parent / "outside.mp4", fps=8)
    write_metadata(folder, [{"video": str(outside), "prompt": "escape"}])
    with pytest.raises(ValueError, match="must be relative"):
        VideoFolderDataset(folder)
    (folder / "link.mp4").symlink_to(outside)
    write_metadata(folder, [{"video": "link.mp4", "prompt": "escape"}])
    with pytest.raises(ValueError, match="points outside"):
        VideoFolderDataset(folder)


def test_bad_json_line_is_named(folder: Path) -> None:
    write_metadata(folder, [{"video": "red.mp4", "prompt": "red"}, '{"video": "red.mp4", '])
    with pytest.raises(ValueError, match=r"metadata.jsonl, line 2: not valid JSON"):
        VideoFolderDataset(folder)


@pytest.mark.parametrize("record, message", [
    ({"prompt": "no video"}, "missing or empty field 'video'"),
    ({"video": "red.mp4"}, "missing or empty field 'prompt'"),
    ({"video": "red.mp4", "prompt": "  "}, "missing or empty field 'prompt'"),
    ({"video": "red.mp4", "prompt": "red", "caption": 3}, "'caption' must be a string"),
    (["red.mp4", "red"], "expected a JSON object"),
    ({"video": "gone.mp4", "prompt": "gone"}, "video file not found: gone.mp4"),
])
def test_bad_records_are_refused(folder: Path, record, message: str) -> None:
    write_metadata(folder, [{"video": "red.mp4", "prompt": "red"}, record])
    with pytest.raises(ValueError, match=f"line 2: .*{message}"):
        VideoFolderDataset(folder)


def test_missing_or_empty_metadata(folder: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="has no metadata.jsonl"):
        VideoFolderDataset(folder)
    (folder / "metadata.jsonl").write_text("\n")
    with pytest.raises(ValueError, match="lists no videos"):
        VideoFolderDataset(folder)
    with pytest.raises(ValueError, match="dataset folder not found"):
        VideoFolderDataset(tmp_path / "nowhere")


def test_corrupt_clip_fails_with_its_name(folder: Path) -> None:
    (folder / "broken.mp4").write_text("not a video")
    write_metadata(folder, [{"video": "broken.mp4", "prompt": "broken"}])
    dataset = VideoFolderDataset(folder)  # files are decoded per item, not at construction
    with pytest.raises(ValueError, match="broken.mp4 is not a video file"):
        dataset[0]
