"""VideoFolderDataset: real MP4s listed in metadata.jsonl, conformed; bad metadata refused."""

import json
import subprocess
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import pytest
import torch
from torch.utils.data import default_collate

from uvigu.data.video_folder import VideoFolderDataset
from uvigu.training.stream import ShuffledStream
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


def test_unreadable_clips_are_all_named_by_line_before_any_is_used(folder: Path) -> None:
    (folder / "broken.mp4").write_text("not a video")
    (folder / "empty.mp4").write_bytes(b"")
    write_metadata(folder, [{"video": "broken.mp4", "prompt": "broken"}, {"video": "red.mp4", "prompt": "red"},
                            {"video": "empty.mp4", "prompt": "empty"}])
    with pytest.raises(ValueError, match=r"metadata.jsonl: 2 of 3 clips cannot be read; fix or remove their lines:\n"
                                         r"  line 1: broken.mp4 is not a video file.*\n  line 3: empty.mp4"):
        VideoFolderDataset(folder)


def test_a_clip_that_fails_to_decode_later_names_its_line(folder: Path) -> None:
    write_metadata(folder, [{"video": "red.mp4", "prompt": "red"}, {"video": "sub/blue.mp4", "prompt": "blue"}])
    dataset = VideoFolderDataset(folder)
    (folder / "sub" / "blue.mp4").write_text("replaced by something else")
    with pytest.raises(ValueError, match="metadata.jsonl, line 2: blue.mp4"):
        dataset[1]


def test_a_clip_that_fails_later_can_be_skipped_with_one_warning(folder: Path, caplog) -> None:
    write_mp4(solid_clip(16, 64, 64, (40, 200, 40)), folder / "green.mp4", fps=8)
    write_metadata(folder, [{"video": "red.mp4", "prompt": "red"}, {"video": "sub/blue.mp4", "prompt": "blue"},
                            {"video": "green.mp4", "prompt": "green"}])
    dataset = VideoFolderDataset(folder, seed=0, skip_unreadable=True)
    (folder / "sub" / "blue.mp4").write_text("replaced by something else")
    with caplog.at_level("WARNING", logger="uvigu.data.video_folder"):
        prompts = [dataset[i]["prompt"] for i in range(6)]  # two draws of each clip
    assert prompts == ["red", "green", "green"] * 2  # blue's draws read the next clip, green
    (warning,) = caplog.messages  # said once, naming the line
    assert "metadata.jsonl, line 2: " in warning and "skipped" in warning
    # The clip is tried again at each draw: put back, it is read.
    write_mp4(solid_clip(48, 32, 48, (40, 90, 235)), folder / "sub" / "blue.mp4", fps=16)  # as it was
    assert dataset[4]["prompt"] == "blue"
    # When no clip reads any more, the item fails, saying so.
    for name in ("red.mp4", "sub/blue.mp4", "green.mp4"):
        (folder / name).unlink()
    with pytest.raises(ValueError, match="no clip of .* can be read any more; the first: .*line 3: "):
        dataset[2]


def test_describes_its_footage(folder: Path) -> None:
    write_metadata(folder, [{"video": "red.mp4", "prompt": "red"}, {"video": "sub/blue.mp4", "prompt": "blue"}])
    assert VideoFolderDataset(folder, seed=0).describe() == (
        "2 clips, 0.1 min of footage (2.0–3.0 s each); an item is 16 frames at 8 fps (2 s) from a random start, "
        "64×64")
    write_metadata(folder, [{"video": "red.mp4", "prompt": "red"}])
    assert VideoFolderDataset(folder).describe().startswith("1 clip, 0.0 min of footage (2.0 s each); an item "
                                                            "is 16 frames at 8 fps (2 s) from its start")


def test_describes_how_its_footage_is_read(tmp_path: Path) -> None:
    from tests.test_videoio import palette_frames, write_hdr

    root = tmp_path / "phone"
    root.mkdir()
    write_hdr(root / "hdr.mp4", palette_frames(16, 32, 40), "HLG")
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-f", "lavfi", "-i",
                    "color=red:s=32x16:r=8:d=2,setsar=2/1", "-c:v", "libx264", "-pix_fmt", "yuv420p",
                    str(root / "dv.mp4")], check=True)
    write_hdr(root / "wide.mp4", palette_frames(16, 32, 40), "bt2020-10")
    write_metadata(root, [{"video": "hdr.mp4", "prompt": "bars"}, {"video": "dv.mp4", "prompt": "red"},
                          {"video": "wide.mp4", "prompt": "bars"}])
    assert VideoFolderDataset(root).describe().startswith(
        "3 clips, 0.1 min of footage (2.0 s each; 1 HDR (tone-mapped); 1 in BT.2020's wide gamut (converted); "
        "1 with non-square pixels (stretched)); an item ")


def test_file_name_stands_for_video(folder: Path) -> None:
    write_metadata(folder, [{"file_name": "red.mp4", "prompt": "red"}])
    assert VideoFolderDataset(folder)[0]["frames"].shape == (16, 64, 64, 3)
    write_metadata(folder, [{"file_name": "", "prompt": "red"}])
    with pytest.raises(ValueError, match="missing or empty field 'video'.*'file_name' works too"):
        VideoFolderDataset(folder)


def test_a_caption_alone_is_the_prompt_too_and_text_stands_for_caption(folder: Path) -> None:
    write_metadata(folder, [{"file_name": "red.mp4", "text": "a red screen"},
                            {"video": "red.mp4", "prompt": " ", "caption": "a red screen, still"},
                            {"video": "red.mp4", "prompt": "red", "text": "a red screen"}])
    assert [(e.prompt, e.caption) for e in VideoFolderDataset(folder).entries] == [
        ("a red screen", "a red screen"), ("a red screen, still", "a red screen, still"), ("red", "a red screen")]
    write_metadata(folder, [{"video": "red.mp4", "text": "  "}])
    with pytest.raises(ValueError, match="missing or empty field 'prompt'.*'caption' or 'text' alone serves as both"):
        VideoFolderDataset(folder)


def window_starts(dataset: VideoFolderDataset, indices) -> list[int]:
    """The source frame each item starts at (the clip's frame t is gray at level 5·t), checking
    that each item is a run of frames two apart (4 fps sampled from 8)."""
    starts = []
    for index in indices:
        numbers = [round(float(frame.mean()) / 5) for frame in dataset[index]["frames"]]
        assert numbers == list(range(numbers[0], numbers[0] + 8, 2)), numbers
        starts.append(numbers[0])
    return starts


def test_seeded_items_take_their_window_anywhere_in_the_clip_the_same_for_the_same_index(tmp_path: Path) -> None:
    root = tmp_path / "long"
    root.mkdir()
    levels = np.arange(48, dtype=np.uint8) * 5  # 6 s at 8 fps
    write_mp4(np.broadcast_to(levels[:, None, None, None], (48, 16, 16, 3)).copy(), root / "ramp.mp4", fps=8)
    write_metadata(root, [{"video": "ramp.mp4", "prompt": "a ramp"}])

    def dataset(seed):  # items of 1 s: 4 frames at 4 fps
        return VideoFolderDataset(root, num_frames=4, height=16, width=16, fps=4, seed=seed)

    first = dataset(None)
    assert window_starts(first, [0, 0]) == [0, 0]  # no seed: the clip's first second, every time
    with pytest.raises(IndexError):
        first[1]

    draws = range(16)  # one clip: index e is its draw in epoch e
    starts = window_starts(dataset(0), draws)
    assert all(0 <= s <= 40 for s in starts)  # a 1 s window fits from frame 0 to frame 40
    assert len(set(starts)) >= 8 and max(starts) - min(starts) >= 20  # spread over the clip
    assert window_starts(dataset(0), draws) == starts  # same seed and index: same item
    assert window_starts(dataset(1), draws) != starts
    # The trainer's stream numbers a seeded folder's items by draw, and a first-seconds one's not.
    assert ShuffledStream.over(dataset(0), seed=0).tag_epochs and not ShuffledStream.over(first, seed=0).tag_epochs


def test_texts_too_long_for_the_model_are_all_named_by_line(folder: Path) -> None:
    write_metadata(folder, [
        {"video": "red.mp4", "prompt": "a red screen", "caption": "the screen is red."},
        {"video": "red.mp4", "prompt": "one two three four five six"},  # its caption is its prompt: named once
        {"video": "red.mp4", "prompt": "red", "caption": "a b c d e f g"},
    ])
    dataset = VideoFolderDataset(folder)
    words = lambda text: len(text.split())  # noqa: E731
    dataset.check_text_lengths(words, 7)  # every text fits
    with pytest.raises(ValueError, match=r"metadata.jsonl: 2 texts are longer than the 5 tokens the model's text "
                                         r"stream holds; shorten them:\n  line 2: the prompt is 6 tokens long\n"
                                         r"  line 3: the caption is 7 tokens long$"):
        dataset.check_text_lengths(words, 5)


def test_windows_stay_within_the_video_when_the_audio_runs_longer(tmp_path: Path) -> None:
    root = tmp_path / "av"
    root.mkdir()
    # 1 s of video and 4 s of audio: the file's duration is the audio's.
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-f", "lavfi", "-i", "color=c=red:s=16x16:r=8:d=1",
                    "-f", "lavfi", "-i", "anullsrc=r=8000:cl=mono", "-t", "4", "-c:v", "libx264", "-pix_fmt", "yuv420p",
                    "-c:a", "aac", str(root / "av.mp4")], check=True)
    write_metadata(root, [{"video": "av.mp4", "prompt": "red"}])
    dataset = VideoFolderDataset(root, num_frames=4, height=16, width=16, fps=8, seed=0)
    assert dataset.describe().startswith("1 clip, 0.0 min of footage (1.0 s each)")
    for index in range(12):  # every draw decodes: its window starts within the video's second
        assert dataset[index]["frames"].shape == (4, 16, 16, 3)


def test_a_written_folder_reads_back_clip_for_clip(tmp_path):
    from uvigu.data.video_folder import write_video_folder

    rng = np.random.default_rng(0)
    blocks = [(rng.random((8, 8, 8, 3)) * 255).astype(np.uint8) for _ in range(2)]
    root = write_video_folder(tmp_path / "folder", [("a", blocks[0], "red", "a red thing"), ("b", blocks[1], "blue", "")],
                              fps=8, scale=4)
    dataset = VideoFolderDataset(root, num_frames=8, height=8, width=8, fps=8)
    assert [(e.video.name, e.prompt, e.caption) for e in dataset.entries] == [
        ("a.mp4", "red", "a red thing"), ("b.mp4", "blue", "blue")]  # an empty caption falls back to the prompt
    for index, frames in enumerate(blocks):
        assert np.abs(dataset[index]["frames"].astype(int) - frames).mean() < 6  # 32×32 H.264, shrunk back
    with pytest.raises(ValueError, match="already exists and is not empty"):
        write_video_folder(root, [], fps=8)
