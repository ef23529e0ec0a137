"""Video files in and out: H.264 MP4 / GIF / PNG writers, probing, decoding errors, conforming."""

import errno
import math
import os
import stat
import subprocess
from pathlib import Path

import imageio.v3 as iio
import imageio_ffmpeg
import numpy as np
import pytest

from uvigu import videoio
from uvigu.videoio import (conform_video, ffmpeg, probe_video, read_video, reading, write_gif, write_mp4,
                           write_strip_png, write_trajectory_png, writing)


def moving_square(num_frames: int = 16, height: int = 64, width: int = 64) -> np.ndarray:
    """uint8 (f, h, w, 3): a red square moving right over a gray background."""
    frames = np.full((num_frames, height, width, 3), 128, dtype=np.uint8)
    side = max(2, min(height, width) // 4)
    for i in range(num_frames):
        left = (i * 2) % max(1, width - side)
        frames[i, height // 3:height // 3 + side, left:left + side] = (230, 40, 40)
    return frames


def mean_abs_error(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


# --- writing -----------------------------------------------------------------------------------


def test_mp4_is_h264_yuv420p_and_decodes_close_to_input(tmp_path: Path) -> None:
    frames = moving_square()
    path = write_mp4(frames, tmp_path / "clip.mp4", fps=8)

    info = probe_video(path)
    assert (info.codec, info.pix_fmt) == ("h264", "yuv420p")
    assert (info.width, info.height, info.num_frames) == (64, 64, 16)
    assert info.fps == pytest.approx(8.0)
    assert info.duration_s == pytest.approx(2.0, abs=0.01)
    decoded = read_video(path)
    assert decoded.frames.shape == frames.shape and decoded.frames.dtype == np.uint8
    assert decoded.fps == pytest.approx(8.0)
    assert mean_abs_error(decoded.frames, frames) < 2.0


def test_mp4_starts_with_its_index_for_streaming(tmp_path: Path) -> None:
    data = write_mp4(moving_square(4), tmp_path / "clip.mp4", fps=8).read_bytes()
    assert 0 <= data.find(b"moov") < data.find(b"mdat")  # +faststart


def test_file_names_are_not_read_as_options_or_log_levels(tmp_path: Path) -> None:
    path = write_mp4(moving_square(4, 16, 16), tmp_path / "-take [error] 1.mp4", fps=8)
    assert path.name == "-take [error] 1.mp4"
    assert probe_video(path).num_frames == 4
    assert read_video(path).frames.shape == (4, 16, 16, 3)


def test_odd_sized_input_is_padded_to_even(tmp_path: Path) -> None:
    frames = moving_square(8, height=33, width=45)
    info = probe_video(write_mp4(frames, tmp_path / "odd.mp4", fps=8))
    assert (info.width, info.height) == (46, 34)
    assert (info.codec, info.pix_fmt) == ("h264", "yuv420p")
    decoded = read_video(tmp_path / "odd.mp4").frames
    assert mean_abs_error(decoded[:, :33, :45], frames) < 2.0


def test_scale_enlarges_exactly_with_nearest_neighbour(tmp_path: Path) -> None:
    frames = moving_square(8, height=16, width=16)
    path = write_mp4(frames, tmp_path / "big.mp4", fps=8, scale=4)
    info = probe_video(path)
    assert (info.width, info.height) == (64, 64)
    expected = frames.repeat(4, axis=1).repeat(4, axis=2)
    assert mean_abs_error(read_video(path).frames, expected) < 2.0


def test_writes_are_atomic_and_leave_no_temp_files(tmp_path: Path) -> None:
    frames = moving_square(4, 16, 16)
    write_mp4(frames, tmp_path / "a.mp4", fps=8)
    write_gif(frames, tmp_path / "a.gif", fps=8)
    write_strip_png(frames, tmp_path / "a.png", num=4)
    write_mp4(frames, tmp_path / "a.mp4", fps=8)  # overwrite in place
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.gif", "a.mp4", "a.png"]


def test_written_files_get_the_permissions_any_new_file_gets(tmp_path: Path) -> None:
    # Written through a temporary file and moved into place, a clip is still an ordinary new file:
    # readable by whom the umask lets read it, as open() would make it (not private to its owner).
    frames = moving_square(4, 16, 16)
    before = os.umask(0o022)
    try:
        paths = [write_mp4(frames, tmp_path / "a.mp4", fps=8), write_gif(frames, tmp_path / "a.gif", fps=8),
                 write_strip_png(frames, tmp_path / "a.png", num=4)]
        os.umask(0o077)
        paths.append(write_mp4(frames, tmp_path / "private.mp4", fps=8))
    finally:
        os.umask(before)
    assert [stat.S_IMODE(p.stat().st_mode) for p in paths] == [0o644, 0o644, 0o644, 0o600]


def test_failed_write_keeps_the_old_file_and_no_temp_file(tmp_path: Path, monkeypatch) -> None:
    target = tmp_path / "clip.mp4"
    target.write_bytes(b"previous take")

    class BrokenWriter:
        def append_data(self, frame: np.ndarray) -> None:
            raise RuntimeError("encoder crashed")

        def close(self) -> None:
            pass

    monkeypatch.setattr(writing.imageio_v2, "get_writer", lambda *args, **kwargs: BrokenWriter())
    with pytest.raises(RuntimeError, match="encoder crashed"):
        write_mp4(moving_square(4, 16, 16), target, fps=8)
    assert target.read_bytes() == b"previous take"
    assert [p.name for p in tmp_path.iterdir()] == ["clip.mp4"]


def test_a_file_that_cannot_be_made_is_named_as_asked_not_by_its_temporary_name(tmp_path: Path, monkeypatch) -> None:
    target = tmp_path / "clip.mp4"
    real_open = os.open

    def read_only_folder(path, *args, **kwargs):
        if Path(path).parent == tmp_path:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), path)
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(writing.os, "open", read_only_folder)
    with pytest.raises(PermissionError) as caught:
        write_mp4(moving_square(4, 16, 16), target, fps=8)
    assert str(caught.value) == f"[Errno {errno.EACCES}] Permission denied: '{target}'"
    assert not any(tmp_path.iterdir())


def test_gif_is_readable(tmp_path: Path) -> None:
    frames = moving_square(6, 32, 32)
    path = write_gif(frames, tmp_path / "clip.gif", fps=8)
    decoded = iio.imread(path, index=None)
    assert decoded.shape[:3] == (6, 32, 32)
    assert mean_abs_error(decoded[..., :3], frames) < 2.0


def test_png_strip_holds_evenly_spaced_frames(tmp_path: Path) -> None:
    frames = moving_square(16, 16, 16)
    strip = iio.imread(write_strip_png(frames, tmp_path / "strip.png", num=4))
    assert strip.shape == (16, 4 * 16, 3)
    tiles = np.split(strip, 4, axis=1)
    for tile, index in zip(tiles, [0, 5, 10, 15]):
        np.testing.assert_array_equal(tile, frames[index])


def test_png_strip_of_a_short_clip_shows_every_frame(tmp_path: Path) -> None:
    strip = iio.imread(write_strip_png(moving_square(3, 8, 8), tmp_path / "s.png", num=8, scale=2))
    assert strip.shape == (16, 3 * 16, 3)


class Step:
    """A trajectory step as the pipeline and the studio give them."""

    def __init__(self, sigma: float, frames: np.ndarray, text: str | None = None, stage: str | None = None):
        self.sigma, self.frames, self.text, self.stage = sigma, frames, text, stage


def solid(colour: tuple[int, int, int], num_frames: int = 8, side: int = 16) -> np.ndarray:
    return np.broadcast_to(np.array(colour, np.uint8), (num_frames, side, side, 3)).copy()


def test_trajectory_picture_has_a_row_per_step_with_its_frames(tmp_path: Path) -> None:
    # Three steps of 8 frames of 16 px, each frame of step i in its own colour, so that every
    # tile of the picture says which step and frame it came from.
    steps = []
    for i, sigma in enumerate([1.0, 0.5, 0.1]):
        frames = np.zeros((8, 16, 16, 3), np.uint8)
        frames[..., 0], frames[..., 1] = 30 * i + 10, np.arange(8)[:, None, None] * 30
        steps.append(Step(sigma, frames))
    pad, label = writing._SHEET_PAD, writing._SHEET_LABEL_PX
    picture = iio.imread(write_trajectory_png(steps, tmp_path / "steps.png", num=3))
    row = max(16, 2 * (writing._SHEET_FONT_PX + 4)) + pad  # a row is as tall as its two label lines
    assert picture.shape == (pad + 3 * row, pad + label + 3 * (16 + pad), 3)  # no text: no column for it
    for i in range(3):
        for j, frame in enumerate([0, 4, 7]):  # evenly spaced, first and last
            y, x = pad + i * row, pad + label + j * (16 + pad)
            np.testing.assert_array_equal(picture[y:y + 16, x:x + 16], steps[i].frames[frame])
    assert (picture[:, :pad + 4] < 128).any()  # the labels are written


def test_trajectory_picture_writes_the_text_of_steps_that_have_one_and_resizes_the_frames(tmp_path: Path) -> None:
    steps = [Step(1.0, solid((200, 0, 0)), "_ _ _ _", "generate"), Step(0.5, solid((0, 200, 0)), None, "generate"),
             Step(0.0, solid((0, 0, 200)), "a red circle moving right on a white background " * 4, "caption")]
    picture = iio.imread(write_trajectory_png(steps, tmp_path / "steps.png", num=2, side=40, title="Take #1"))
    pad, label, text = writing._SHEET_PAD, writing._SHEET_LABEL_PX, writing._SHEET_TEXT_PX
    frames_end = pad + label + 2 * (40 + pad)
    assert picture.shape[1] == frames_end + text  # a column for the text
    line = writing._SHEET_FONT_PX + 4
    top = pad + line + pad  # the title's line
    rows = [3 * line, 40]  # the stage is named where it changes: three label lines, then two (under 40 px)
    last = picture.shape[0] - top - sum(r + pad for r in rows) - pad  # the long text's row
    assert last > 3 * line and last % line == 0  # wrapped onto more lines than the label's three
    starts = np.cumsum([top] + [r + pad for r in rows])
    for step, y in zip(steps, starts):  # 16 px frames shown at 40 px, each in place
        x = pad + label
        np.testing.assert_array_equal(picture[y:y + 40, x:x + 40], np.broadcast_to(step.frames[0, 0, 0], (40, 40, 3)))
    ink = picture[:, frames_end:] < 128
    assert ink[starts[0]:starts[1]].any() and not ink[starts[1]:starts[2]].any()  # no text, nothing written
    assert ink[starts[2] + last - line:starts[2] + last].any()  # down to its last line
    assert (picture[pad:pad + line, :label] < 128).any()  # the title


def test_trajectory_picture_shrinks_large_frames_and_refuses_what_it_cannot_draw(tmp_path: Path) -> None:
    big = Step(0.5, solid((0, 0, 200), 2, 240))
    picture = iio.imread(write_trajectory_png([big], tmp_path / "small.png", num=1, side=60))
    pad, label = writing._SHEET_PAD, writing._SHEET_LABEL_PX
    np.testing.assert_array_equal(picture[pad:pad + 60, pad + label:pad + label + 60], solid((0, 0, 200), 1, 60)[0])
    for steps, kwargs, match in [([], {}, "no steps"), ([big, Step(0.1, solid((0, 0, 0)))], {}, "one size"),
                                 ([big], {"num": 0}, "num"), ([big], {"side": 0}, "side"),
                                 ([big] * 200, {"side": 512}, "pixels")]:
        with pytest.raises(ValueError, match=match):
            write_trajectory_png(steps, tmp_path / "bad.png", **kwargs)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["small.png"]


@pytest.mark.parametrize("bad", [np.zeros((4, 8, 8), np.uint8), np.zeros((4, 8, 8, 3), np.float32),
                                 np.zeros((0, 8, 8, 3), np.uint8)])
def test_writers_refuse_malformed_frames(tmp_path: Path, bad: np.ndarray) -> None:
    with pytest.raises(ValueError, match="frames"):
        write_mp4(bad, tmp_path / "x.mp4", fps=8)
    assert list(tmp_path.iterdir()) == []


# --- reading errors ----------------------------------------------------------------------------


def test_text_file_named_mp4_is_not_a_video(tmp_path: Path) -> None:
    path = tmp_path / "notes.mp4"
    path.write_text("this is not a video\n")
    with pytest.raises(ValueError, match="notes.mp4 is not a video file"):
        read_video(path)
    with pytest.raises(ValueError, match="not a video file"):
        probe_video(path)


def test_empty_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "empty.mp4"
    path.touch()
    with pytest.raises(ValueError, match=r"empty.mp4 is empty \(0 bytes\)"):
        read_video(path)


def test_a_folder_is_refused_with_what_to_give_instead(tmp_path: Path) -> None:
    folder = tmp_path / "clips"
    folder.mkdir()
    with pytest.raises(ValueError, match=r"clips is a folder, not a video file; name its videos "
                                         r"\(for example .*clips/\*\.mp4\)"):
        probe_video(folder)


def test_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not found"):
        read_video(tmp_path / "nowhere.mp4")


def test_truncated_mp4_is_refused(tmp_path: Path) -> None:
    data = write_mp4(moving_square(), tmp_path / "full.mp4", fps=8).read_bytes()
    path = tmp_path / "cut.mp4"
    path.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(ValueError, match="corrupt or truncated"):
        read_video(path)


def test_audio_only_file_has_no_video_stream(tmp_path: Path) -> None:
    path = tmp_path / "sound.m4a"
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-f", "lavfi", "-i",
                    "anullsrc", "-t", "0.2", str(path)], check=True)
    with pytest.raises(ValueError, match="no video stream"):
        read_video(path)


def test_limits_refuse_long_large_clips_with_actionable_messages(tmp_path: Path) -> None:
    path = write_mp4(moving_square(24, 16, 16), tmp_path / "long.mp4", fps=2)  # 12 s
    with pytest.raises(ValueError, match=r"long.mp4 is 12.0 s long; the limit is 10 s"):
        read_video(path, max_duration_s=10)
    with pytest.raises(ValueError, match="has 24 frames; the limit is 20"):
        read_video(path, max_frames=20)
    with pytest.raises(ValueError, match=r"is 16×16; the largest side allowed is 8 px"):
        read_video(path, max_side=8)
    assert read_video(path, max_frames=24, max_duration_s=12, max_side=16).frames.shape[0] == 24


def test_first_s_decodes_only_the_start(tmp_path: Path) -> None:
    path = write_mp4(moving_square(16, 16, 16), tmp_path / "clip.mp4", fps=8)
    decoded = read_video(path, first_s=1.0)
    assert decoded.frames.shape == (8, 16, 16, 3)
    np.testing.assert_array_equal(decoded.frames, read_video(path).frames[:8])


def gray_ramp(num_frames: int, height: int, width: int) -> np.ndarray:
    """uint8 (f, h, w, 3): frame t is uniformly gray at level 10·t, so a decoded frame says which it is."""
    return np.broadcast_to((np.arange(num_frames, dtype=np.uint8) * 10)[:, None, None, None],
                           (num_frames, height, width, 3)).copy()


def frame_numbers(frames: np.ndarray) -> list[int]:
    return [round(float(f.mean()) / 10) for f in frames]


def test_start_s_decodes_from_that_time_on(tmp_path: Path) -> None:
    path = write_mp4(gray_ramp(24, 16, 16), tmp_path / "ramp.mp4", fps=8)  # 3 s
    assert frame_numbers(read_video(path, start_s=1.0, first_s=1.0).frames) == list(range(8, 16))
    # 1.3 s falls in frame 10 (1.25 s to 1.375 s): ffmpeg starts there or at the next frame.
    numbers = frame_numbers(read_video(path, start_s=1.3).frames)
    assert numbers[0] in (10, 11) and numbers == list(range(numbers[0], 24))
    for start in (-0.5, 3.0):
        with pytest.raises(ValueError, match=rf"the start, {start:g} s, is not within ramp.mp4, which lasts 3 s"):
            read_video(path, start_s=start)


@pytest.mark.parametrize("rate, starts", [(8, (0.5, 3.3, 7.0)), (30, (0.5, 3.3))])
def test_a_seek_that_lands_elsewhere_is_read_from_the_start(tmp_path: Path, caplog, rate: int, starts) -> None:
    """MPEG-TS has no index to seek by: in these small 10 s files ffmpeg's seek finds no frame at
    8 fps and lands near the end at 30 fps. Frame n is gray at level 3·(n mod 80)."""
    path = tmp_path / f"ramp{rate}.ts"
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-f", "lavfi", "-i",
                    f"color=black:s=32x32:r={rate}:d=10,format=gray,geq=lum='mod(N,80)*3',format=yuv420p",
                    "-c:v", "libx264", str(path)], check=True)
    for start in starts:
        with caplog.at_level("INFO", logger="uvigu.videoio"):
            frames = read_video(path, start_s=start).frames
        # the frame that shows at the start, or the next one (as test_start_s_decodes_from_that_time_on)
        first = next(n for n in (math.floor(start * rate), math.floor(start * rate) + 1) if len(frames) == 10 * rate - n)
        assert round(float(frames[0].mean()) / 3) == first % 80
        assert f"seeking to {start:.3f} s landed elsewhere" in caplog.text
        caplog.clear()


def test_a_duration_the_container_understates_is_the_frames(tmp_path: Path) -> None:
    """MPEG-PS estimates its duration from its bitrate: 7 s for these 10 s; the 80 frames at 8 fps say 10."""
    path = tmp_path / "ramp.mpg"
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-f", "lavfi", "-i",
                    "color=black:s=32x32:r=8:d=10,format=gray,geq=lum='N*3',format=yuv420p",
                    "-c:v", "mpeg2video", "-q:v", "2", str(path)], check=True)
    info = probe_video(path)
    assert (info.num_frames, info.fps, info.duration_s) == (80, 8.0, 10.0)
    frames = read_video(path, start_s=8.0).frames  # past the 7 s the container states
    assert abs(round(float(frames[0].mean()) / 3) - 64) <= 1 and abs(len(frames) - 16) <= 1


def test_a_file_trimmed_without_re_encoding_counts_only_the_frames_it_shows(tmp_path: Path) -> None:
    """A cut made by copying (ffmpeg -c copy, LosslessCut and the like) keeps the frames from the
    keyframe before it, hidden by an edit list: here frames 16 to 26 of a ramp with a keyframe every
    2 s. They were counted, and the file was refused as truncated. Frame n is gray at level 3·n."""
    source, cut = tmp_path / "ramp.mp4", tmp_path / "cut.mp4"
    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    subprocess.run([ffmpeg, "-v", "error", "-f", "lavfi", "-i", "color=black:s=32x32:r=8:d=10,format=gray,"
                    "geq=lum='N*3',format=yuv420p", "-c:v", "libx264", "-g", "16", str(source)], check=True)
    subprocess.run([ffmpeg, "-v", "error", "-ss", "3.3", "-i", str(source), "-t", "4", "-c", "copy", str(cut)],
                   check=True)
    info = probe_video(cut)
    numbers = [round(float(frame.mean()) / 3) for frame in read_video(cut).frames]
    assert info.num_frames == len(numbers) and not info.variable_rate
    assert numbers == list(range(numbers[0], numbers[0] + len(numbers))) and numbers[0] in (26, 27)
    assert abs(info.duration_s - len(numbers) / 8) < 0.5
    later = read_video(cut, start_s=1.0).frames
    assert round(float(later[0].mean()) / 3) == numbers[8] and len(later) == len(numbers) - 8


def test_a_stream_cut_anywhere_is_read_from_its_first_keyframe(tmp_path: Path) -> None:
    """A transport stream whose first packets lack the frames they refer to (a TV recording started
    mid-broadcast, a segment of a longer stream): ffmpeg logged errors identifying it, and it was
    refused as corrupt. Frame n of the 30 fps source is gray at level 3·(n mod 80); keyframes every 2 s."""
    source = tmp_path / "full.ts"
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-f", "lavfi", "-i",
                    "color=black:s=32x32:r=30:d=10,format=gray,geq=lum='mod(N,80)*3',format=yuv420p",
                    "-c:v", "libx264", "-g", "60", str(source)], check=True)
    data = source.read_bytes()
    cut = tmp_path / "cut.ts"
    cut.write_bytes(data[len(data) // 3 // 188 * 188:])  # from a transport packet a third of the way in
    info = probe_video(cut)
    numbers = [round(float(frame.mean()) / 3) for frame in read_video(cut).frames]
    assert info.num_frames == len(numbers) and 0 < len(numbers) < 300
    assert numbers == [(numbers[0] + k) % 80 for k in range(len(numbers))]  # every frame from the first keyframe
    assert videoio.read_clip(cut, num_frames=8, fps=8, height=16, width=16, start_s=1.0).frames.shape == (8, 16, 16, 3)


def test_cover_shrinks_to_the_smallest_covering_size_and_never_enlarges(tmp_path: Path) -> None:
    path = write_mp4(gray_ramp(8, 32, 64), tmp_path / "wide.mp4", fps=8)
    full = read_video(path).frames
    shrunk = read_video(path, cover=(8, 8)).frames
    assert shrunk.shape == (8, 8, 16, 3)  # aspect kept: 64×32 → 16×8, whose height just covers 8
    assert frame_numbers(shrunk) == frame_numbers(full) == list(range(8))
    assert read_video(path, cover=(16, 24)).frames.shape == (8, 16, 32, 3)
    assert read_video(path, cover=(64, 64)).frames.shape == full.shape  # never larger than the file


def test_cover_applies_to_the_rotated_frame(tmp_path: Path) -> None:
    frames = np.zeros((8, 40, 80, 3), np.uint8)
    frames[:, :, :40] = 255  # left half white
    source = write_mp4(frames, tmp_path / "source.mp4", fps=8)
    rotated = tmp_path / "rotated.mp4"  # the same stream, shown turned by 90 degrees
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-display_rotation:v:0", "90", "-i",
                    str(source), "-c", "copy", str(rotated)], check=True)
    full, shrunk = read_video(rotated).frames, read_video(rotated, cover=(20, 10)).frames
    assert full.shape == (8, 80, 40, 3) and shrunk.shape == (8, 20, 10, 3)
    # The white half is the same half of the shown frame at both sizes.
    assert (full[0, :40, :, 0].mean() > 128) == (shrunk[0, :10, :, 0].mean() > 128)
    assert (full[0, 40:, :, 0].mean() > 128) == (shrunk[0, 10:, :, 0].mean() > 128)


def test_read_clip_decodes_only_what_the_model_takes_and_its_notes_tell_of_the_file(tmp_path: Path,
                                                                                      monkeypatch) -> None:
    rng = np.random.default_rng(0)
    blocks = (rng.random((8, 16, 16, 3)) * 255).astype(np.uint8)  # a colour per pixel: no blur hides
    frames = np.concatenate([blocks] * 10)  # 80 frames at 8 fps: 10 s
    path = write_mp4(frames, tmp_path / "long.mp4", fps=8, scale=8)  # shown 128×128
    piped = []
    run = reading.run_ffmpeg

    def counting(args, timeout):
        result = run(args, timeout)
        if "rawvideo" in args:  # the decode (the probe pipes a listing of the packets)
            piped.append(len(result.stdout))
        return result

    monkeypatch.setattr(reading, "run_ffmpeg", counting)
    clip = videoio.read_clip(path, num_frames=4, fps=8, height=16, width=16)
    assert clip.frames.shape == (4, 16, 16, 3)
    # Colours survive the smaller decode (it scales in RGB, not in 4:2:0 chroma).
    assert mean_abs_error(clip.frames, blocks[:4]) < 5
    assert clip.notes == ["used the first 0.5 s (4 frames)", "resized 128×128 → 16×16"]
    assert sum(piped) <= 8 * 16 * 16 * 3  # a few small frames, not 80 frames of 128×128
    later = videoio.read_clip(path, num_frames=4, fps=8, height=16, width=16, start_s=2.0)
    assert mean_abs_error(later.frames, frames[16:20]) < 5
    assert later.notes == ["used 0.5 s from 2.0 s (4 frames)", "resized 128×128 → 16×16"]


# --- non-square pixels (DV, DVD, HDV) -----------------------------------------------------------


def red_box(frame: np.ndarray) -> tuple[int, int]:
    """Width and height of the red area of ``frame`` (h, w, 3)."""
    ys, xs = ((frame[..., 0] > 150) & (frame[..., 1] < 100)).nonzero()
    return int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1)


@pytest.mark.parametrize("rotated", [False, True])
def test_non_square_pixels_are_shown_at_their_aspect(tmp_path: Path, rotated: bool) -> None:
    # Stored 320×160 with pixels twice as wide as tall: a 40×80 box of them shows as an 80×80 square.
    path = tmp_path / "wide.mp4"
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-f", "lavfi", "-i",
                    "color=gray:size=320x160:rate=8:duration=1,drawbox=x=140:y=40:w=40:h=80:color=red:t=fill,"
                    "setsar=2/1", "-c:v", "libx264", "-pix_fmt", "yuv420p", str(path)], check=True)
    if rotated:  # as a phone tags a portrait recording
        subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-display_rotation:v:0", "90", "-i",
                        str(path), "-c", "copy", str(tmp_path / "turned.mp4")], check=True)
        path = tmp_path / "turned.mp4"
    info = probe_video(path)
    shown, stored = ((640, 160), (320, 160)) if not rotated else ((160, 640), (160, 320))
    assert ((info.width, info.height), info.stored_size) == (shown, stored)
    decoded = read_video(path)
    assert decoded.frames.shape[1:3] == shown[::-1]
    assert red_box(decoded.frames[0]) == (80, 80)
    clip = videoio.read_clip(path, num_frames=8, fps=8, height=32, width=32)  # the shorter side to 32 px
    assert abs(np.subtract(*red_box(clip.frames[0]))) <= 1  # square, not twice as tall
    assert clip.notes[0] == (f"stretched non-square pixels: {stored[0]}×{stored[1]} stored, "
                             f"{shown[0]}×{shown[1]} shown")


# --- HDR: high-dynamic-range footage (phones record HLG by default) -----------------------------

HDR_TAGS = {"HLG": "arib-std-b67", "PQ": "smpte2084"}
# Red, green, blue, mid-gray and near-white, in columns.
PALETTE = np.array([(220, 30, 30), (30, 160, 60), (40, 80, 220), (128, 128, 128), (235, 235, 235)], np.uint8)


def palette_frames(num_frames: int, height: int, width: int) -> np.ndarray:
    columns = np.repeat(PALETTE, -(-width // len(PALETTE)), axis=0)[:width]  # (w, 3)
    return np.broadcast_to(columns, (num_frames, height, width, 3)).copy()


def write_hdr(path: Path, frames: np.ndarray | None, hdr: str, *, yuv10: np.ndarray | None = None,
              tags: tuple[str, ...] | None = None) -> Path:
    """An HEVC 10-bit MP4 in BT.2020 with ``hdr``'s transfer (HLG, PQ, or a standard-range one
    named as ffmpeg does, e.g. "bt2020-10"), as a phone writes it: standard-range ``frames`` (RGB
    uint8) placed with their white at HDR reference white (BT.2408, 203 cd/m²), or ``yuv10``
    (f, h, w) 10-bit luma codes on neutral chroma as they are. ``tags`` replaces the stream's
    colour options."""
    transfer = HDR_TAGS.get(hdr, hdr)
    if tags is None:
        tags = ("-color_trc", transfer, "-color_primaries", "bt2020", "-colorspace", "bt2020nc", "-color_range", "tv")
    if yuv10 is not None:
        f, h, w = yuv10.shape
        chroma = np.full((h // 2, w // 2), 512, np.uint16)
        raw = b"".join(y.astype(np.uint16).tobytes() + chroma.tobytes() * 2 for y in yuv10)
        source = ["-f", "rawvideo", "-pix_fmt", "yuv420p10le", "-s", f"{w}x{h}", "-r", "8", *tags, "-i", "-"]
    else:
        f, h, w, _ = frames.shape
        raw = frames.tobytes()
        source = ["-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}", "-r", "8", "-i", "-", "-vf",
                  f"zscale=tin=bt709:pin=bt709:min=gbr:t={transfer}:npl=203:p=bt2020:m=bt2020nc:r=tv,format=yuv420p10le"]
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-y", *source, "-c:v", "libx265",
                    "-x265-params", "log-level=error:lossless=1", *tags, "-tag:v", "hvc1", str(path)],
                   input=raw, check=True)
    return path


@pytest.mark.parametrize("hdr", ["HLG", "PQ"])
def test_hdr_video_reads_as_its_standard_range_picture(tmp_path: Path, hdr: str) -> None:
    frames = palette_frames(4, 64, 80)
    path = write_hdr(tmp_path / "phone.mp4", frames, hdr)
    info = probe_video(path)
    assert (info.hdr, info.transfer, info.primaries, info.matrix) == (hdr, HDR_TAGS[hdr], "bt2020", "bt2020nc")
    decoded = read_video(path)
    # Read as stored, HLG's red is (155, 66, 40): paler and darker. Tone-mapped, colours come back
    # (in the middle of each colour's column: 4:2:0 chroma blurs their edges).
    assert np.abs(decoded.frames[:, :, 8::16].astype(int) - frames[:, :, 8::16]).max() <= 4
    assert decoded.notes == (f"tone-mapped HDR ({hdr}) to standard range",)
    # Shrunk on the way (in linear light), as the model's clips are read, with the note first.
    clip = videoio.read_clip(write_hdr(tmp_path / "large.mp4", palette_frames(4, 160, 400), hdr),
                             num_frames=4, fps=8, height=16, width=40)
    assert clip.notes == [f"tone-mapped HDR ({hdr}) to standard range", "resized 400×160 → 40×16"]
    columns = clip.frames[:, 8, 4::8].astype(int)  # the middle of each colour's column
    assert np.abs(columns - PALETTE).max() <= 4


def hdr_grays(signals: list[float]) -> np.ndarray:
    """(2, 16, 16 · len(signals)) 10-bit luma codes: a 16-pixel square per HDR signal level (0..1)."""
    luma = np.concatenate([np.full((1, 16, 16), round(64 + s * 876)) for s in signals], axis=2)
    return np.repeat(luma, 2, axis=0)


# Gray at HDR reference white (203 cd/m², standard range's white: 75 % of HLG's signal, 58 % of PQ's)
# and brighter, to HLG's peak and towards 1000 cd/m² in PQ: signal levels, as a camera writes them.
@pytest.mark.parametrize("hdr, signals", [("HLG", [0.75, 0.8, 0.85, 0.9, 1.0]), ("PQ", [0.58, 0.62, 0.66, 0.7])])
def test_hdr_reference_white_is_white_and_highlights_are_compressed_not_clipped(tmp_path: Path, hdr: str,
                                                                                signals: list[float]) -> None:
    decoded = read_video(write_hdr(tmp_path / "bright.mp4", None, hdr, yuv10=hdr_grays(signals)))
    levels = decoded.frames[0, 8, 8::16].astype(int)  # (len(signals), 3)
    assert (levels[:, 0] == levels[:, 1]).all() and (levels[:, 1] == levels[:, 2]).all()  # still gray
    assert levels[0, 0] >= 235 and (np.diff(levels[:, 0]) > 0).all() and levels[-1, 0] <= 255


def test_hdr_without_primaries_or_matrix_is_read_as_bt2020(tmp_path: Path) -> None:
    grays = hdr_grays([0.25, 0.5, 0.75])
    bare = write_hdr(tmp_path / "bare.mp4", None, "HLG", yuv10=grays, tags=("-color_trc", "arib-std-b67"))
    info = probe_video(bare)
    assert (info.hdr, info.primaries, info.matrix) == ("HLG", "", "")
    tagged = read_video(write_hdr(tmp_path / "tagged.mp4", None, "HLG", yuv10=grays))
    assert np.array_equal(read_video(bare).frames, tagged.frames)


@pytest.mark.parametrize("transfer", ["bt709", "bt2020-10"])
def test_wide_gamut_standard_range_video_reads_as_its_colours(tmp_path: Path, transfer: str) -> None:
    frames = palette_frames(4, 64, 80)
    path = write_hdr(tmp_path / "camera.mp4", frames, transfer)
    info = probe_video(path)
    assert (info.hdr, info.transfer, info.primaries) == (None, transfer, "bt2020")
    clip = videoio.read_clip(path, num_frames=4, fps=8, height=64, width=80)
    # Read as stored, BT.2020's red is (180, 73, 46) in BT.709: paler. Converted, colours come back.
    assert np.abs(clip.frames[:, :, 8::16].astype(int) - frames[:, :, 8::16]).max() <= 4
    assert clip.notes == ["converted wide-gamut colours (BT.2020) to BT.709"]


@pytest.mark.parametrize("kind, note", [("HLG", "read HDR (HLG) colours as they are stored (ffmpeg lacks zscale): "
                                                "they look paler and darker"),
                                        ("bt709", "read wide-gamut (BT.2020) colours as they are stored (ffmpeg "
                                                  "lacks zscale): they look paler")])
def test_without_the_filters_to_convert_colours_they_are_read_as_stored_and_it_says_so(
        tmp_path: Path, monkeypatch, caplog, kind: str, note: str) -> None:
    path = write_hdr(tmp_path / "phone.mp4", palette_frames(2, 32, 40), kind)
    monkeypatch.setattr(reading, "_can_tone_map", lambda: False)
    clip = videoio.read_clip(path, num_frames=2, fps=8, height=32, width=40)
    assert clip.notes[0] == note
    assert "lacks the zscale and tonemap filters" in caplog.text
    assert tuple(clip.frames[0, 16, 4]) != (220, 30, 30)  # the stored signal, paler


def test_standard_range_colour_tags_are_read_and_not_hdr(tmp_path: Path) -> None:
    info = probe_video(write_mp4(moving_square(4), tmp_path / "sdr.mp4", fps=8))
    assert info.hdr is None
    assert ffmpeg.color_tags("yuv420p(tv, bt709, progressive)") == {
        "matrix": "bt709", "primaries": "bt709", "transfer": "bt709"}
    assert ffmpeg.color_tags("yuv420p10le(tv, unknown/unknown/arib-std-b67)") == {
        "matrix": "", "primaries": "", "transfer": "arib-std-b67"}
    assert ffmpeg.color_tags("yuv420p(progressive)") == ffmpeg.color_tags("pal8") == {}
    assert read_video(write_mp4(moving_square(4), tmp_path / "plain.mp4", fps=8)).notes == ()


def test_mp4s_we_write_say_they_are_bt709_and_read_back_as_written(tmp_path: Path) -> None:
    frames = palette_frames(2, 32, 80)
    info = probe_video(write_mp4(frames, tmp_path / "clip.mp4", fps=8))
    assert (info.matrix, info.primaries, info.transfer) == ("bt709", "bt709", "bt709")
    # Tags that did not match the numbers (BT.601's read as BT.709's) would shift red by 13.
    decoded = read_video(tmp_path / "clip.mp4").frames[:, :, 8::16].astype(int)
    assert np.abs(decoded - frames[:, :, 8::16]).max() <= 3


def write_yuv(path: Path, frames: np.ndarray, matrix: str, tags: tuple[str, ...] = ()) -> Path:
    """An H.264 MP4 of ``frames`` made to YUV with ``matrix`` ("bt709" or "bt601"), its colour tags
    ``tags`` (ffmpeg options) or, without them, none at all, as many tools write."""
    f, h, w, _ = frames.shape
    stated = tags or ("-colorspace", "unknown", "-color_primaries", "unknown", "-color_trc", "unknown")
    untag = "" if tags else ",setparams=colorspace=unknown:color_primaries=unknown:color_trc=unknown"
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24",
                    "-s", f"{w}x{h}", "-r", "8", "-i", "-", "-vf",
                    f"scale=out_color_matrix={matrix}:out_range=tv,format=yuv420p{untag}", "-c:v", "libx264",
                    "-crf", "10", *stated, str(path)], input=frames.tobytes(), check=True)
    return path


@pytest.mark.parametrize("height, width, matrix, tags", [
    (720, 1280, "bt709", ()),  # HD that does not say: BT.709, as HD is made and browsers show it
    (1280, 720, "bt709", ()),  # the same, upright (a phone's)
    (480, 640, "bt601", ()),  # SD that does not say: BT.601
    (720, 1280, "bt601", ("-colorspace", "smpte170m")),  # what a file says wins
])
def test_video_that_does_not_say_its_colours_is_read_as_players_read_it(
        tmp_path: Path, height: int, width: int, matrix: str, tags: tuple[str, ...]) -> None:
    frames = palette_frames(2, height, width)
    path = write_yuv(tmp_path / "clip.mp4", frames, matrix, tags)
    assert probe_video(path).matrix == ("smpte170m" if tags else "")
    middles = slice(width // 10, None, width // 5)  # the middle of each colour's column
    decoded = read_video(path).frames[:, :, middles].astype(int)
    # Read the other way, red is off by 13 to 16.
    assert np.abs(decoded - frames[:, :, middles]).max() <= 3
    clip = videoio.read_clip(path, num_frames=2, fps=8, height=16, width=40)
    assert np.abs(clip.frames[:, 8, 4::8].astype(int) - PALETTE).max() <= 3


def test_jpeg_video_keeps_jpegs_matrix_at_any_size() -> None:
    hd = dict(width=1920, height=1080, fps=30.0, num_frames=2, duration_s=0.1)
    assert reading._unstated_hd_matrix(videoio.VideoInfo(codec="h264", pix_fmt="yuv420p10le", **hd))
    assert not reading._unstated_hd_matrix(videoio.VideoInfo(codec="mjpeg", pix_fmt="yuvj422p", **hd))
    assert not reading._unstated_hd_matrix(videoio.VideoInfo(codec="png", pix_fmt="rgb24", **hd))
    assert not reading._unstated_hd_matrix(videoio.VideoInfo(codec="h264", pix_fmt="yuv420p", matrix="bt470bg", **hd))


# --- frames not evenly spaced in time ----------------------------------------------------------

# 90 frames: the first 30 a fifteenth of a second apart (0 to 2 s), the next 60 a thirtieth (2 to 4 s),
# as a phone writes when the light changes, or a screen recorder when the screen does.
def uneven_time(number: int) -> float:
    return (2 * number if number < 30 else number + 30) / 30


def shown_at(t: float) -> int:
    """The frame of the uneven clip nearest ``t`` seconds in time."""
    return min(range(90), key=lambda n: abs(uneven_time(n) - t))


def write_uneven(path: Path, *extra: str) -> Path:
    """The uneven clip, frame n uniformly gray at level 2·n, written by ffmpeg with each frame's time."""
    frames = np.broadcast_to((np.arange(90) * 2).astype(np.uint8)[:, None, None, None], (90, 32, 32, 3))
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-f", "rawvideo", "-pix_fmt", "rgb24",
                    "-s", "32x32", "-r", "30", "-i", "-", "-vf", "setpts='if(lt(N,30),2*N,N+30)/30/TB'",
                    "-fps_mode", "vfr", *extra, str(path)], input=frames.tobytes(), check=True)
    return path


def uneven_numbers(frames: np.ndarray) -> np.ndarray:
    """Which frame each one is, as a float: the conversion to YUV and back moves a level by one."""
    return frames.mean(axis=(1, 2, 3)) / 2


@pytest.mark.parametrize("name, extra", [
    ("uneven.mp4", ("-c:v", "libx264", "-qp", "0")),
    # A browser's recording: WebM that states neither its duration nor its real rate (30 fps here).
    ("uneven.webm", ("-c:v", "libvpx", "-b:v", "2M", "-live", "1")),
])
def test_frames_not_evenly_spaced_are_read_by_their_times(tmp_path: Path, name: str, extra: tuple) -> None:
    path = write_uneven(tmp_path / name, *extra)
    info = probe_video(path)
    assert info.variable_rate and info.num_frames == 90
    assert info.fps == pytest.approx(89 / uneven_time(89), rel=0.01)  # their average rate, about 22.4
    assert info.duration_s == pytest.approx(4.0, abs=0.1)
    decoded = read_video(path)
    times = np.arange(len(decoded.frames)) / decoded.fps
    expected = np.array([shown_at(t) for t in times])
    # Frame i is what shows at i / fps, give or take one frame; read by index, frame 45 (2.0 s)
    # would be frame 45 where frame 30 shows.
    assert len(decoded.frames) in (89, 90, 91)
    assert np.abs(uneven_numbers(decoded.frames) - expected).max() <= 1.5
    clip = videoio.read_clip(path, num_frames=16, fps=8, height=16, width=16, start_s=1.0)
    expected = np.array([shown_at(1.0 + i / 8) for i in range(16)])
    assert np.abs(uneven_numbers(clip.frames) - expected).max() <= 1.5
    assert clip.notes[0] == f"resampled a variable frame rate ({info.fps:.4g} fps on average) → 8 fps, by the frames' times"


def test_a_gif_with_mixed_delays_is_read_by_time(tmp_path: Path) -> None:
    from PIL import Image

    path = tmp_path / "mixed.gif"
    images = [Image.new("RGB", (16, 16), (level, level, level)) for level in (0, 60, 120, 180, 240)]
    images[0].save(path, save_all=True, append_images=images[1:], duration=[500, 100, 100, 100, 200], loop=0)
    info = probe_video(path)
    assert info.variable_rate and info.fps == pytest.approx(4 / 0.8)
    numbers = [round(float(f.mean()) / 60) for f in read_video(path).frames]
    # Frames shown at 0, 0.5, 0.6, 0.7 and 0.8 s; read at 0, 0.2, 0.4, 0.6 and 0.8 s (by index: 0 to 4).
    assert numbers == [0, 0, 0, 2, 4]


def test_evenly_spaced_frames_are_not_variable(tmp_path: Path) -> None:
    path = write_mp4(moving_square(16, 16, 16), tmp_path / "clip.mp4", fps=8)  # H.264 with B-frames
    assert not probe_video(path).variable_rate
    assert not probe_video(write_gif(moving_square(8, 16, 16), tmp_path / "clip.gif", fps=10)).variable_rate


# --- conforming --------------------------------------------------------------------------------


def test_conform_does_nothing_to_a_clip_that_fits() -> None:
    frames = moving_square()
    result = conform_video(frames, 8, num_frames=16, target_fps=8, height=64, width=64)
    assert result.notes == []
    np.testing.assert_array_equal(result.frames, frames)


def test_conform_crops_and_resizes_with_a_note() -> None:
    frames = np.zeros((16, 240, 320, 3), np.uint8)
    frames[:, :, :40] = 255  # a bar inside the 40 px on each side that the square crop removes
    frames[:, :, 280:] = 255
    result = conform_video(frames, 8, num_frames=16, target_fps=8, height=64, width=64)
    assert result.frames.shape == (16, 64, 64, 3) and result.frames.dtype == np.uint8
    assert result.notes == ["resized 320×240 → 64×64 (center-cropped to square)"]
    assert result.frames.max() == 0


def test_conform_crop_only_and_non_square_aspect() -> None:
    frames = np.zeros((16, 64, 80, 3), np.uint8)
    assert conform_video(frames, 8, num_frames=16, target_fps=8, height=64,
                         width=64).notes == ["center-cropped 80×64 → 64×64"]
    result = conform_video(frames, 8, num_frames=16, target_fps=8, height=48, width=64)
    assert result.frames.shape == (16, 48, 64, 3)
    assert result.notes == ["resized 80×64 → 64×48 (center-cropped to 4:3)"]


def test_conform_resamples_frame_rate_and_keeps_the_start() -> None:
    frames = np.arange(90, dtype=np.uint8)[:, None, None, None].repeat(3, axis=3)  # 3 s at 30 fps
    frames = np.broadcast_to(frames, (90, 4, 4, 3)).copy()
    result = conform_video(frames, 30, num_frames=16, target_fps=8, height=4, width=4)
    assert result.notes == ["resampled 30 fps → 8 fps", "used the first 2.0 s (16 frames)"]
    expected = [round(i * 30 / 8 + 1e-9) for i in range(16)]  # nearest source frame in time
    assert result.frames[:, 0, 0, 0].tolist() == [min(e, 89) for e in expected]


def test_conform_pads_a_short_clip_with_its_last_frame() -> None:
    frames = moving_square(9, 8, 8)
    result = conform_video(frames, 8, num_frames=16, target_fps=8, height=8, width=8)
    assert result.notes == ["padded 9 → 16 frames by repeating the last frame"]
    np.testing.assert_array_equal(result.frames[:9], frames)
    np.testing.assert_array_equal(result.frames[9:], np.repeat(frames[-1:], 7, axis=0))
    from_later = conform_video(frames, 8, num_frames=16, target_fps=8, height=8, width=8, source_start_s=1.5)
    assert from_later.notes == ["padded the 9 frames from 1.5 s → 16 frames by repeating the last frame"]


def test_conform_notes_every_change_at_once() -> None:
    frames = np.zeros((20, 32, 32, 3), np.uint8)  # 1.25 s at 16 fps: 10 frames at 8 fps
    result = conform_video(frames, 16, num_frames=16, target_fps=8, height=64, width=64)
    assert result.frames.shape == (16, 64, 64, 3)
    assert result.notes == ["resampled 16 fps → 8 fps",
                            "padded 10 → 16 frames by repeating the last frame",
                            "resized 32×32 → 64×64"]


def test_conform_refuses_bad_arguments() -> None:
    with pytest.raises(ValueError, match="frame rates must be positive"):
        conform_video(moving_square(2, 8, 8), 0, num_frames=2, target_fps=8, height=8, width=8)
    with pytest.raises(ValueError, match="frames must be uint8"):
        conform_video(np.zeros((2, 8, 8)), 8, num_frames=2, target_fps=8, height=8, width=8)
