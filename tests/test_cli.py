import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from uvigu import UniViGUPipeline
from uvigu.cli import main
from uvigu.judge import EXPERT_LEAVES_EMPTY
from uvigu.models.expert import EXPERT_FOLDER, write_expert
from uvigu.testing import tiny_pipeline
from uvigu.videoio import probe_video, read_video, write_mp4


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny-model")
    tiny_pipeline().save_pretrained(path)
    return path


def test_the_command_lists_its_subcommands_without_loading_torch():
    import subprocess
    import sys

    # every subcommand's module is imported to build the parser; torch and the model load only when one runs
    code = ("import sys; from uvigu.cli import build_parser; build_parser().format_help(); "
            "print(sorted(m for m in ('torch', 'diffusers', 'gradio', 'cv2') if m in sys.modules))")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "[]\n"


def test_generate_caption_and_edit_write_playable_clips(model_dir, tmp_path, capsys):
    clip = tmp_path / "clip.mp4"
    assert main(["generate", "a red circle moving right", "--model", str(model_dir), "--seed", "3",
                 "--out", str(clip), "--strip", "--gif"]) == 0
    out = capsys.readouterr().out
    assert "seed: 3" in out and "caption: " in out
    info = probe_video(clip)
    assert (info.codec, info.pix_fmt, info.width, info.height, info.num_frames) == ("h264", "yuv420p", 64, 64, 4)
    assert clip.with_suffix(".png").is_file() and clip.with_suffix(".gif").is_file()

    assert main(["caption", str(clip), "--model", str(model_dir), "--seed", "0"]) == 0
    assert "caption: " in capsys.readouterr().out
    assert main(["caption", str(clip), "--model", str(model_dir), "--seed", "0", "--temperature", "0"]) == 0
    assert "caption: " in capsys.readouterr().out
    assert main(["caption", str(clip), "--model", str(model_dir), "--seed", "0", "--reread", "0"]) == 0
    plain = capsys.readouterr().out
    assert "caption: " in plain
    # a pass that may change no word leaves the caption of no pass
    assert main(["caption", str(clip), "--model", str(model_dir), "--seed", "0", "--reread-threshold", "0"]) == 0
    assert capsys.readouterr().out == plain
    # the video stream's check of unsure words: off by default, so weight 0 is the default caption
    assert main(["caption", str(clip), "--model", str(model_dir), "--seed", "0"]) == 0
    default = capsys.readouterr().out
    assert main(["caption", str(clip), "--model", str(model_dir), "--seed", "0", "--verify-weight", "0"]) == 0
    assert capsys.readouterr().out == default
    assert main(["caption", str(clip), "--model", str(model_dir), "--seed", "0", "--verify-weight", "1e6"]) == 0
    assert "caption: " in capsys.readouterr().out

    edited = tmp_path / "edited.mp4"
    assert main(["edit", str(clip), "a green circle moving right", "--model", str(model_dir),
                 "--strength", "0.5", "--seed", "1", "--out", str(edited), "--scale", "1"]) == 0
    assert probe_video(edited).width == 16


def test_a_clip_written_under_its_default_name_never_replaces_an_earlier_one(model_dir, tmp_path, monkeypatch,
                                                                            capsys):
    monkeypatch.chdir(tmp_path)
    generate = ["generate", "a red circle", "--model", str(model_dir), "--no-caption", "--steps", "2"]
    assert main([*generate, "--seed", "1"]) == 0
    first = (tmp_path / "clip.mp4").read_bytes()
    assert main([*generate, "--seed", "2", "--gif"]) == 0  # the second clip takes the next free name
    assert main([*generate, "--seed", "3"]) == 0
    assert (tmp_path / "clip.mp4").read_bytes() == first
    assert "clip: clip-2.mp4\ngif: clip-2.gif\n" in capsys.readouterr().out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip-2.gif", "clip-2.mp4", "clip-3.mp4", "clip.mp4"]
    assert main([*generate, "--seed", "4", "--strip"]) == 0  # clip-4: no clip-4.png to replace either
    assert (tmp_path / "clip-4.png").is_file()
    # an edit of clip.mp4 under edit's default name, twice; then named: the file named is replaced
    edit = ["edit", "clip.mp4", "a green circle", "--model", str(model_dir), "--steps", "2", "--seed", "1"]
    assert main(edit) == 0 and main(edit) == 0
    assert (tmp_path / "edited.mp4").is_file() and (tmp_path / "edited-2.mp4").is_file()
    assert main([*generate, "--seed", "5", "--out", "clip.mp4"]) == 0
    assert (tmp_path / "clip.mp4").read_bytes() != first


def test_trajectory_writes_every_step_and_its_captions_as_one_picture(model_dir, tmp_path, monkeypatch, capsys):
    from PIL import Image

    from uvigu import videoio

    monkeypatch.chdir(tmp_path)
    (tmp_path / "clip-steps.png").write_bytes(b"an earlier picture")  # not replaced: the clip takes clip-2
    pictures = []
    real = videoio.write_trajectory_png

    def write(steps, path, **kwargs):
        pictures.append([(getattr(s, "stage", None), s.text is None) for s in steps])
        return real(steps, path, **kwargs)

    monkeypatch.setattr(videoio, "write_trajectory_png", write)
    model = ["--model", str(model_dir), "--steps", "2", "--seed", "1"]
    assert main(["generate", "a red circle moving right", *model, "--trajectory"]) == 0
    assert "steps: clip-2-steps.png\n" in capsys.readouterr().out
    assert (tmp_path / "clip-steps.png").read_bytes() == b"an earlier picture"
    caption_steps = UniViGUPipeline.from_pretrained(model_dir).config.caption_steps
    # the clip's 2 steps, video only, then its caption's (and the re-read's), text forming over the clip
    rows = pictures[-1]
    assert rows[:2] == [("generate", True)] * 2 and rows[2:] == [("caption", False)] * (len(rows) - 2)
    assert len(rows) - 2 >= caption_steps
    with Image.open(tmp_path / "clip-2-steps.png") as picture:
        assert picture.height > len(rows) * 128  # a row a step, frames shown at 128 px
    best_of = ["--best-of", "2", "--trajectory", "--out", "b.mp4"]
    assert main(["generate", "a red circle moving right", *model, *best_of]) == 0
    assert pictures[-1] == rows  # the kept take's steps, then its caption's
    assert main(["generate", "a red circle moving right", *model, "--joint", "--trajectory", "--out", "j.mp4"]) == 0
    assert pictures[-1] == [("joint", False)] * 2 and (tmp_path / "j-steps.png").is_file()
    assert main(["edit", "clip-2.mp4", "a green circle moving right", *model, "--no-caption", "--trajectory",
                 "--strength", "1"]) == 0
    assert pictures[-1] == [("edit", True)] * 2 and (tmp_path / "edited-steps.png").is_file()
    assert main(["generate", "a red circle moving right", *model, "--out", "plain.mp4"]) == 0
    assert len(pictures) == 4 and not (tmp_path / "plain-steps.png").exists()  # only when asked


def test_caption_trajectory_draws_each_captions_steps_in_the_current_folder(model_dir, tmp_path, monkeypatch,
                                                                          capsys):
    from PIL import Image

    from uvigu import videoio

    videos = tmp_path / "footage"
    videos.mkdir()
    rng = np.random.default_rng(0)
    for name in ["a.mp4", "b.mp4"]:
        write_mp4(rng.integers(0, 256, (6, 32, 32, 3), dtype=np.uint8), videos / name, fps=8, scale=1)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    (work / "a-caption-steps.png").write_bytes(b"an earlier picture")  # kept: a's picture takes the next name
    pictures = []
    real = videoio.write_trajectory_png

    def write(steps, path, **kwargs):
        pictures.append((steps, kwargs["title"]))
        return real(steps, path, **kwargs)

    monkeypatch.setattr(videoio, "write_trajectory_png", write)
    model = ["--model", str(model_dir), "--seed", "2"]
    assert main(["caption", str(videos / "a.mp4"), *model]) == 0
    plain = capsys.readouterr().out
    assert main(["caption", str(videos / "a.mp4"), str(videos / "b.mp4"), *model, "--trajectory"]) == 0
    out = capsys.readouterr().out
    assert plain in out  # the same caption: drawing its steps does not change it
    assert "steps: a-caption-steps-2.png\n" in out and "steps: b-caption-steps.png\n" in out
    assert (work / "a-caption-steps.png").read_bytes() == b"an earlier picture"
    assert sorted(p.name for p in videos.iterdir()) == ["a.mp4", "b.mp4"]  # nothing written beside the footage
    from uvigu.inputs import prepare_video

    pipe = UniViGUPipeline.from_pretrained(model_dir)
    seen, _ = prepare_video(str(videos / "a.mp4"), pipe.config)  # the clip as the model sees it
    steps, title = pictures[0]
    assert title == "caption of a.mp4 · seed 2"
    assert len(steps) >= pipe.config.caption_steps
    assert all(step.stage == "caption" and step.text is not None for step in steps)
    assert all(np.array_equal(step.frames, seen) for step in steps)
    assert steps[-1].text in plain  # the last row is the caption printed
    with Image.open(work / "a-caption-steps-2.png") as picture:
        assert picture.height > len(steps) * 128

    assert main(["caption", str(videos / "a.mp4"), *model, "--trajectory", "--every", "1"]) == 2
    assert "--trajectory draws the steps of one caption of each video; leave out --every" in capsys.readouterr().err
    assert len(pictures) == 2


def test_an_output_that_cannot_be_written_is_refused_before_the_model_runs(model_dir, tmp_path, monkeypatch,
                                                                          capsys):
    from uvigu import loading

    def no_model(*args, **kwargs):
        raise AssertionError("the model was loaded")

    monkeypatch.setattr(loading, "load_pipeline", no_model)
    (tmp_path / "notes.txt").write_text("a file, not a folder")
    assert main(["generate", "a red circle", "--out", str(tmp_path)]) == 2
    assert f"--out {tmp_path} is a folder; give the clip's file name" in capsys.readouterr().err
    assert main(["edit", "clip.mp4", "a red circle", "--out", str(tmp_path / "notes.txt" / "x.mp4")]) == 2
    assert f"{tmp_path / 'notes.txt'} is not a folder this user may write to" in capsys.readouterr().err


def test_a_write_that_fails_is_said_without_a_traceback(model_dir, tmp_path, monkeypatch, capsys):
    import errno

    import uvigu.videoio as videoio

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(videoio, "write_mp4", full)
    assert main(["generate", "a red circle", "--model", str(model_dir), "--no-caption", "--steps", "2",
                 "--out", str(tmp_path / "clip.mp4")]) == 1
    err = capsys.readouterr().err
    assert "uvigu generate: [Errno 28] No space left on device" in err and "Traceback" not in err


def test_unknown_words_are_warned_of_once_in_the_commands_words(model_dir, tmp_path, capsys, caplog):
    clip = tmp_path / "clip.mp4"
    assert main(["generate", "a red zebra moving right", "--model", str(model_dir), "--seed", "3", "--steps", "2",
                 "--best-of", "2", "--out", str(clip)]) == 0
    assert capsys.readouterr().err.count("does not know") == 1
    assert main(["edit", str(clip), "a red zebra moving right", "--source-prompt", "a red okapi moving right",
                 "--model", str(model_dir), "--seed", "3", "--steps", "2", "--out", str(tmp_path / "e.mp4")]) == 0
    err = capsys.readouterr().err
    assert "warning: the model does not know these words: zebra\n" in err
    assert "warning: the model does not know these words of --source-prompt: okapi\n" in err
    assert err.count("does not know") == 2
    assert not [record for record in caplog.records if "does not know" in record.getMessage()]  # not logged too


def test_generate_and_edit_note_what_a_prompt_asks_beyond_the_models_world(model_dir, tmp_path, capsys):
    clip = tmp_path / "clip.mp4"
    three = "a red circle moving right and a blue square moving up and a purple triangle moving down"
    assert main(["generate", three, "--model", str(model_dir), "--seed", "3", "--steps", "2", "--out", str(clip),
                 "--no-caption"]) == 0
    assert capsys.readouterr().err.splitlines()[:2] == [  # said before the model runs, ahead of its progress
        "note: 3 objects asked for; the model learned clips of at most 2, so it may leave some out.",
        "note: The model never saw a purple triangle in training (held out, to test whether it puts together a "
        "colour and a shape it has only seen apart).",
    ]
    assert main(["edit", str(clip), "a red circle moving right and a red square moving up", "--model",
                 str(model_dir), "--seed", "3", "--steps", "2", "--out", str(tmp_path / "e.mp4"), "--no-caption"]) == 0
    assert "note: More than one red object asked for" in capsys.readouterr().err
    assert main(["generate", "a red circle moving right", "--model", str(model_dir), "--seed", "3", "--steps", "2",
                 "--out", str(tmp_path / "plain.mp4"), "--no-caption"]) == 0
    assert "note:" not in capsys.readouterr().err


def test_generate_says_what_the_caption_of_its_clip_says_of_the_prompt(model_dir, tmp_path, monkeypatch, capsys):
    said = "a small red circle moves slowly up from the center on a gray background."
    monkeypatch.setattr(UniViGUPipeline, "caption", lambda self, video, **kwargs: SimpleNamespace(text=said, trajectory=None))
    assert main(["generate", "a red circle moving right", "--model", str(model_dir), "--steps", "2",
                 "--out", str(tmp_path / "clip.mp4")]) == 0
    out = capsys.readouterr().out
    clip = tmp_path / "clip.mp4"
    assert out.endswith(f"caption: {said}\nround trip: 0 of 1 object as asked\n"
                        "  red circle moving right: moving up instead of moving right\n"
                        f"ask for what it missed: uvigu edit {clip} 'a small red circle moves slowly to the right "
                        f"from the center on a gray background.' --source-prompt '{said}'\n")
    assert main(["generate", "a red circle moving up", "--model", str(model_dir), "--steps", "2",
                 "--out", str(tmp_path / "clip.mp4")]) == 0
    assert capsys.readouterr().out.endswith(f"caption: {said}\nround trip: 1 of 1 object as asked\n")
    # an edit captions its clip too, read against the edited text; --no-caption skips both
    edit = ["edit", str(tmp_path / "clip.mp4"), "a small red circle moves slowly to the right from the center.",
            "--model", str(model_dir), "--steps", "2", "--out", str(tmp_path / "edited.mp4")]
    assert main(edit) == 0
    assert capsys.readouterr().out.endswith(f"caption: {said}\nyour edit: 0 of 1 object as asked\n"
                                            "  red circle moving right: moving up instead of moving right\n")
    assert main([*edit, "--no-caption"]) == 0
    assert "caption: " not in capsys.readouterr().out


def test_a_caption_that_names_no_object_says_what_to_try(model_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(UniViGUPipeline, "caption", lambda self, video, **kwargs: SimpleNamespace(text="a black",
                                                                                                  trajectory=None))
    generate = ["generate", "a yellow triangle moving left on a black background", "--model", str(model_dir),
                "--steps", "2", "--out", str(tmp_path / "clip.mp4")]
    assert main(generate) == 0
    said = "  the caption names no object, so the clip probably shows none: try another --seed"
    assert capsys.readouterr().out.endswith(f"  yellow triangle moving left: not in the caption\n{said}\n")
    with_expert = tmp_path / "with-expert"  # the model with a high-noise expert
    tiny_pipeline().save_pretrained(with_expert)
    write_expert(tiny_pipeline(), tiny_pipeline(seed=1), with_expert / EXPERT_FOLDER, boundary=0.99, rank=4)
    generate[3] = str(with_expert)
    assert main(generate) == 0
    assert capsys.readouterr().out.endswith(f"{said} or --no-expert ({EXPERT_LEAVES_EMPTY})\n")
    assert main([*generate, "--no-expert"]) == 0
    assert capsys.readouterr().out.endswith(f"{said}\n")
    assert main([*generate, "--joint"]) == 0  # the caption written with the clip, from the prompt: no such line
    assert "probably shows none" not in capsys.readouterr().out
    assert main(["edit", str(tmp_path / "clip.mp4"), "a yellow triangle moving right", "--model", str(model_dir),
                 "--steps", "2", "--out", str(tmp_path / "edited.mp4")]) == 0
    assert capsys.readouterr().out.endswith(f"{said}\n")


def test_the_round_trip_names_an_object_the_caption_adds(model_dir, tmp_path, monkeypatch, capsys):
    caption = ("a small yellow triangle moves slowly to the left from the center, while a small red circle stays "
               "still near the top.")
    monkeypatch.setattr(UniViGUPipeline, "caption", lambda self, video, **kwargs: SimpleNamespace(text=caption,
                                                                                                  trajectory=None))
    assert main(["generate", "a yellow triangle moving left", "--model", str(model_dir), "--steps", "2", "--out",
                 str(tmp_path / "clip.mp4")]) == 0
    assert capsys.readouterr().out.endswith(
        "round trip: 1 of 1 object as asked; 1 object not asked for\n  red circle staying still: not asked for\n")


@pytest.fixture
def recorded_edits(model_dir, tmp_path, monkeypatch):
    """A generated clip, and the keyword arguments of every ``pipe.edit`` call the test makes after."""
    clip = tmp_path / "clip.mp4"
    assert main(["generate", "a red circle", "--model", str(model_dir), "--seed", "0", "--no-caption", "--out",
                 str(clip)]) == 0
    seen = []
    original = UniViGUPipeline.edit

    def recording(self, video, prompt, **kwargs):
        seen.append(kwargs)
        return original(self, video, prompt, **kwargs)

    monkeypatch.setattr(UniViGUPipeline, "edit", recording)
    return clip, seen


def test_an_edit_with_a_source_prompt_reaches_the_pipeline(model_dir, tmp_path, recorded_edits):
    clip, seen = recorded_edits
    edited = tmp_path / "edited.mp4"
    assert main(["edit", str(clip), "a blue circle", "--source-prompt", "a red circle", "--model", str(model_dir),
                 "--seed", "1", "--out", str(edited)]) == 0
    assert main(["edit", str(clip), "a blue circle", "--model", str(model_dir), "--strength", "0.4",
                 "--out", str(edited)]) == 0
    assert seen[0]["source_prompt"] == "a red circle" and seen[0]["strength"] is None  # the pipeline's default
    assert seen[1]["source_prompt"] is None and seen[1]["strength"] == 0.4
    assert probe_video(edited).num_frames > 0


def test_keep_rest_edits_against_the_models_own_caption(model_dir, tmp_path, recorded_edits, capsys):
    clip, seen = recorded_edits
    caption = UniViGUPipeline.from_pretrained(model_dir).caption(str(clip), seed=3).text
    assert caption.strip()  # something to compare the edit with
    edited = tmp_path / "edited.mp4"
    capsys.readouterr()
    assert main(["edit", str(clip), "a blue circle", "--keep-rest", "--model", str(model_dir), "--seed", "3",
                 "--out", str(edited)]) == 0
    assert seen == [dict(seen[0], source_prompt=caption, strength=None, seed=3)]  # the caption with the edit's seed
    assert f"caption before the change: {caption}\n" in capsys.readouterr().out
    assert probe_video(edited).num_frames > 0
    # the caption itself as the prompt: nothing to change, said, and no edit is made
    assert main(["edit", str(clip), caption, "--keep-rest", "--model", str(model_dir), "--seed", "3",
                 "--out", str(tmp_path / "same.mp4")]) == 2
    assert "nothing to change" in capsys.readouterr().err and len(seen) == 1
    with pytest.raises(SystemExit):  # one source at a time
        main(["edit", str(clip), "a blue circle", "--keep-rest", "--source-prompt", "a red circle"])


def test_start_takes_the_clip_from_that_time_for_caption_and_edit(model_dir, tmp_path, capsys, monkeypatch):
    pipe = UniViGUPipeline.from_pretrained(model_dir)
    fps, frames = pipe.config.fps, pipe.config.num_frames
    levels = np.arange(6 * fps, dtype=np.uint8) * 5  # 6 s; frame t is gray at level 5·t
    ramp = write_mp4(np.broadcast_to(levels[:, None, None, None], (len(levels), 16, 16, 3)).copy(),
                     tmp_path / "ramp.mp4", fps=fps)
    seen = []
    for name in ("caption", "edit"):
        original = getattr(UniViGUPipeline, name)

        def recording(self, video, *args, original=original, **kwargs):
            seen.append(video)
            return original(self, video, *args, **kwargs)

        monkeypatch.setattr(UniViGUPipeline, name, recording)

    assert main(["caption", str(ramp), "--start", "2", "--model", str(model_dir), "--seed", "0"]) == 0
    assert f"note: used {frames / fps:.1f} s from 2.0 s ({frames} frames)" in capsys.readouterr().err
    assert main(["edit", str(ramp), "a red circle", "--start", "3", "--model", str(model_dir), "--seed", "0",
                 "--no-caption", "--out", str(tmp_path / "edited.mp4")]) == 0
    starts = [round(float(video[0].mean()) / 5) for video in seen]
    assert starts == [2 * fps, 3 * fps]  # the frames shown at 2 s and at 3 s
    assert main(["caption", str(ramp), "--model", str(model_dir), "--seed", "0"]) == 0
    assert seen[-1] == str(ramp)  # without --start the pipeline reads the file itself, from its start
    assert main(["caption", str(ramp), "--start", "7", "--model", str(model_dir)]) == 2
    assert "the start, 7 s, is not within ramp.mp4, which lasts 6 s" in capsys.readouterr().err


def test_a_caption_off_the_models_grammar_gets_a_note(model_dir, tmp_path, capsys, monkeypatch):
    clip = write_mp4(np.full((8, 16, 16, 3), 90, np.uint8), tmp_path / "gray.mp4", fps=8)
    said = {"text": "a large red square stays still near the gray on, gray gray gray gray"}
    monkeypatch.setattr(UniViGUPipeline, "caption", lambda self, video, **kw: SimpleNamespace(
        text=said["text"], seed=0, input_notes=[]))
    assert main(["caption", str(clip), "--model", str(model_dir)]) == 0
    assert "note: the caption does not follow the grammar the model writes" in capsys.readouterr().err
    said["text"] = "a large red circle moves quickly to the right from the left on a gray background."
    assert main(["caption", str(clip), "--model", str(model_dir)]) == 0
    assert "grammar" not in capsys.readouterr().err


def test_captions_of_several_videos_become_a_folders_metadata(model_dir, tmp_path, capsys):
    from uvigu.data.video_folder import VideoFolderDataset

    folder = tmp_path / "mine"
    clips = [write_mp4(np.full((8, 16, 16, 3), level, np.uint8), folder / "clips" / f"{level}.mp4", fps=8)
             for level in (40, 200)]
    metadata = folder / "metadata.jsonl"
    assert main(["caption", *map(str, clips), "--metadata", str(metadata), "--model", str(model_dir),
                 "--seed", "3"]) == 0
    out = capsys.readouterr().out
    captions = [line.removeprefix("caption: ") for line in out.splitlines() if line.startswith("caption: ")]
    assert [line for line in out.splitlines() if line.startswith("video: ")] == [f"video: {c}" for c in clips]
    assert f"metadata: {metadata} (2 lines)" in out
    pipe = UniViGUPipeline.from_pretrained(model_dir)
    assert captions == [pipe.caption(str(c), seed=3).text for c in clips]
    dataset = VideoFolderDataset(folder)  # ready to train on: each caption is its clip's prompt too
    assert [(e.video.name, e.prompt, e.caption) for e in dataset.entries] == [
        ("40.mp4", captions[0], captions[0]), ("200.mp4", captions[1], captions[1])]
    assert main(["caption", str(clips[0]), "--metadata", str(metadata), "--model", str(model_dir)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(["caption", str(clips[0]), "--metadata", str(tmp_path / "other" / "m.jsonl"),
                 "--model", str(model_dir)]) == 2
    assert "is not inside" in capsys.readouterr().err


def test_captioning_many_videos_checks_them_all_first_and_loses_nothing(model_dir, tmp_path, capsys, monkeypatch):
    folder = tmp_path / "mine"
    clips = [write_mp4(np.full((8, 16, 16, 3), level, np.uint8), folder / f"{level}.mp4", fps=8)
             for level in (40, 120, 200)]
    broken = folder / "broken.mp4"
    broken.write_bytes(clips[0].read_bytes()[:200])
    metadata = folder / "metadata.jsonl"
    common = ["--metadata", str(metadata), "--model", str(model_dir), "--seed", "3"]

    # Unreadable videos are all named before any work, and nothing is written.
    assert main(["caption", str(clips[0]), str(broken), str(folder / "gone.mp4"), *common]) == 2
    err = capsys.readouterr().err
    assert "2 of 3 videos cannot be read; nothing was captioned" in err
    assert f"  {broken}: broken.mp4" in err and f"  {folder / 'gone.mp4'}: video file not found" in err
    assert not metadata.exists()

    # One that fails while it is captioned is reported, and the others are captioned and written.
    caption = UniViGUPipeline.caption

    def failing(self, video, **kwargs):
        if str(video).endswith("120.mp4"):
            raise ValueError("120.mp4 could not be decoded")
        return caption(self, video, **kwargs)

    monkeypatch.setattr(UniViGUPipeline, "caption", failing)
    assert main(["caption", *map(str, clips), *common]) == 1
    out, err = capsys.readouterr()
    assert "120.mp4 could not be decoded; going on with the other videos" in err
    assert f"1 of 3 videos could not be captioned: {clips[1]}" in err
    assert [json.loads(line)["video"] for line in metadata.read_text().splitlines()] == ["40.mp4", "200.mp4"]

    # Each caption is written as it is made: an interrupted run keeps those it finished.
    def interrupted(self, video, **kwargs):
        if str(video).endswith("120.mp4"):
            raise KeyboardInterrupt
        return caption(self, video, **kwargs)

    metadata.unlink()
    monkeypatch.setattr(UniViGUPipeline, "caption", interrupted)
    with pytest.raises(KeyboardInterrupt):
        main(["caption", *map(str, clips), *common])
    assert [json.loads(line)["video"] for line in metadata.read_text().splitlines()] == ["40.mp4"]


def test_every_captions_a_timeline_and_srt_writes_it_as_subtitles(model_dir, tmp_path, capsys, monkeypatch):
    pipe = UniViGUPipeline.from_pretrained(model_dir)
    fps = pipe.config.fps
    levels = np.arange(5 * fps, dtype=np.uint8) * 5  # 5 s; frame t is gray at level 5·t
    ramp = write_mp4(np.broadcast_to(levels[:, None, None, None], (len(levels), 16, 16, 3)).copy(),
                     tmp_path / "ramp.mp4", fps=fps)
    seen = []
    original = UniViGUPipeline.caption

    def recording(self, video, **kwargs):
        seen.append(round(float(video[0].mean()) / 5))
        return original(self, video, **kwargs)

    monkeypatch.setattr(UniViGUPipeline, "caption", recording)
    srt = tmp_path / "ramp.srt"
    assert main(["caption", str(ramp), "--every", "2", "--start", "0.5", "--srt", str(srt), "--model", str(model_dir),
                 "--seed", "1"]) == 0
    assert seen == [round(0.5 * fps), round(2.5 * fps), round(4.5 * fps)]  # the frames shown at 0.5, 2.5, 4.5 s
    out = capsys.readouterr().out
    timeline = [line for line in out.splitlines() if " – " in line]
    assert [line.split("  ")[0] for line in timeline] == [
        "00:00:00.500 – 00:00:02.500", "00:00:02.500 – 00:00:04.500", "00:00:04.500 – 00:00:05.000"]
    cues = srt.read_text().split("\n\n")
    texts = [line.split("  ", 1)[1] for line in timeline]
    assert cues[0] == f"1\n00:00:00,500 --> 00:00:02,500\n{texts[0]}" and len(cues) == 3
    assert cues[2].startswith("3\n00:00:04,500 --> 00:00:05,000\n") and f"subtitles: {srt} (3 cues)" in out
    for argv, message in [(["--srt", str(srt)], "give one video and --every"), (["--every", "0"], "positive number"),
                          (["--every", "2", "--start", "6"], "the start, 6 s, is not within ramp.mp4"),
                          (["--every", "2", "--metadata", str(tmp_path / "m.jsonl")], "leave out --every")]:
        assert main(["caption", str(ramp), *argv, "--model", str(model_dir)]) == 2
        assert message in capsys.readouterr().err


def test_joint_generation_prints_its_caption(model_dir, tmp_path, capsys):
    assert main(["generate", "a blue square moving up", "--model", str(model_dir), "--joint", "--seed", "0",
                 "--out", str(tmp_path / "j.mp4")]) == 0
    assert "caption: " in capsys.readouterr().out


def test_best_of_prints_every_take_and_keeps_the_one_it_names(model_dir, tmp_path, capsys):
    clip = tmp_path / "best.mp4"
    assert main(["generate", "a red circle moving right", "--model", str(model_dir), "--seed", "5", "--steps", "2",
                 "--best-of", "3", "--out", str(clip), "--scale", "1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    takes = [line for line in lines if line.startswith("take: ")]
    assert [t.split(",")[0] for t in takes] == ["take: seed 5", "take: seed 6", "take: seed 7"]
    kept = [t for t in takes if t.endswith("<- kept")]
    assert len(kept) == 1
    seed = int(kept[0].split(",")[0].split()[-1])
    assert f"seed: {seed}" in lines
    # the written clip is the kept take, which its seed alone makes again: nearer to it than to the others
    pipe = UniViGUPipeline.from_pretrained(model_dir)
    written = read_video(clip).frames.astype(float)
    error = {s: np.abs(written - pipe.generate("a red circle moving right", seed=s, num_inference_steps=2).frames)
             .mean() for s in (5, 6, 7)}
    assert min(error, key=error.get) == seed
    kept_caption = kept[0].split(": ", 2)[2].removesuffix("  <- kept")
    assert f"caption: {kept_caption}" in lines


def test_where_and_how_takes_are_judged_reach_the_pipeline(model_dir, tmp_path, capsys, monkeypatch):
    seen = []

    def recording(self, prompt, **kwargs):
        seen.append({k: kwargs[k] for k in ("best_of", "judge_at", "judge_steps", "read_guidance",
                                            "read_guidance_from", "motion_noise")})
        return original(self, prompt, **kwargs)

    def recording_joint(self, prompt, **kwargs):
        seen.append({"joint motion_noise": kwargs["motion_noise"]})
        return original_joint(self, prompt, **kwargs)

    original, original_joint = UniViGUPipeline.generate, UniViGUPipeline.generate_with_caption
    monkeypatch.setattr(UniViGUPipeline, "generate", recording)
    monkeypatch.setattr(UniViGUPipeline, "generate_with_caption", recording_joint)
    args = ["generate", "a red circle", "--model", str(model_dir), "--steps", "2", "--out", str(tmp_path / "c.mp4")]
    assert main([*args, "--best-of", "2", "--judge-at", "0.5", "--judge-steps", "3", "--read-guidance", "2",
                 "--read-guidance-from", "0.7", "--motion-noise", "0.3"]) == 0
    assert main([*args, "--best-of", "2"]) == 0
    assert main([*args, "--joint", "--motion-noise", "0.2"]) == 0
    assert seen == [{"best_of": 2, "judge_at": 0.5, "judge_steps": 3, "read_guidance": 2.0, "read_guidance_from": 0.7,
                     "motion_noise": 0.3},
                    {"best_of": 2, "judge_at": None, "judge_steps": None, "read_guidance": None,
                     "read_guidance_from": None, "motion_noise": None},  # the model's
                    {"joint motion_noise": 0.2}]
    assert capsys.readouterr().out.count("<- kept") == 2


def test_the_caption_options_reach_the_pipeline(model_dir, tmp_path, capsys, monkeypatch):
    clip = tmp_path / "clip.mp4"
    assert main(["generate", "a red circle", "--model", str(model_dir), "--seed", "0", "--no-caption", "--out",
                 str(clip)]) == 0
    seen = []

    def recording(self, video, **kwargs):
        seen.append(kwargs)
        return original(self, video, **kwargs)

    original = UniViGUPipeline.caption
    monkeypatch.setattr(UniViGUPipeline, "caption", recording)
    assert main(["caption", str(clip), "--model", str(model_dir), "--seed", "4", "--temperature", "0.5",
                 "--reread", "2", "--reread-threshold", "0.3", "--reread-period", "6", "--verify-weight", "50",
                 "--verify-max-texts", "2", "--verify-draws", "3"]) == 0
    assert "caption: " in capsys.readouterr().out
    options = {k: v for k, v in seen[0].items() if k != "callback"}
    assert options == {"seed": 4, "num_inference_steps": None, "temperature": 0.5, "reread": 2, "reread_threshold": 0.3,
                       "reread_period": 6, "verify_weight": 50.0, "verify_max_texts": 2,
                       "verify_draws": 3, "return_trajectory": False}


@pytest.mark.parametrize(
    "argv, message",
    [
        (["generate", "", "--seed", "0"], "prompt is empty"),
        (["generate", "a red circle", "--steps", "0"], "num_inference_steps"),
        (["generate", "a red circle", "--best-of", "0"], "best_of must be a whole number of takes from 1 to 16"),
        (["generate", "a red circle", "--best-of", "2", "--joint"], "--best-of judges each take by its own caption"),
        (["generate", "a red circle", "--read-guidance", "2", "--joint"], "--read-guidance steers a clip by reading"),
        (["generate", "a red circle", "--read-guidance", "-2"], "read_guidance must be between 0 and 30"),
        (["generate", "a red circle", "--motion-noise", "1.5"], "motion_noise must be a share of the noise from 0 to 1"),
        (["caption", "missing.mp4"], "missing.mp4"),
        (["caption", "missing.mp4", "--temperature", "-1"], "temperature"),
        (["caption", "missing.mp4", "--reread", "-1"], "reread"),
        (["caption", "missing.mp4", "--reread-threshold", "2"], "reread_threshold"),
        (["caption", "missing.mp4", "--reread-period", "1"], "reread_period"),
        (["caption", "missing.mp4", "--verify-weight", "-1"], "verify_weight"),
        (["caption", "missing.mp4", "--verify-max-texts", "1"], "verify_max_texts"),
        (["caption", "missing.mp4", "--verify-draws", "0"], "verify_draws"),
        (["edit", "missing.mp4", "a red circle", "--strength", "1.5"], "strength"),
        (["generate", "a red circle", "--device", "gpu"], "device must be auto, cpu, cuda or cuda:N"),
    ],
)
def test_bad_input_gets_a_message_and_exit_code_2(model_dir, tmp_path, capsys, argv, message):
    assert main([*argv[:1], *argv[1:], "--model", str(model_dir)]) == 2
    assert message in capsys.readouterr().err


def test_a_missing_model_is_named(tmp_path, capsys):
    assert main(["caption", "clip.mp4", "--model", str(tmp_path)]) == 2
    assert "model_index.json" in capsys.readouterr().err


def test_the_dtype_flag_loads_the_denoiser_in_bfloat16(model_dir, tmp_path, capsys):
    from uvigu.cli.common import load_pipeline

    pipe = load_pipeline(str(model_dir), "cpu", "bf16")
    dtypes = {name: p.dtype for name, p in pipe.transformer.named_parameters()}
    assert pipe.transformer.dtype == torch.bfloat16 and dtypes["patch_embedding.weight"] == torch.bfloat16
    # as diffusers loads a model in low precision: norms, modulation tables and the timestep embedder stay fp32
    kept = [name for name in dtypes if any(k in name for k in pipe.transformer._keep_in_fp32_modules)]
    assert kept and all(dtypes[name] == torch.float32 for name in kept)
    assert next(pipe.text_encoder.parameters()).dtype == torch.float32
    assert load_pipeline(str(model_dir), "cpu").transformer.dtype == torch.float32  # the default
    out = tmp_path / "a.mp4"
    assert main(["generate", "a red circle", "--model", str(model_dir), "--dtype", "bfloat16", "--seed", "0",
                 "--out", str(out)]) == 0
    assert out.is_file()
    assert main(["caption", str(out), "--model", str(model_dir), "--dtype", "float16"]) == 2
    assert "dtype must be float32, bfloat16 (fp32, bf16) or auto" in capsys.readouterr().err


def test_commands_that_make_things_default_to_bfloat16_where_the_cpu_computes_it(model_dir, tmp_path, monkeypatch):
    from uvigu import inputs, loading
    from uvigu.cli import build_parser

    parser = build_parser()
    made = [parser.parse_args([*argv, "x"]).dtype for argv in (["generate"], ["caption"], ["edit", "clip.mp4"])]
    measured = [parser.parse_args(argv).dtype for argv in (["eval"], ["sweep", "caption"], ["probe"])]
    assert made == ["auto"] * 3 and measured == ["float32"] * 3  # so that reports read the same on any CPU
    loaded = []
    load = loading.load_pipeline
    monkeypatch.setattr(loading, "load_pipeline", lambda *args: loaded.append(load(*args)) or loaded[-1])
    for native, dtype in ((True, torch.bfloat16), (False, torch.float32)):
        monkeypatch.setattr(inputs, "cpu_computes_bf16", lambda: native)
        assert main(["generate", "a red circle", "--model", str(model_dir), "--device", "cpu", "--seed", "0",
                     "--no-caption", "--out", str(tmp_path / f"{native}.mp4")]) == 0
        assert loaded[-1].transformer.dtype == dtype


def test_the_device_flag_moves_the_model_and_a_missing_gpu_is_an_error(model_dir, tmp_path, capsys, monkeypatch):
    from uvigu.cli.common import load_pipeline

    assert load_pipeline(str(model_dir), "cpu").device == torch.device("cpu")
    assert main(["generate", "a red circle", "--model", str(model_dir), "--device", "cpu", "--seed", "0",
                 "--no-caption", "--out", str(tmp_path / "a.mp4")]) == 0
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert load_pipeline(str(model_dir)).device == torch.device("cpu")  # auto, with no GPU
    for argv in (["generate", "a red circle"], ["caption", "clip.mp4"], ["edit", "clip.mp4", "a red circle"],
                 ["eval", "--num", "1"], ["sweep", "caption", "--num", "1"], ["probe", "--num", "1"]):
        assert main([*argv, "--model", str(model_dir), "--device", "cuda"]) == 2
        assert "asks for a GPU, but this torch sees none" in capsys.readouterr().err
