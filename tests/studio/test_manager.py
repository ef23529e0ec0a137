import json
import threading
import zipfile
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from tests.studio.fake_pipeline import FakePipeline
from uvigu import Cancelled
from uvigu.videoio import writing
from uvigu.studio import StudioBusy, StudioSettings
from uvigu.studio.trajectories import TRAJECTORY_PICTURE_SIDE
from uvigu.videoio import probe_video, write_mp4


def generate(studio, token, prompt="a red circle moving right", **kw):
    return studio.submit_generate(token, prompt, **kw).result(timeout=30)


# -- the creative loop -----------------------------------------------------------------------


def test_generate_then_caption_stores_a_complete_take(make_studio):
    pipe = FakePipeline()
    studio = make_studio(pipe)
    token = studio.new_session()
    take = generate(studio, token, seed=7, num_inference_steps=2, guidance_scale=3.0)

    assert [kind for kind, _ in pipe.calls] == ["generate", "caption"]  # the round trip
    frames = FakePipeline.frames_for("a red circle moving right", 7)
    assert take.caption == FakePipeline.caption_for(frames)
    assert (take.mode, take.prompt, take.seed, take.seq, take.parent_id) == (
        "generate", "a red circle moving right", 7, 1, None)
    assert take.settings == {"num_inference_steps": 2, "guidance_scale": 3.0}
    assert set(take.timings) == {"queued", "generate", "caption"}

    info = probe_video(studio.clip_path(token, take.id))
    assert (info.codec, info.pix_fmt, info.num_frames) == ("h264", "yuv420p", 4)
    assert min(info.width, info.height) >= 256  # enlarged for display
    assert studio.thumbnail_path(token, take.id).is_file()


def test_joint_mode_captions_in_the_same_pass(make_studio):
    pipe = FakePipeline()
    studio = make_studio(pipe)
    token = studio.new_session()
    take = generate(studio, token, mode="joint", seed=1)
    assert [kind for kind, _ in pipe.calls] == ["joint"]
    assert take.mode == "joint" and take.caption


def test_without_a_seed_a_random_one_is_used_and_recorded(make_studio):
    studio = make_studio()
    token = studio.new_session()
    first, second = generate(studio, token), generate(studio, token)
    assert 0 <= first.seed < 2**31 and first.seed != second.seed
    again = generate(studio, token, seed=first.seed)
    assert np.array_equal(np.load(studio.store.take_file(studio._sid(token), again.id, "frames.npy")),
                          np.load(studio.store.take_file(studio._sid(token), first.id, "frames.npy")))


def test_text_length_counts_tokens_against_the_model_s_limit(make_studio):
    studio = make_studio()
    assert studio.text_length("a red circle moving right") == (5, FakePipeline.max_text_tokens)
    assert studio.text_length("   ") == (0, FakePipeline.max_text_tokens)


def test_unknown_words_are_recorded_with_the_take(make_studio):
    studio = make_studio()
    token = studio.new_session()
    take = generate(studio, token, prompt="a red zorblax moving right")
    assert take.unknown_words == ("zorblax",)
    assert studio.unknown_words("a blue square") == []


def test_edit_regenerates_from_the_take_with_the_edited_caption(make_studio):
    pipe = FakePipeline()
    studio = make_studio(pipe)
    token = studio.new_session()
    parent = generate(studio, token, seed=3)
    child = studio.submit_edit(token, parent.id, "a green circle moves right", strength=0.5,
                               seed=3).result(timeout=30)
    assert (child.mode, child.parent_id, child.prompt, child.seq) == (
        "edit", parent.id, "a green circle moves right", 2)
    assert child.settings["strength"] == 0.5
    assert pipe.calls[2:] == [("edit", "a green circle moves right"), ("caption", "")]
    sid = studio._sid(token)
    source = np.load(studio.store.take_file(sid, parent.id, "frames.npy"))
    expected = pipe.edit(source, "a green circle moves right", strength=0.5, seed=3).frames
    assert np.array_equal(np.load(studio.store.take_file(sid, child.id, "frames.npy")), expected)


def test_an_edit_that_keeps_the_rest_compares_with_the_take_s_caption(make_studio):
    pipe = FakePipeline()
    studio = make_studio(pipe)
    token = studio.new_session()
    parent = generate(studio, token, seed=3)
    kept = studio.submit_edit(token, parent.id, "a green circle moves right", keep_rest=True,
                              seed=3).result(timeout=30)  # the model's strength for such an edit
    plain = studio.submit_edit(token, parent.id, "a green circle moves right", seed=3).result(timeout=30)
    assert pipe.source_prompts == [parent.caption, None]
    assert kept.settings == {"strength": 0.9, "keep_rest": True} and plain.settings == {"strength": 0.6}
    assert studio.take(token, kept.id).settings["keep_rest"] is True  # saved with the take


def test_keeping_the_rest_needs_a_caption_to_compare_with(make_studio, monkeypatch):
    pipe = FakePipeline()
    monkeypatch.setattr(pipe, "caption_for", lambda frames: "")
    studio = make_studio(pipe)
    token = studio.new_session()
    take = generate(studio, token)
    with pytest.raises(ValueError, match="no caption to compare the edit with"):
        studio.submit_edit(token, take.id, "a blue circle", keep_rest=True)
    assert pipe.source_prompts == []


def test_keeping_the_rest_of_an_unchanged_caption_is_refused_before_it_runs(make_studio):
    pipe = FakePipeline()
    studio = make_studio(pipe)
    token = studio.new_session()
    take = generate(studio, token)
    with pytest.raises(ValueError, match="caption is unchanged"):
        studio.submit_edit(token, take.id, "  " + take.caption.replace(" ", "  "), keep_rest=True)
    assert pipe.source_prompts == []
    studio.submit_edit(token, take.id, take.caption).result(timeout=30)  # a plain edit redraws: allowed
    assert pipe.source_prompts == [None]


def test_branching_from_an_old_take_forms_a_tree(make_studio):
    studio = make_studio()
    token = studio.new_session()
    root = generate(studio, token, seed=1)
    a = studio.submit_edit(token, root.id, "a blue circle", seed=1).result(timeout=30)
    b = studio.submit_edit(token, root.id, "a yellow circle", seed=1).result(timeout=30)
    assert a.parent_id == b.parent_id == root.id
    assert [t.seq for t in studio.takes(token)] == [1, 2, 3]


def test_critique_is_saved_with_the_take(make_studio):
    studio = make_studio()
    token = studio.new_session()
    take = generate(studio, token)
    assert studio.set_critique(token, take.id, "  too slow  ").critique == "too slow"
    assert studio.take(token, take.id).critique == "too slow"


def test_tries_keep_the_clip_whose_caption_matches_the_prompt_best(make_studio):
    pipe = FakePipeline()
    prompt = "a red circle moving right"
    # the judge prefers the try whose caption's number is highest
    pipe.judge = lambda p, caption: int(caption.split()[-1]) / 255
    studio = make_studio(pipe)
    token = studio.new_session()
    take = generate(studio, token, prompt, seed=40, num_inference_steps=2, best_of=3)

    assert [kind for kind, _ in pipe.calls] == ["generate", "caption"] * 3  # a clip and its caption per try
    captions = {s: FakePipeline.caption_for(FakePipeline.frames_for(prompt, s)) for s in (40, 41, 42)}
    best = max(captions, key=lambda s: int(captions[s].split()[-1]))
    assert take.seed == best and take.caption == captions[best]
    assert take.settings["best_of"] == 3
    assert [(t["seed"], t["caption"]) for t in take.settings["tries"]] == list(captions.items())
    # the kept clip is the chosen try's, and the trajectory is its clip's steps, then its caption's
    stored = studio.takes(token)[-1]
    assert stored.settings["tries"] == take.settings["tries"]
    assert [s.stage for s in studio.trajectory(token).steps] == ["generate"] * 2 + ["caption"] * 3
    assert studio.trajectory(token).steps[-1].text == take.caption
    assert set(take.timings) == {"queued", "generate"}


def test_a_regeneration_can_keep_the_best_of_several_tries(make_studio):
    pipe = FakePipeline()
    pipe.judge = lambda p, caption: -int(caption.split()[-1])  # the lowest number wins
    studio = make_studio(pipe)
    token = studio.new_session()
    first = generate(studio, token, seed=1)
    take = studio.submit_edit(token, first.id, "a blue circle moves slowly to the right", keep_rest=True, seed=10,
                              best_of=2).result(timeout=30)
    assert [kind for kind, _ in pipe.calls[2:]] == ["edit", "caption"] * 2
    assert pipe.source_prompts == [first.caption] * 2  # both tries keep the rest
    tries = take.settings["tries"]
    assert [t["seed"] for t in tries] == [10, 11] and take.settings["best_of"] == 2
    kept = min(tries, key=lambda t: int(t["caption"].split()[-1]))
    assert (take.seed, take.caption, take.parent_id) == (kept["seed"], kept["caption"], first.id)
    assert take.settings["keep_rest"] is True
    assert [s.stage for s in studio.trajectory(token).steps] == ["edit"] * 3 + ["caption"] * 3


def test_a_take_can_leave_the_high_noise_expert_out_and_says_so(make_studio):
    pipe = FakePipeline()
    studio = make_studio(pipe)
    assert studio.model_defaults().high_noise_expert is False
    pipe.high_noise_expert = (object(), 0.99)
    assert studio.model_defaults().high_noise_expert is True
    token = studio.new_session()
    prompt = "a red circle moving right"
    with_it = generate(studio, token, prompt, seed=3)
    alone = generate(studio, token, prompt, seed=3, high_noise_expert=False)
    assert "high_noise_expert" not in with_it.settings and alone.settings["high_noise_expert"] is False
    assert studio.takes(token)[-1].settings["high_noise_expert"] is False  # stored with the take
    clip = lambda take: np.load(studio.store.take_file(studio._sid(token), take.id, "frames.npy"))  # noqa: E731
    assert not np.array_equal(clip(with_it), clip(alone))
    # every clip-making path passes it on: joint, tries, edits of a take and of an upload
    generate(studio, token, prompt, mode="joint", high_noise_expert=False)
    generate(studio, token, prompt, best_of=2, high_noise_expert=False)
    edited = studio.submit_edit(token, with_it.id, "a blue circle moves slowly to the right",
                                high_noise_expert=False).result(timeout=30)
    assert edited.settings["high_noise_expert"] is False
    assert pipe.expert_flags == [True, False, False, False, False, False]
    with pytest.raises(ValueError, match="high_noise_expert is True or False"):
        studio.submit_generate(token, prompt, high_noise_expert="no")


def test_a_generated_take_can_start_from_plain_noise_and_says_so(make_studio):
    pipe = FakePipeline()
    studio = make_studio(pipe)
    assert studio.model_defaults().motion_noise == 0.0  # a pipeline without the setting
    pipe.config = SimpleNamespace(motion_noise=0.35)
    assert studio.model_defaults().motion_noise == 0.35
    token = studio.new_session()
    prompt = "a red circle moving right"
    moving = generate(studio, token, prompt, seed=3)
    plain = generate(studio, token, prompt, seed=3, moving_noise=False)
    assert "motion_noise" not in moving.settings and plain.settings["motion_noise"] == 0.0
    assert studio.takes(token)[-1].settings["motion_noise"] == 0.0  # stored with the take
    # joint and tries pass it on; None: the model's own setting
    generate(studio, token, prompt, mode="joint", moving_noise=False)
    generate(studio, token, prompt, best_of=2, moving_noise=False)
    assert pipe.motion_noises == [None, 0.0, 0.0, 0.0, 0.0]
    with pytest.raises(ValueError, match="moving_noise is True or False"):
        studio.submit_generate(token, prompt, moving_noise=1)


@pytest.mark.parametrize("kwargs, message", [
    ({"best_of": 0}, "Tries per take must be a whole number from 1 to 4, got 0"),
    ({"best_of": 5}, "from 1 to 4, got 5"),
    ({"best_of": 2.5}, "got 2.5"),
    ({"best_of": True}, "got True"),
    ({"best_of": 2, "mode": "joint"}, "need the “Generate, then caption” mode"),
])
def test_bad_tries_are_refused_before_queueing(make_studio, kwargs, message):
    pipe = FakePipeline()
    studio = make_studio(pipe)
    token = studio.new_session()
    with pytest.raises(ValueError, match=message):
        studio.submit_generate(token, "a red circle", **kwargs)
    assert pipe.calls == [] and studio.takes(token) == []


def test_progress_events_cover_both_stages(make_studio):
    studio = make_studio()
    token = studio.new_session()
    job = studio.submit_generate(token, "a red circle", num_inference_steps=2)
    events = list(job.events())
    job.result(timeout=30)
    assert [(e.stage, e.index, e.num_steps) for e in events] == [
        ("Generating video", 0, 2), ("Generating video", 1, 2),
        ("Captioning", 0, 3), ("Captioning", 1, 3), ("Captioning", 2, 3)]
    assert events[-1].text  # the caption as it forms


def test_trajectory_of_the_last_run_can_be_scrubbed(make_studio):
    studio = make_studio()
    token = studio.new_session()
    assert studio.trajectory(token) is None
    take = generate(studio, token, num_inference_steps=2)
    trajectory = studio.trajectory(token)
    assert trajectory.take_id == take.id
    assert [s.stage for s in trajectory.steps] == ["generate"] * 2 + ["caption"] * 3
    path, step = studio.trajectory_clip(token, 4)
    assert step.text == take.caption and probe_video(path).codec == "h264"
    with pytest.raises(ValueError, match="between 0 and 4"):
        studio.trajectory_clip(token, 5)
    newer = generate(studio, token, num_inference_steps=2)
    studio.trajectory_clip(token, 0)
    folders = (studio.store.session_dir(studio._sid(token)) / "trajectory").iterdir()
    assert [f.name for f in folders] == [newer.id]  # older runs' step clips are gone


def test_the_steps_of_the_last_run_are_saved_as_one_picture(make_studio):
    studio = make_studio()
    token = studio.new_session()
    with pytest.raises(ValueError, match="generate or caption a clip first"):
        studio.trajectory_png(token)
    generate(studio, token, num_inference_steps=2)
    take = generate(studio, token, num_inference_steps=2)
    path = studio.trajectory_png(token)
    assert path.name == "uvigu-steps-2.png" and path.parent.name == take.id  # goes with the run's step clips
    picture = np.asarray(Image.open(path).convert("RGB"))
    steps = studio.trajectory(token).steps  # 2 of the clip, 3 of its caption: a row each
    side = TRAJECTORY_PICTURE_SIDE  # the fake model's 8 px frames, shown at 128 px
    pad, label = writing._SHEET_PAD, writing._SHEET_LABEL_PX
    assert picture.shape[1] == pad + label + 4 * (side + pad) + writing._SHEET_TEXT_PX  # four frames and the text
    assert picture.shape[0] > len(steps) * (side + pad)
    top = pad + writing._SHEET_FONT_PX + 4 + pad  # under the title's line
    np.testing.assert_array_equal(picture[top:top + side, pad + label:pad + label + side],
                                  steps[0].frames[0].repeat(side // 8, axis=0).repeat(side // 8, axis=1))
    assert (picture[pad:top - pad, :pad + label] < 128).any()  # the title
    assert studio.trajectory_png(token) == path
    with pytest.raises(ValueError, match="expired or does not exist"):
        studio.trajectory_png("not-a-session")


def test_export_zips_clips_and_a_json_record(make_studio):
    studio = make_studio()
    token = studio.new_session()
    with pytest.raises(ValueError, match="no takes"):
        studio.export_session(token)
    first = generate(studio, token)
    studio.set_critique(token, first.id, "more red")
    studio.submit_edit(token, first.id, "a blue circle").result(timeout=30)
    with zipfile.ZipFile(studio.export_session(token)) as archive:
        meta = json.loads(archive.read("takes.json"))
        names = set(archive.namelist())
    assert [t["critique"] for t in meta["takes"]] == ["more red", ""]
    assert meta["takes"][1]["parent_id"] == first.id
    assert {t["clip"] for t in meta["takes"]} | {t["frames"] for t in meta["takes"]} | {"takes.json"} == names


def test_a_take_is_saved_as_a_looping_gif_of_its_frames(make_studio):
    from PIL import Image, ImageSequence

    studio = make_studio()
    token = studio.new_session()
    first, second = generate(studio, token), generate(studio, token, "a blue square moving up")
    path = studio.take_gif(token, second.id)
    assert path.name == "uvigu-take-2.gif"
    frames = np.load(studio.store.take_file(studio._sid(token), second.id, "frames.npy"))
    scale = 256 // 8  # enlarged as the take's clip is: the fake model's 8×8 frames to 256×256
    with Image.open(path) as gif:
        shown = [np.asarray(frame.convert("RGB")) for frame in ImageSequence.Iterator(gif)]
        assert gif.info["loop"] == 0 and gif.info["duration"] in (120, 130)  # looping, 8 fps in 1/100 s steps
    assert len(shown) == len(frames) and shown[0].shape == (256, 256, 3)
    enlarged = frames.repeat(scale, axis=1).repeat(scale, axis=2)
    assert np.abs(np.stack(shown).astype(int) - enlarged).mean() < 8  # a GIF's 256 colours
    assert studio.take_gif(token, first.id).name == "uvigu-take-1.gif" and not path.exists()  # the latest kept
    with pytest.raises(ValueError):
        studio.take_gif(studio.new_session(), first.id)  # another session's take


# -- persistence -----------------------------------------------------------------------------


def test_takes_survive_a_restart(make_studio):
    studio = make_studio()
    token = studio.new_session()
    take = generate(studio, token)
    studio.set_critique(token, take.id, "nice")
    studio.close()

    reopened = make_studio()
    assert reopened.has_session(token)
    assert reopened.open_session(token) == token
    (again,) = reopened.takes(token)
    assert again.id == take.id
    assert again.critique == "nice" and again.caption == take.caption
    assert reopened.clip_path(token, take.id).is_file()


def test_a_failed_job_leaves_the_session_as_it_was(make_studio):
    def fail(kind, index):
        if kind == "caption" and index == 1:
            raise RuntimeError("device lost")

    studio = make_studio(FakePipeline(on_step=fail))
    token = studio.new_session()
    with pytest.raises(RuntimeError, match="device lost"):
        generate(studio, token)
    assert studio.takes(token) == []
    session_dir = studio.store.session_dir(studio._sid(token))
    assert [p for p in session_dir.rglob("*") if p.is_file()] == []


def test_a_crash_while_writing_leaves_nothing_half_written(make_studio, monkeypatch):
    studio = make_studio()
    token = studio.new_session()
    kept = generate(studio, token)

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(studio.store, "commit_take", crash)
    with pytest.raises(OSError):
        generate(studio, token)
    monkeypatch.undo()
    assert [t.id for t in studio.takes(token)] == [kept.id]
    sid = studio._sid(token)
    assert not list(studio.store.session_dir(sid).glob(".staging-*"))


def test_leftovers_of_a_killed_process_are_removed_on_restart(make_studio):
    studio = make_studio()
    token = studio.new_session()
    kept = generate(studio, token)
    sid = studio._sid(token)
    session_dir = studio.store.session_dir(sid)
    studio.close()
    # What a kill at each point of writing a take leaves behind:
    (session_dir / ".staging-deadbeef").mkdir()
    (session_dir / ".staging-deadbeef" / "clip.mp4").write_bytes(b"half")
    (session_dir / "takes" / "0123456789abcdef").mkdir()
    (session_dir / "takes" / "0123456789abcdef" / "frames.npy").write_bytes(b"half")

    reopened = make_studio()
    assert [t.id for t in reopened.takes(token)] == [kept.id]
    assert sorted(p.name for p in (session_dir / "takes").iterdir()) == [kept.id]
    assert not list(session_dir.glob(".staging-*"))


def test_a_process_killed_mid_job_loses_only_that_job(tmp_path):
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent(f"""
        import os, sys
        sys.path.insert(0, {str(__import__('pathlib').Path(__file__).parents[2])!r})
        from tests.studio.fake_pipeline import FakePipeline
        from uvigu.studio import Studio, StudioSettings

        def die(kind, index):
            if pipe.kill and kind == "caption" and index == 1:
                os._exit(9)

        pipe = FakePipeline(on_step=die)
        pipe.kill = False
        studio = Studio(pipe, StudioSettings(data_dir={str(tmp_path / 'data')!r}))
        token = studio.new_session()
        studio.submit_generate(token, "a red circle").result()
        print(token, flush=True)
        pipe.kill = True
        studio.submit_generate(token, "a blue square").result()
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 9, proc.stderr
    token = proc.stdout.split()[0]

    from uvigu.studio import Studio, StudioSettings
    studio = Studio(FakePipeline(), StudioSettings(data_dir=tmp_path / "data"))
    try:
        assert [t.prompt for t in studio.takes(token)] == ["a red circle"]
        files = sorted(p.name for p in studio.store.session_dir(studio._sid(token)).rglob("*") if p.is_file())
        assert files == ["clip.mp4", "frames.npy", "thumb.png"]
    finally:
        studio.close()


# -- isolation -------------------------------------------------------------------------------


def test_sessions_cannot_reach_each_others_takes_or_files(make_studio):
    studio = make_studio()
    alice, mallory = studio.new_session(), studio.new_session()
    take = generate(studio, alice)
    for call in (
        lambda: studio.take(mallory, take.id),
        lambda: studio.clip_path(mallory, take.id),
        lambda: studio.thumbnail_path(mallory, take.id),
        lambda: studio.set_critique(mallory, take.id, "mine now"),
        lambda: studio.submit_edit(mallory, take.id, "a blue circle"),
    ):
        with pytest.raises(ValueError, match="No such take"):
            call()
    assert studio.takes(mallory) == []
    assert studio.take(alice, take.id).critique == ""


@pytest.mark.parametrize("crafted", [
    "../x", "..", "", "0" * 16, "0123456789ABCDEF", "0123456789abcde/", "/etc/passwd",
    "0123456789abcdef\x00", 12, None,
])
def test_crafted_take_ids_are_refused(make_studio, crafted):
    studio = make_studio()
    token = studio.new_session()
    generate(studio, token)
    with pytest.raises(ValueError, match="No such take"):
        studio.clip_path(token, crafted)


def test_crafted_paths_cannot_leave_the_session(make_studio, tmp_path):
    studio = make_studio()
    alice, mallory = studio.new_session(), studio.new_session()
    take = generate(studio, alice)
    alice_dir = studio.store.session_dir(studio._sid(alice))
    (tmp_path / "secret.txt").write_text("secret")
    own = f"takes/{take.id}/clip.mp4"
    assert studio.session_file(alice, own).is_file()
    for crafted in (
        f"../{alice_dir.name}/{own}", str(alice_dir / own), "../../../secret.txt",
        str(tmp_path / "secret.txt"), "takes/../../../studio.sqlite3", ".", "",
    ):
        with pytest.raises(ValueError, match="not part of this session"):
            studio.session_file(mallory, crafted)


@pytest.mark.parametrize("token", [None, "", "not-a-session", "../" * 5, "x" * 32])
def test_unknown_tokens_are_refused_and_replaced(make_studio, token):
    studio = make_studio()
    assert not studio.has_session(token)
    with pytest.raises(ValueError, match="expired or does not exist"):
        studio.takes(token)
    fresh = studio.open_session(token)
    assert fresh != token and studio.has_session(fresh)


def test_tokens_are_not_stored(make_studio):
    studio = make_studio()
    token = studio.new_session()
    generate(studio, token)
    studio.close()
    data_dir = studio.settings.data_dir
    assert not any(token in str(p) for p in data_dir.rglob("*"))
    assert token.encode() not in (data_dir / "studio.sqlite3").read_bytes()


# -- the queue, cancel, limits ---------------------------------------------------------------


def test_many_jobs_from_many_sessions_all_finish_one_at_a_time(make_studio):
    pipe = FakePipeline(step_delay=0.001)
    studio = make_studio(pipe, max_queue=32)
    tokens = [studio.new_session() for _ in range(6)]
    results, errors = [], []

    def visitor(token, n):
        try:
            for k in range(3):
                results.append((token, generate(studio, token, prompt=f"a red circle {n} {k}")))
        except Exception as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=visitor, args=(t, n)) for n, t in enumerate(tokens)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert len(results) == 18 and pipe.max_active == 1
    for token in tokens:
        assert [t.seq for t in studio.takes(token)] == [1, 2, 3]


def test_a_full_queue_is_refused_with_a_busy_message(make_studio):
    gate = threading.Event()
    studio = make_studio(FakePipeline(on_step=lambda kind, i: gate.wait(10)), max_queue=2)
    a, b, c = (studio.new_session() for _ in range(3))
    jobs = [studio.submit_generate(a, "a red circle"), studio.submit_generate(b, "a red circle")]
    with pytest.raises(StudioBusy, match="busy"):
        studio.submit_generate(c, "a red circle")
    gate.set()
    for job in jobs:
        job.result(timeout=30)


def test_stop_halts_between_steps_and_keeps_the_session_as_it_was(make_studio):
    started, seen = threading.Event(), []

    def step(kind, index):
        seen.append((kind, index))
        started.set()
        threading.Event().wait(0.01)

    studio = make_studio(FakePipeline(on_step=step))
    token = studio.new_session()
    job = studio.submit_generate(token, "a red circle", num_inference_steps=100)
    queued = studio.submit_generate(token, "a blue circle")
    assert started.wait(10)
    assert studio.cancel(token) == 2
    with pytest.raises(Cancelled):
        job.result(timeout=10)
    with pytest.raises(Cancelled):
        queued.result(timeout=10)
    assert len(seen) < 100 and all(kind == "generate" for kind, _ in seen)
    assert studio.takes(token) == []
    assert generate(studio, token).seq == 1  # the session carries on


@pytest.mark.parametrize("kwargs, message", [
    ({"prompt": ""}, "prompt is empty"),
    ({"prompt": "   "}, "prompt is empty"),
    ({"prompt": "a " * 300}, "599 characters long; the limit is 400"),
    ({"num_inference_steps": 0}, "Steps must be a whole number from 1 to 100"),
    ({"num_inference_steps": 101}, "Steps must be a whole number from 1 to 100"),
    ({"num_inference_steps": 2.5}, "Steps must be a whole number"),
    ({"guidance_scale": -1}, "Guidance must be between 0 and 20"),
    ({"guidance_scale": 1e9}, "Guidance must be between 0 and 20"),
    ({"seed": -1}, "seed must be between 0 and 2147483647"),
    ({"seed": 2**40}, "seed must be between 0 and 2147483647"),
    ({"seed": 1.5}, "seed must be a whole number"),
    ({"mode": "dream"}, "Mode must be one of generate, joint"),
])
def test_bad_generate_inputs_get_clear_messages(make_studio, kwargs, message):
    studio = make_studio()
    token = studio.new_session()
    kwargs = {"prompt": "a red circle", **kwargs}
    with pytest.raises(ValueError, match=message):
        studio.submit_generate(token, kwargs.pop("prompt"), **kwargs)
    assert studio.takes(token) == []


@pytest.mark.parametrize("strength", [0, -0.5, 1.5])
def test_edit_strength_out_of_range_is_refused(make_studio, strength):
    studio = make_studio()
    token = studio.new_session()
    take = generate(studio, token)
    with pytest.raises(ValueError, match="Strength must be between 0.05 and 1"):
        studio.submit_edit(token, take.id, "a blue circle", strength=strength)


def test_empty_edited_caption_is_refused(make_studio):
    studio = make_studio()
    token = studio.new_session()
    take = generate(studio, token)
    with pytest.raises(ValueError, match="edited caption is empty"):
        studio.submit_edit(token, take.id, "  ")


def test_pipeline_value_errors_reach_the_caller_unchanged(make_studio):
    studio = make_studio(max_prompt_chars=10_000)
    token = studio.new_session()
    with pytest.raises(ValueError, match="more than 32 tokens"):
        generate(studio, token, prompt="red " * 40)


def test_critique_and_takes_per_session_are_limited(make_studio):
    studio = make_studio(max_takes_per_session=1, max_critique_chars=10)
    token = studio.new_session()
    take = generate(studio, token)
    with pytest.raises(ValueError, match="limit is 10"):
        studio.set_critique(token, take.id, "x" * 11)
    with pytest.raises(ValueError, match="limit of 1 takes"):
        studio.submit_generate(token, "a blue circle")


def test_deleting_a_take_removes_its_record_and_files_and_keeps_its_children(make_studio):
    studio = make_studio()
    token = studio.new_session()
    root = generate(studio, token, seed=1)
    child = studio.submit_edit(token, root.id, "a green circle moves right", seed=2).result(timeout=30)
    other = generate(studio, token, seed=3)
    sid = studio._sid(token)
    folder = studio.store.take_dir(sid, root.id)
    assert folder.is_dir()
    assert studio.delete_takes(token, [root.id]) == 1
    assert [t.id for t in studio.takes(token)] == [child.id, other.id]
    assert not folder.exists()
    assert studio.take(token, child.id).parent_id == root.id  # kept, with a parent no longer there
    with pytest.raises(ValueError, match="No such take"):
        studio.clip_path(token, root.id)
    # Its children are still edited and exported as any take.
    studio.submit_edit(token, child.id, "a blue circle moves right", seed=4).result(timeout=30)
    with zipfile.ZipFile(studio.export_session(token)) as archive:
        record = json.loads(archive.read("takes.json"))
    assert [t["seq"] for t in record["takes"]] == [2, 3, 4]


def test_deleting_takes_frees_room_in_a_full_session(make_studio):
    studio = make_studio(max_takes_per_session=2)
    token = studio.new_session()
    for _ in range(2):
        generate(studio, token)
    with pytest.raises(ValueError, match="limit of 2 takes; export it to keep a copy and delete takes"):
        studio.submit_generate(token, "a blue circle")
    assert studio.delete_takes(token) == 2  # every take
    assert studio.takes(token) == []
    assert not list((studio.store.session_dir(studio._sid(token)) / "takes").iterdir())
    assert generate(studio, token).seq == 1


def test_deleting_a_take_of_another_session_or_an_unknown_one_is_refused(make_studio):
    studio = make_studio()
    mine, theirs = studio.new_session(), studio.new_session()
    take = generate(studio, theirs)
    kept = generate(studio, mine)
    for ids in ([take.id], [kept.id, take.id], ["0" * 16]):
        with pytest.raises(ValueError, match="No such take in this session"):
            studio.delete_takes(mine, ids)
    assert [t.id for t in studio.takes(mine)] == [kept.id]  # nothing deleted when one id is wrong
    assert studio.take(theirs, take.id) == take


def test_takes_are_not_deleted_while_one_is_being_made(make_studio):
    started, release = threading.Event(), threading.Event()

    def step(kind, index):
        started.set()
        release.wait(10)

    studio = make_studio(FakePipeline(on_step=step))
    token = studio.new_session()
    release.set()
    take = generate(studio, token)
    release.clear()
    started.clear()
    job = studio.submit_generate(token, "a blue circle")
    assert started.wait(10)
    with pytest.raises(ValueError, match="still being made; wait for it"):
        studio.delete_takes(token, [take.id])
    release.set()
    job.result(timeout=30)
    assert studio.delete_takes(token, [take.id]) == 1


def test_an_edit_waiting_in_the_queue_survives_the_deletion_of_its_take(make_studio):
    studio = make_studio()
    token = studio.new_session()
    take = generate(studio, token, seed=1)
    source = np.load(studio.store.take_file(studio._sid(token), take.id, "frames.npy"))
    studio.jobs.unfinished = lambda owner: 0  # the check is passed: the edit is queued, not yet run
    worker = threading.Lock()
    with worker:
        studio.jobs.submit("someone else", lambda job: worker.acquire() and worker.release())
        edit = studio.submit_edit(token, take.id, "a green circle moves right", strength=0.5, seed=2)
        studio.delete_takes(token, [take.id])
    child = edit.result(timeout=30)
    expected = studio.pipe.edit(source, "a green circle moves right", strength=0.5, seed=2).frames
    assert np.array_equal(np.load(studio.store.take_file(studio._sid(token), child.id, "frames.npy")), expected)


def test_deleting_the_take_of_the_last_run_forgets_its_trajectory(make_studio):
    studio = make_studio()
    token = studio.new_session()
    older = generate(studio, token, num_inference_steps=2)
    newer = generate(studio, token, num_inference_steps=2)
    studio.trajectory_clip(token, 0)
    studio.delete_takes(token, [older.id])
    assert studio.trajectory(token).take_id == newer.id
    studio.delete_takes(token, [newer.id])
    assert studio.trajectory(token) is None
    assert not (studio.store.session_dir(studio._sid(token)) / "trajectory").exists()


def test_a_crash_between_deleting_the_record_and_the_files_is_mended_on_restart(make_studio, monkeypatch):
    studio = make_studio()
    token = studio.new_session()
    take, kept = generate(studio, token), generate(studio, token)
    sid = studio._sid(token)
    monkeypatch.setattr("uvigu.studio.store.shutil.rmtree", lambda *a, **k: None)  # killed before the files go
    studio.delete_takes(token, [take.id])
    monkeypatch.undo()
    assert studio.store.take_dir(sid, take.id).is_dir()
    studio.close()
    reopened = make_studio()
    assert [t.id for t in reopened.takes(token)] == [kept.id]
    assert not reopened.store.take_dir(sid, take.id).exists()


def test_cleanup_removes_only_old_sessions(make_studio):
    studio = make_studio()
    old, new = studio.new_session(), studio.new_session()
    generate(studio, old)
    old_dir = studio.store.session_dir(studio._sid(old))
    studio.store._db.execute("UPDATE sessions SET last_used = 0 WHERE id = ?", (studio._sid(old),))
    assert studio.cleanup(max_age_days=1) == 1
    assert not studio.has_session(old) and studio.has_session(new)
    assert not old_dir.exists()


@pytest.mark.parametrize("days", [0.0, -1.0, float("nan")])
def test_a_keeping_time_that_would_delete_every_session_is_refused(tmp_path, days):
    with pytest.raises(ValueError, match="need session_max_age_days > 0"):
        StudioSettings(data_dir=tmp_path, session_max_age_days=days)


def test_sessions_kept_for_ever_are_never_cleaned_up(make_studio):
    studio = make_studio(session_max_age_days=float("inf"))
    old = studio.new_session()
    generate(studio, old)
    studio.store._db.execute("UPDATE sessions SET last_used = 0 WHERE id = ?", (studio._sid(old),))
    assert studio.cleanup() == 0 and studio.has_session(old)


# -- uploads ---------------------------------------------------------------------------------


@pytest.fixture
def clip(tmp_path):
    def make(name="clip.mp4", frames=8, size=(16, 24), fps=8):
        rng = np.random.default_rng(0)
        video = rng.integers(0, 256, size=(frames, *size, 3), dtype=np.uint8)
        return write_mp4(video, tmp_path / name, fps=fps)
    return make


def test_an_upload_is_fitted_to_the_model_and_captioned(make_studio, clip):
    studio = make_studio()
    token = studio.new_session()
    take = studio.submit_caption_upload(token, clip(frames=40, size=(16, 24), fps=16)).result(timeout=30)
    assert take.mode == "caption" and take.caption
    notes = " ".join(take.notes)
    assert "16 fps → 8 fps" in notes and "24×16 → 8×8" in notes
    edited = studio.submit_edit(token, take.id, "a red circle").result(timeout=30)
    assert edited.parent_id == take.id


def test_an_upload_is_taken_from_the_start_time_given(make_studio, tmp_path):
    studio = make_studio()
    token = studio.new_session()
    levels = np.arange(48, dtype=np.uint8) * 5  # 6 s at 8 fps; frame t is gray at level 5·t
    path = write_mp4(np.broadcast_to(levels[:, None, None, None], (48, 8, 8, 3)).copy(), tmp_path / "ramp.mp4", fps=8)
    frames, notes = studio.load_upload(path, 2.0)
    assert round(float(frames[0].mean()) / 5) == 16  # the frame shown at 2 s
    assert any("from 2.0 s" in note for note in notes)
    take = studio.submit_caption_upload(token, path, start_s=3.0).result(timeout=30)
    assert any("from 3.0 s" in note for note in take.notes)
    for start, message in [(-1, "The start must be a time in seconds"), (7, "is not within ramp.mp4")]:
        with pytest.raises(ValueError, match=message):
            studio.load_upload(path, start)


def test_a_caption_is_checked_against_the_grammar_the_model_declares(make_studio):
    from uvigu.testing import tiny_pipeline

    assert make_studio().caption_follows_grammar("a small background") is None  # a model that declares none
    studio = make_studio(pipe=tiny_pipeline())  # the Shapes grammar
    assert studio.caption_follows_grammar("a small background") is False
    assert studio.caption_follows_grammar("a small red circle moves slowly up from the left on a gray background.")


def test_an_upload_s_length_is_told_after_the_checks_of_the_whole_file(make_studio, clip, tmp_path):
    studio = make_studio()
    assert studio.upload_length(clip(frames=20, fps=8)) == 2.5
    with pytest.raises(ValueError, match="the limit is 2 s"):
        make_studio(max_upload_duration_s=2).upload_length(clip("long.mp4", frames=24, fps=8))
    (tmp_path / "notes.txt").write_text("not a video")
    with pytest.raises(ValueError, match="not a video file"):
        studio.upload_length(tmp_path / "notes.txt")


def test_a_phone_s_hdr_upload_is_read_with_its_standard_range_colours(make_studio, tmp_path):
    from tests.test_videoio import write_hdr

    studio = make_studio()
    red = np.full((4, 32, 48, 3), (220, 30, 30), np.uint8)
    frames, notes = studio.load_upload(write_hdr(tmp_path / "phone.mp4", red, "HLG"))
    assert notes[0] == "tone-mapped HDR (HLG) to standard range"
    assert np.abs(frames.astype(int) - (220, 30, 30)).max() <= 4  # read as stored: (155, 66, 40)


def test_a_long_upload_is_read_from_the_start_given_within_the_default_limit(make_studio, clip):
    studio = make_studio()
    assert studio.settings.max_upload_duration_s == 600  # ten minutes: only the model's clip is decoded
    long = clip("long.mp4", frames=8 * 200, size=(8, 8))  # 200 s
    frames, notes = studio.load_upload(long, 150.0)
    assert frames.shape[0] == 4 and "used 0.5 s from 150.0 s (4 frames)" in notes
    with pytest.raises(ValueError, match="The start must be a time in seconds from 0 to 600"):
        studio.load_upload(long, 601)


def test_an_upload_is_captioned_as_a_timeline_with_subtitles(make_studio, tmp_path):
    from uvigu.timeline import to_srt

    studio = make_studio()
    token = studio.new_session()
    levels = np.repeat(np.array([40, 120, 200], np.uint8), 16)  # 6 s at 8 fps: 2 s of each gray
    path = write_mp4(np.broadcast_to(levels[:, None, None, None], (48, 8, 8, 3)).copy(), tmp_path / "three.mp4", fps=8)
    job = studio.submit_caption_timeline(token, path, every_s=2)
    stages = [event.stage for event in job.events()]
    timeline = job.result(timeout=30)
    assert [(c.start_s, c.end_s) for c in timeline.cues] == [(0, 2), (2, 4), (4, 6)]
    numbers = [int(c.text.rsplit(" ", 1)[1]) for c in timeline.cues]  # the fake model names each clip's mean
    assert [abs(n - level) <= 2 for n, level in zip(numbers, (40, 120, 200))] == [True] * 3
    assert timeline.srt_path.read_text() == to_srt(timeline.cues) and timeline.srt_path.name == "three.srt"
    assert {"Caption 1 of 3", "Caption 2 of 3", "Caption 3 of 3"} == set(stages)
    assert studio.takes(token) == []  # a timeline is read, not a take
    later = studio.submit_caption_timeline(token, path, every_s=2.5, start_s=1).result(timeout=30)
    assert [c.start_s for c in later.cues] == [1, 3.5] and later.srt_path.read_text() == to_srt(later.cues)
    for kwargs, message in [({"every_s": 0.1}, "The time between captions must be a time in seconds from 0.5 to 60"),
                            ({"every_s": 2, "start_s": 6}, "the start, 6 s, is not within three.mp4"),
                            ({"every_s": 0.5}, "takes 12 captions; the limit is 10")]:
        with pytest.raises(ValueError, match=message):
            make_studio(max_timeline_captions=10).submit_caption_timeline(token, path, **kwargs)


def test_stop_ends_a_timeline_between_steps(make_studio, clip):
    started = threading.Event()

    def step(kind, index):
        started.set()
        threading.Event().wait(0.01)

    studio = make_studio(FakePipeline(on_step=step))
    token = studio.new_session()
    job = studio.submit_caption_timeline(token, clip(frames=80), every_s=0.5)  # 10 s: 20 captions
    assert started.wait(10) and studio.cancel(token) == 1
    with pytest.raises(Cancelled):
        job.result(timeout=10)
    assert studio.pipe.calls.count(("caption", "")) < 20


def test_an_upload_can_be_edited_directly(make_studio, clip):
    studio = make_studio()
    token = studio.new_session()
    take = studio.submit_edit_upload(token, clip(), "a red circle", strength=0.4).result(timeout=30)
    assert take.mode == "edit" and take.parent_id is None and take.settings["strength"] == 0.4


def test_an_upload_edit_given_the_text_before_the_change_keeps_the_rest(make_studio, clip):
    pipe = FakePipeline()
    studio = make_studio(pipe)
    token = studio.new_session()
    take = studio.submit_edit_upload(token, clip(), "a blue circle", source_prompt="  a red circle ").result(
        timeout=30)
    assert pipe.source_prompts == ["a red circle"]
    assert take.settings == {"strength": 0.9, "keep_rest": True}
    with pytest.raises(ValueError, match="text before the change is empty"):
        studio.submit_edit_upload(token, clip(), "a blue circle", source_prompt="  ")


def test_bad_uploads_get_clear_messages(make_studio, clip, tmp_path):
    studio = make_studio(max_upload_bytes=200_000, max_upload_duration_s=2.0, max_upload_side=64)
    token = studio.new_session()
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video")
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    good = clip(frames=8)
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(good.read_bytes()[: len(good.read_bytes()) // 2])
    big = tmp_path / "big.mp4"
    big.write_bytes(b"\0" * 300_000)
    cases = [
        (None, "No video was uploaded"),
        (tmp_path / "missing.mp4", "could not be found"),
        (text, "not a video file"),
        (empty, "empty"),
        (truncated, "corrupt or truncated|could not be read"),
        (big, "0.3 MB; the limit is 0 MB"),
        (clip("long.mp4", frames=40, fps=8), "5.0 s long; the limit is 2 s"),
        (clip("wide.mp4", size=(16, 128)), "largest side allowed is 64"),
    ]
    for path, message in cases:
        with pytest.raises(ValueError, match=message):
            studio.submit_caption_upload(token, path)
    assert studio.takes(token) == []


def test_the_browser_secret_survives_a_restart(make_studio):
    first = make_studio().browser_secret()
    assert len(first) >= 32 and make_studio().browser_secret() == first


def test_model_defaults_come_from_the_pipeline(make_studio):
    defaults = make_studio().model_defaults()
    assert (defaults.num_frames, defaults.height, defaults.width, defaults.fps) == (4, 8, 8, 8)
    assert defaults.num_inference_steps >= 1
    assert (defaults.edit_strength, defaults.keep_rest_strength) == (0.6, 0.9)
    assert defaults.runs_on == ""  # a pipeline that does not say where it runs


def test_model_defaults_say_where_the_model_runs_and_in_what_precision(make_studio):
    import torch

    from uvigu.models.wan_loading import cast_keeping_fp32_modules
    from uvigu.testing import tiny_pipeline

    pipe = tiny_pipeline()
    assert make_studio(pipe=pipe).model_defaults().runs_on == "the CPU, in float32"
    cast_keeping_fp32_modules(pipe.transformer, torch.bfloat16)  # as load_pipeline casts it
    assert make_studio(pipe=pipe).model_defaults().runs_on == "the CPU, in bfloat16"
