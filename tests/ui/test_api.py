"""The named endpoints, called as scripts call them: gradio_client against a launched app."""

import threading

import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError

from tests.launched_studio import launched_studio
from uvigu.testing import tiny_pipeline
from uvigu.videoio import probe_video


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    with launched_studio(tmp_path_factory) as launched:
        yield launched


@pytest.fixture(scope="module")
def app_url(app):
    return app[0]


def saved_take(studio, prompt):
    """The one take, in any session, made from ``prompt``."""
    found = [take for sid in studio.store.sessions_unused_since(float("inf"))
             for take in studio.store.list_takes(sid) if take.prompt == prompt]
    assert len(found) == 1
    return found[0]


@pytest.fixture(scope="module")
def client(app_url):
    return Client(app_url, verbose=False)


@pytest.fixture(scope="module")
def generated(client):
    return client.predict("a red circle moving right", 123, 2, 3.0, api_name="/generate")


def test_only_the_three_endpoints_are_offered(client):
    assert set(client.view_api(print_info=False, return_format="dict")["named_endpoints"]) == {
        "/generate", "/caption", "/edit"}


def test_generate_returns_a_browser_playable_clip_its_caption_and_seed(generated):
    clip, caption, seed = generated
    info = probe_video(clip)
    assert (info.codec, info.pix_fmt) == ("h264", "yuv420p")
    assert info.width % 2 == 0 and info.height % 2 == 0 and info.num_frames == 4
    assert isinstance(caption, str) and caption.strip()
    assert seed == 123


def test_generate_with_a_random_seed_reports_the_seed_it_used(client):
    _, _, seed = client.predict("a blue square moving up", -1, 1, 3.0, api_name="/generate")
    assert isinstance(seed, int) and 0 <= seed < 2**31


def test_generate_with_tries_returns_the_kept_try_which_its_seed_remakes(app, client):
    prompt = "a red circle moving right near the top"
    _, caption, seed = client.predict(prompt, 40, 1, 3.0, 3, api_name="/generate")
    take = saved_take(app[1], prompt)
    tries = take.settings["tries"]
    assert take.settings["best_of"] == 3 and [t["seed"] for t in tries] == [40, 41, 42]
    kept = max(tries, key=lambda t: t["score"])  # max keeps the first of equals, as the studio does
    assert (seed, caption) == (kept["seed"], kept["caption"]) == (take.seed, take.caption)
    _, again, same_seed = client.predict(prompt, seed, 1, 3.0, 1, api_name="/generate")
    assert (again, same_seed) == (caption, seed)


def test_tries_out_of_range_get_a_clear_error(client, generated):
    with pytest.raises(AppError, match="Tries per take must be a whole number from 1 to 4"):
        client.predict("a red circle", 0, 1, 3.0, 9, api_name="/generate")
    with pytest.raises(AppError, match="Tries per take must be a whole number from 1 to 4"):
        client.predict(handle_file(generated[0]), "a green circle", 0.5, 1, "", 0, api_name="/edit")


def test_caption_describes_an_uploaded_clip(client, generated):
    caption = client.predict(handle_file(generated[0]), api_name="/caption")
    assert isinstance(caption, str) and caption.strip()


def caption_take_noting(studio, note):
    """The one caption take, in any session, whose notes include ``note``."""
    found = [take for sid in studio.store.sessions_unused_since(float("inf"))
             for take in studio.store.list_takes(sid) if take.mode == "caption" and note in take.notes]
    assert len(found) == 1
    return found[0]


def test_caption_and_edit_take_the_clip_from_the_start_given(app, client, generated):
    clip = handle_file(generated[0])  # the tiny model's 4 frames at 8 fps: 0.5 s
    caption = client.predict(clip, 0.25, api_name="/caption")
    padded = "padded the 2 frames from 0.25 s → 4 frames by repeating the last frame"
    assert caption_take_noting(app[1], padded).caption == caption
    prompt = "a green circle moving left near the top"
    client.predict(clip, prompt, 0.5, 3, "", 1, 0.25, api_name="/edit")
    assert padded in saved_take(app[1], prompt).notes
    with pytest.raises(AppError, match="The start, 5 s, is not within clip.mp4, which lasts 0.5 s"):
        client.predict(clip, 5, api_name="/caption")


def test_edit_regenerates_an_uploaded_clip(client, generated):
    clip, caption, seed = client.predict(handle_file(generated[0]), "a green circle moving right", 0.5, 1,
                                         api_name="/edit")
    assert probe_video(clip).codec == "h264" and caption.strip() and seed == 1


def test_edit_given_the_text_before_the_change_keeps_the_rest(client, generated):
    clip, caption, _ = client.predict(handle_file(generated[0]), "a green circle moving right", None, 1,
                                      generated[1], api_name="/edit")  # strength: the model's for such an edit
    assert probe_video(clip).codec == "h264" and caption.strip()


def test_edit_with_tries_keeps_one(app, client, generated):
    prompt = "a green circle moving right near the bottom"
    clip, caption, seed = client.predict(handle_file(generated[0]), prompt, 0.5, 7, "", 2, api_name="/edit")
    assert probe_video(clip).codec == "h264"
    take = saved_take(app[1], prompt)
    assert [t["seed"] for t in take.settings["tries"]] == [7, 8]
    kept = max(take.settings["tries"], key=lambda t: t["score"])
    assert caption == take.caption == kept["caption"] and seed == take.seed == kept["seed"]


def test_generate_and_edit_leave_the_high_noise_expert_out_when_asked(app, client, generated):
    studio = app[1]
    expert = tiny_pipeline(seed=1)
    calls = []
    hook = expert.transformer.register_forward_hook(lambda *_: calls.append(1))
    studio.pipe.use_high_noise_expert(expert, boundary=0.9)
    try:
        without = ["a red circle moving up", "a blue circle moving up"]
        client.predict(without[0], 5, 2, 3.0, high_noise_expert=False, api_name="/generate")  # by name
        client.predict(handle_file(generated[0]), without[1], 1.0, 5, "", 1, 0, False, api_name="/edit")
        assert calls == []  # every step made by the model
        assert [saved_take(studio, p).settings["high_noise_expert"] for p in without] == [False, False]
        client.predict("a red circle moving down", 5, 2, 3.0, api_name="/generate")  # left out: with the expert
        assert calls and "high_noise_expert" not in saved_take(studio, "a red circle moving down").settings
    finally:
        hook.remove()
        studio.pipe.use_high_noise_expert(None)


def test_generate_starts_from_plain_noise_when_asked(app, client, monkeypatch):
    studio = app[1]
    shares, noise_motion = [], type(studio.pipe)._noise_motion

    def recording(pipe, prompt, shape, share, *args):
        shares.append(share)
        return noise_motion(pipe, prompt, shape, share, *args)

    monkeypatch.setattr(type(studio.pipe), "_noise_motion", recording)
    plain = "a blue circle moving left"
    client.predict(plain, 5, 2, 3.0, moving_noise=False, api_name="/generate")  # by name
    assert shares == [0.0] and saved_take(studio, plain).settings["motion_noise"] == 0.0
    client.predict("a blue square moving left", 5, 2, 3.0, api_name="/generate")  # left out: the model's setting
    assert shares == [0.0, None] and "motion_noise" not in saved_take(studio, "a blue square moving left").settings


def test_an_empty_prompt_gets_a_clear_error(client):
    with pytest.raises(AppError, match="prompt is empty"):
        client.predict("   ", 0, 2, 3.0, api_name="/generate")


def test_a_file_that_is_not_a_video_gets_a_clear_error(client, tmp_path):
    fake = tmp_path / "holiday.mp4"
    fake.write_text("this is a text file, not a video")
    with pytest.raises(AppError, match="not a video file"):
        client.predict(handle_file(str(fake)), api_name="/caption")


def test_out_of_range_settings_get_clear_errors(client):
    with pytest.raises(AppError, match="Steps must be a whole number from 1 to 100"):
        client.predict("a red circle", 0, 1000, 3.0, api_name="/generate")


def test_six_clients_at_once_are_all_served(app_url):
    results, errors = {}, []

    def visitor(n):
        try:
            client = Client(app_url, verbose=False)
            results[n] = client.predict(f"a red circle moving {['left', 'right'][n % 2]}", n, 1, 3.0,
                                        api_name="/generate")
        except Exception as error:  # reported by the assertion below
            errors.append(error)

    threads = [threading.Thread(target=visitor, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert errors == []
    assert sorted(results) == list(range(6))
    assert [results[n][2] for n in range(6)] == list(range(6))
    assert len({results[n][0] for n in range(6)}) == 6  # every visitor got their own clip
