"""A video longer than the model's clip, captioned every few seconds (uvigu.timeline)."""

import subprocess
from types import SimpleNamespace

import imageio_ffmpeg
import numpy as np
import pytest

from uvigu.timeline import Cue, caption_timeline, timeline_starts, timestamp, to_srt
from uvigu.videoio import write_mp4


class Reader:
    """Captions a clip with its first frame's gray level."""

    default_num_frames, default_height, default_width, fps = 4, 8, 8, 8

    def __init__(self):
        self.options = []

    def caption(self, frames, **options):
        self.options.append(options)
        return SimpleNamespace(text=f"gray {round(float(frames[0].mean()))}")


def test_starts_run_from_the_start_to_the_end_every_so_often():
    assert timeline_starts(6.0, 2.0) == [0.0, 2.0, 4.0]
    assert timeline_starts(6.5, 2.0, start_s=1.0) == [1.0, 3.0, 5.0]
    assert timeline_starts(2.0, 5.0) == [0.0]
    with pytest.raises(ValueError, match="positive number of seconds"):
        timeline_starts(6.0, 0)


def test_each_clip_is_captioned_and_shown_until_the_next(tmp_path):
    levels = np.repeat(np.array([40, 120, 200], np.uint8), 16)  # 6 s at 8 fps: 2 s of each gray
    path = write_mp4(np.broadcast_to(levels[:, None, None, None], (48, 8, 8, 3)).copy(), tmp_path / "three.mp4", fps=8)
    made, pipe = [], Reader()
    cues = caption_timeline(pipe, path, 2.5, seed=7, on_cue=lambda i, n, cue: made.append((i, n, cue)))
    assert [(c.start_s, c.end_s) for c in cues] == [(0, 2.5), (2.5, 5.0), (5.0, 6.0)]
    assert [abs(int(c.text.split()[1]) - level) <= 2 for c, level in zip(cues, (40, 120, 200))] == [True] * 3
    assert [(i, n) for i, n, _ in made] == [(0, 3), (1, 3), (2, 3)] and pipe.options == [{"seed": 7}] * 3
    with pytest.raises(ValueError, match="takes 3 captions; the limit is 2"):
        caption_timeline(pipe, path, 2.5, max_captions=2)
    with pytest.raises(ValueError, match="the start, 6 s, is not within three.mp4, which lasts 6 s"):
        caption_timeline(pipe, path, 2.5, start_s=6)


def test_a_longer_audio_track_does_not_lengthen_the_timeline(tmp_path):
    path = tmp_path / "av.mp4"  # 1 s of video and 4 s of audio: the file's duration is the audio's
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-f", "lavfi", "-i", "color=c=red:s=16x16:r=8:d=1",
                    "-f", "lavfi", "-i", "anullsrc=r=8000:cl=mono", "-t", "4", "-c:v", "libx264", "-pix_fmt", "yuv420p",
                    "-c:a", "aac", str(path)], check=True)
    cues = caption_timeline(Reader(), path, 0.5)
    assert [(c.start_s, c.end_s) for c in cues] == [(0, 0.5), (0.5, 1.0)]
    with pytest.raises(ValueError, match="the start, 2 s, is not within av.mp4, which lasts 1 s"):
        caption_timeline(Reader(), path, 0.5, start_s=2)  # within the audio, past the video


def test_subrip_numbers_its_cues_with_comma_times():
    assert timestamp(3723.5) == "01:02:03.500" and timestamp(0.25, ",") == "00:00:00,250"
    assert to_srt([Cue(0, 2, "a red circle"), Cue(2, 3.5, "a blue square")]) == (
        "1\n00:00:00,000 --> 00:00:02,000\na red circle\n\n2\n00:00:02,000 --> 00:00:03,500\na blue square\n")
