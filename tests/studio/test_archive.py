"""Export a session, import it back: the takes, their frames and their family tree survive;
bad files are refused whole, with the reason."""

import io
import json
import zipfile

import numpy as np
import pytest

from tests.studio.fake_pipeline import FakePipeline
from uvigu.studio import Studio, StudioSettings


def generate(studio, token, prompt="a red circle moving right", **kw):
    return studio.submit_generate(token, prompt, **kw).result(timeout=30)


def frames_of(studio, token, take):
    return np.load(studio.store.take_file(studio._sid(token), take.id, "frames.npy"))


@pytest.fixture
def exported(make_studio):
    """A studio with a session of three takes (a root, an edit of it with a critique, a second root),
    and its export."""
    studio = make_studio()
    token = studio.new_session()
    root = generate(studio, token, seed=3, num_inference_steps=2)
    studio.set_critique(token, root.id, "more red")
    child = studio.submit_edit(token, root.id, "a blue circle moving right", strength=0.5, seed=4).result(timeout=30)
    generate(studio, token, prompt="a green square moving up", mode="joint", seed=5)
    takes = studio.takes(token)
    assert [t.parent_id for t in takes] == [None, child.id and root.id, None] and takes[0].critique == "more red"
    return studio, token, takes, studio.export_session(token)


def rewrite(source, target, edit_index=None, drop=(), replace=None):
    """A copy of the export at ``source`` with takes.json changed by ``edit_index(meta)``, members in
    ``drop`` left out and members in ``replace`` (name → bytes) swapped."""
    replace = replace or {}
    with zipfile.ZipFile(source) as src, zipfile.ZipFile(target, "w") as dst:
        meta = json.loads(src.read("takes.json"))
        if edit_index:
            edit_index(meta)
        for name in src.namelist():
            if name in drop or name == "takes.json":
                continue
            dst.writestr(name, replace.get(name, src.read(name)))
        dst.writestr("takes.json", json.dumps(meta))
    return target


def test_export_holds_each_take_s_clip_and_exact_frames(exported):
    studio, token, takes, path = exported
    with zipfile.ZipFile(path) as archive:
        meta = json.loads(archive.read("takes.json"))
        names = set(archive.namelist())
        assert meta["format"] == 2 and meta["fps"] == FakePipeline.fps
        for take, record in zip(takes, meta["takes"]):
            frames = np.load(io.BytesIO(archive.read(record["frames"])))
            assert np.array_equal(frames, frames_of(studio, token, take))
    assert {t["clip"] for t in meta["takes"]} | {t["frames"] for t in meta["takes"]} | {"takes.json"} == names


def test_import_into_a_new_session_gives_back_every_take(exported):
    studio, token, takes, path = exported
    other = studio.new_session()
    added = studio.import_session(other, path)

    assert added == studio.takes(other)
    assert [t.seq for t in added] == [1, 2, 3]
    for old, new in zip(takes, added):
        assert new.id != old.id  # new ids: the same export can be imported twice
        assert (new.mode, new.prompt, new.caption, new.critique, new.seed, new.settings, new.timings,
                new.created, new.unknown_words, new.notes) == (
            old.mode, old.prompt, old.caption, old.critique, old.seed, old.settings, old.timings,
            old.created, old.unknown_words, old.notes)
        assert np.array_equal(frames_of(studio, other, new), frames_of(studio, token, old))
        assert studio.clip_path(other, new.id).is_file() and studio.thumbnail_path(other, new.id).is_file()
    assert [t.parent_id for t in added] == [None, added[0].id, None]  # the edit still comes from its root
    assert studio.takes(token) == takes  # the exported session is untouched


def test_an_imported_take_is_edited_from_its_exact_frames(exported):
    studio, token, takes, path = exported
    other = studio.new_session()
    root = studio.import_session(other, path)[0]
    prompt = "a yellow circle moving right"
    child = studio.submit_edit(other, root.id, prompt, strength=0.5, seed=9).result(timeout=30)
    assert child.parent_id == root.id
    # the fake edit blends the source frames with the prompt's: the source was the original's frames
    source = frames_of(studio, token, takes[0]).astype(np.float32)
    expected = (0.5 * source + 0.5 * FakePipeline.frames_for(prompt, 9)).astype(np.uint8)
    assert np.array_equal(frames_of(studio, other, child), expected)


def test_import_appends_after_the_session_s_own_takes_and_twice_is_fine(exported):
    studio, token, takes, path = exported
    added = studio.import_session(token, path)
    assert [t.seq for t in studio.takes(token)] == [1, 2, 3, 4, 5, 6]
    assert [t.parent_id for t in added] == [None, added[0].id, None]
    assert {t.id for t in added}.isdisjoint(t.id for t in takes)


def test_an_export_without_frames_is_read_from_its_clips(exported, tmp_path):
    studio, token, takes, path = exported

    def clips_only(meta):
        for record in meta["takes"]:
            del record["frames"]
        meta["format"] = 1

    old = rewrite(path, tmp_path / "old.zip", clips_only, drop={n for n in zipfile.ZipFile(path).namelist()
                                                                   if n.endswith(".npy")})
    other = studio.new_session()
    added = studio.import_session(other, old)
    assert [t.caption for t in added] == [t.caption for t in takes]
    for old_take, new in zip(takes, added):
        frames = frames_of(studio, other, new)
        original = frames_of(studio, token, old_take)
        assert frames.shape == original.shape  # decoded and fitted back to the model's size
        assert np.abs(frames.astype(int) - original.astype(int)).mean() < 8  # H.264, not exact
        assert new.notes[0].startswith("read from the exported clip")


@pytest.fixture
def other_studio(tmp_path):
    """A second studio with its own data folder and limits."""
    studios = []

    def make(**limits):
        studios.append(Studio(FakePipeline(), StudioSettings(data_dir=tmp_path / f"other-{len(studios)}", **limits)))
        return studios[-1]

    yield make
    for studio in studios:
        studio.close()


def test_another_studio_imports_the_session(exported, other_studio):
    studio, token, takes, path = exported
    elsewhere = other_studio()
    visitor = elsewhere.new_session()
    added = elsewhere.import_session(visitor, path)
    assert [(t.prompt, t.caption, t.critique) for t in added] == [(t.prompt, t.caption, t.critique) for t in takes]
    assert np.array_equal(frames_of(elsewhere, visitor, added[1]), frames_of(studio, token, takes[1]))


def test_an_export_without_frames_and_a_broken_clip_is_refused_whole(exported, tmp_path):
    studio, token, takes, path = exported
    names = zipfile.ZipFile(path).namelist()

    def clips_only(meta):
        for record in meta["takes"]:
            del record["frames"]

    clip = json.loads(zipfile.ZipFile(path).read("takes.json"))["takes"][1]["clip"]
    bad = rewrite(path, tmp_path / "bad.zip", clips_only, drop={n for n in names if n.endswith(".npy")},
                  replace={clip: b"not a video"})
    other = studio.new_session()
    with pytest.raises(ValueError, match="Take #2 of the export could not be read"):
        studio.import_session(other, bad)
    assert studio.takes(other) == []


def test_a_full_session_refuses_an_import_that_does_not_fit(other_studio, exported):
    studio, token, takes, path = exported
    small = other_studio(max_takes_per_session=4)
    other = small.new_session()
    generate(small, other)
    generate(small, other)
    with pytest.raises(ValueError, match="holds 3 takes; this session has room for 2 more"):
        small.import_session(other, path)
    assert len(small.takes(other)) == 2  # nothing added


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda meta: meta["takes"][1].update(mode="paint"), "take 2 of 3: mode must be one of"),
        (lambda meta: meta["takes"][0].update(seed=-1), "take 1 of 3: seed must be a whole number"),
        (lambda meta: meta["takes"][0].update(seed=True), "seed must be"),
        (lambda meta: meta["takes"][2].update(prompt="x" * 401), "prompt must be text of at most 400"),
        (lambda meta: meta["takes"][0].update(clip="../../etc/passwd"), "clip must be a clip of the file"),
        (lambda meta: meta["takes"][0].update(frames="take-999-missing.npy"), "is missing from the file"),
        (lambda meta: meta["takes"][1].update(id=meta["takes"][0]["id"]), "appears twice"),
        (lambda meta: meta["takes"][0].pop("caption"), "caption is missing"),
        (lambda meta: meta["takes"][0].update(settings={"strength": [1]}), "settings must be"),
        (lambda meta: meta.update(takes=[]), "lists no takes"),
    ],
)
def test_a_bad_record_refuses_the_whole_file(exported, tmp_path, change, message):
    studio, token, takes, path = exported
    bad = rewrite(path, tmp_path / "bad.zip", change)
    other = studio.new_session()
    with pytest.raises(ValueError, match=message):
        studio.import_session(other, bad)
    assert studio.takes(other) == []


def test_files_that_are_not_exports_get_clear_messages(exported, tmp_path):
    studio, token, takes, path = exported
    other = studio.new_session()
    text = tmp_path / "notes.zip"
    text.write_text("hello")
    with pytest.raises(ValueError, match="notes.zip is not a zip file"):
        studio.import_session(other, text)
    plain = tmp_path / "plain.zip"
    with zipfile.ZipFile(plain, "w") as archive:
        archive.writestr("readme.txt", "hi")
    with pytest.raises(ValueError, match="plain.zip is not a session export: it has no takes.json"):
        studio.import_session(other, plain)
    broken = tmp_path / "broken.zip"
    with zipfile.ZipFile(broken, "w") as archive:
        archive.writestr("takes.json", "{")
    with pytest.raises(ValueError, match="In broken.zip, takes.json is not valid JSON"):
        studio.import_session(other, broken)
    with pytest.raises(ValueError, match="No file was uploaded"):
        studio.import_session(other, None)
    with pytest.raises(ValueError, match="could not be found"):
        studio.import_session(other, tmp_path / "gone.zip")
    assert studio.takes(other) == []


@pytest.mark.parametrize("error", [NotImplementedError("That compression method is not supported"),
                                   RuntimeError("File is encrypted, password required for extraction")])
def test_a_zip_that_cannot_be_unpacked_gets_a_clear_message(exported, monkeypatch, error):
    studio, token, takes, path = exported

    def refuse(self, name, pwd=None):
        raise error

    monkeypatch.setattr(zipfile.ZipFile, "read", refuse)
    other = studio.new_session()
    with pytest.raises(ValueError, match=f"could not be unpacked \\({error}\\)"):
        studio.import_session(other, path)
    assert studio.takes(other) == []


def test_frames_that_are_not_a_clip_are_refused(exported, tmp_path):
    studio, token, takes, path = exported
    name = json.loads(zipfile.ZipFile(path).read("takes.json"))["takes"][1]["frames"]
    for frames, message in [
        (np.zeros((4, 8, 8), np.uint8), "uint8 \\(frames, height, width, 3\\)"),
        (np.zeros((4, 8, 8, 3), np.float32), "uint8"),
        (np.zeros((2000, 1, 1, 3), np.uint8), "outside the limits"),
    ]:
        buffer = io.BytesIO()
        np.save(buffer, frames)
        bad = rewrite(path, tmp_path / "bad.zip", replace={name: buffer.getvalue()})
        with pytest.raises(ValueError, match=message):
            studio.import_session(studio.new_session(), bad)
    pickled = io.BytesIO()
    np.save(pickled, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    bad = rewrite(path, tmp_path / "bad.zip", replace={name: pickled.getvalue()})
    with pytest.raises(ValueError, match="not a take's frames"):
        studio.import_session(studio.new_session(), bad)


def test_a_file_that_unpacks_past_the_limit_is_refused_before_unpacking(other_studio, exported, tmp_path):
    studio, token, takes, path = exported
    name = json.loads(zipfile.ZipFile(path).read("takes.json"))["takes"][0]["frames"]
    buffer = io.BytesIO()
    np.save(buffer, np.zeros((64, 256, 256, 3), np.uint8))  # 12 MB of zeros: a few kB zipped
    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as dst:
        for member in src.namelist():
            dst.writestr(member, buffer.getvalue() if member == name else src.read(member))
    small = other_studio(max_import_bytes=2 * bomb.stat().st_size)  # the file itself is well within
    with pytest.raises(ValueError, match="unpacks to 12 MB"):
        small.import_session(small.new_session(), bomb)
    with pytest.raises(ValueError, match="the limit is"):
        tiny = other_studio(max_import_bytes=1000)
        tiny.import_session(tiny.new_session(), path)
