"""`uvigu eval --data FOLDER`: the model's captions of your clips scored against your captions."""

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from uvigu import cli, loading
from uvigu.eval.folder import caption_folder, folder_scores
from uvigu.eval.metrics import bleu4, cider_d
from uvigu.eval.report import read_results
from uvigu.testing import tiny_pipeline
from uvigu.videoio import write_mp4

CAPTIONS = ["a red ball rolls to the left", "a dog runs | jumps over a log", None]
PROMPTS = ["red ball", "a dog", "waves on a beach at sunset"]


@pytest.fixture
def folder(tmp_path):
    """Three clips of your own, each a uniform gray at its own level (4 s at 8 fps); the last line has no caption."""
    root = tmp_path / "test"
    (root / "clips").mkdir(parents=True)
    lines = []
    for index, (prompt, caption) in enumerate(zip(PROMPTS, CAPTIONS)):
        frames = np.full((32, 24, 32, 3), 40 + 80 * index, np.uint8)
        write_mp4(frames, root / "clips" / f"{index}.mp4", fps=8)
        record = {"video": f"clips/{index}.mp4", "prompt": prompt} | ({"caption": caption} if caption else {})
        lines.append(json.dumps(record))
    (root / "metadata.jsonl").write_text("\n".join(lines) + "\n")
    return root


class Reader:
    """A pipeline that 'captions' a clip with the reference of the clip at its gray level, or with
    a fixed text: scores against the right references come out exactly."""

    default_num_frames, default_height, default_width, fps = 4, 16, 16, 8
    config = {"caption_steps": 12, "guidance_scale": 3.0}

    def __init__(self, texts=None):
        self.texts = texts
        self.seeds = []

    def caption(self, frames, *, seed):
        self.seeds.append(seed)
        assert frames.shape == (4, 16, 16, 3)
        index = round((float(frames.mean()) - 40) / 80)
        text = self.texts[index] if self.texts else (CAPTIONS[index] or PROMPTS[index])
        return SimpleNamespace(text=text)


def test_captions_are_scored_against_each_lines_caption_or_its_prompt(folder):
    pipe = Reader()
    records = caption_folder(pipe, folder)
    assert [r["reference"] for r in records] == ["a red ball rolls to the left", "a dog runs | jumps over a log",
                                                "waves on a beach at sunset"]
    assert [(r["line"], r["video"], r["seed"]) for r in records] == [(1, "clips/0.mp4", 0), (2, "clips/1.mp4", 1),
                                                                     (3, "clips/2.mp4", 2)]
    assert folder_scores(records)[0] == pytest.approx(1.0)  # each caption is its own reference
    wrong = caption_folder(Reader(texts=["a cat sleeps", "a red ball", "waves on a beach at sunset"]), folder)
    captions, references = [r["caption"] for r in wrong], [[r["reference"]] for r in wrong]
    assert folder_scores(wrong) == (bleu4(captions, references), cider_d(captions, references))
    assert folder_scores(wrong)[0] < 1 and folder_scores(wrong)[1] < folder_scores(records)[1]
    assert len(caption_folder(Reader(), folder, limit=2)) == 2


def test_the_eval_command_writes_the_report_and_records_beside_it(folder, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(loading, "load_pipeline", lambda model, device, dtype: tiny_pipeline())
    monkeypatch.chdir(tmp_path)
    assert cli.main(["eval", "--data", "test"]) == 0
    report, results = folder / "EVAL.md", folder / "EVAL.jsonl"
    text, records = report.read_text(), read_results(results)
    bleu, cider = folder_scores(records)
    assert "`uvigu eval --data test --model assets/uvigu-shapes --out test/EVAL.md`" in text
    assert f"| caption BLEU-4 | {bleu:.3f} (n=3) |" in text and f"| caption CIDEr-D | {cider:.3f} (n=3) |" in text
    assert "3 clips of `test/metadata.jsonl`" in text and "4 frames at 8 fps, 16×16" in text
    assert "| 2 | `clips/1.mp4` | a dog runs \\| jumps over a log |" in text  # a cell keeps its '|'
    assert [r["caption"] for r in records] == [tiny_pipeline().caption(f, seed=i).text for i, f in
                                               enumerate(item["frames"] for item in _items(folder))]
    assert str(tmp_path) not in text
    out = capsys.readouterr().out
    assert f"caption BLEU-4 {bleu:.3f}, CIDEr-D {cider:.3f}" in out and "report: test/EVAL.md" in out
    # the first clips as the model sees them, as strips beside the report
    assert [r.get("strip") for r in records] == ["line-1.png", "line-2.png", "line-3.png"]
    assert "![line 2](EVAL_strips/line-2.png)" in text and (folder / "EVAL_strips" / "line-3.png").is_file()
    # the first --num clips, to a report of one's choosing, with one example
    assert cli.main(["eval", "--data", "test", "--num", "2", "--examples", "1", "--out", "runs/first.md"]) == 0
    assert [r.get("strip") for r in read_results(tmp_path / "runs" / "first.jsonl")] == ["line-1.png", None]
    assert "--num 2 --examples 1 --out runs/first.md`" in (tmp_path / "runs" / "first.md").read_text()
    assert sorted(p.name for p in (tmp_path / "runs" / "first_strips").iterdir()) == ["line-1.png"]


def test_the_shapes_flags_and_a_bad_folder_are_refused(folder, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(loading, "load_pipeline", lambda model, device, dtype: tiny_pipeline())
    assert cli.main(["eval", "--data", str(folder), "--num-heldout", "10"]) == 2
    assert "--num-heldout and --notes are the Shapes evaluation's" in capsys.readouterr().err
    assert cli.main(["eval", "--data", str(tmp_path / "nowhere")]) == 2
    assert "dataset folder not found" in capsys.readouterr().err
    (folder / "metadata.jsonl").write_text('{"video": "clips/missing.mp4", "prompt": "a"}\n')
    assert cli.main(["eval", "--data", str(folder)]) == 2
    assert "line 1" in capsys.readouterr().err
    assert not (folder / "EVAL.md").exists()


def _items(folder: Path):
    from uvigu.data.video_folder import VideoFolderDataset

    dataset = VideoFolderDataset(folder, num_frames=4, height=16, width=16, fps=8)
    return [dataset[i] for i in range(len(dataset))]


def test_shapes_writes_the_evaluation_clips_of_a_set_as_a_folder(tmp_path, capsys):
    from uvigu.data.video_folder import VideoFolderDataset
    from uvigu.eval.clips import EvalConfig, eval_example

    assert cli.main(["shapes", str(tmp_path / "held"), "--set", "heldout", "--num", "2", "--first-clip", "5"]) == 0
    assert f"2 clips of the heldout set: {tmp_path / 'held' / 'metadata.jsonl'}" in capsys.readouterr().out
    dataset = VideoFolderDataset(tmp_path / "held", num_frames=16, height=64, width=64, fps=8)
    for index, entry in enumerate(dataset.entries):
        example = eval_example(EvalConfig(), "heldout", 5 + index)
        assert (entry.video.name, entry.prompt, entry.caption) == (f"heldout_{5 + index:05d}.mp4", example.prompt,
                                                                   example.caption)
        assert np.abs(dataset[index]["frames"].astype(int) - example.frames).mean() < 4
    assert cli.main(["shapes", str(tmp_path / "held")]) == 2
    assert "already exists and is not empty" in capsys.readouterr().err
    assert cli.main(["shapes", str(tmp_path / "none"), "--num", "0"]) == 2


class StoppedReader(Reader):
    """The Reader, stopped (as by Ctrl-C) when it is asked for its ``stop_at``-th caption."""

    def __init__(self, stop_at=None):
        super().__init__()
        self.stop_at = stop_at

    def caption(self, frames, *, seed):
        if len(self.seeds) + 1 == self.stop_at:
            raise KeyboardInterrupt
        return super().caption(frames, seed=seed)


def test_an_interrupted_folder_evaluation_goes_on_from_where_it_stopped(folder, tmp_path):
    from uvigu.eval.folder import write_folder_report

    def run(pipe, out):
        return write_folder_report(pipe, folder, out, command="uvigu eval --data test", model="reader", num_examples=2)

    whole = read_results(run(Reader(), tmp_path / "whole" / "EVAL.md").results_path)
    out = folder / "EVAL.md"
    with pytest.raises(KeyboardInterrupt):
        run(StoppedReader(stop_at=3), out)  # stopped in the third clip
    assert (folder / "EVAL.partial.jsonl").is_file() and not out.exists()
    again = Reader()
    report = run(again, out)
    assert again.seeds == [2]  # only the clip the first run had not finished
    strip = [{k: v for k, v in r.items() if k != "seconds"} for r in read_results(report.results_path)]
    assert strip == [{k: v for k, v in r.items() if k != "seconds"} for r in whole]
    assert not (folder / "EVAL.partial.jsonl").exists()

    # A caption corrected in metadata.jsonl makes another run: it starts over.
    with pytest.raises(KeyboardInterrupt):
        run(StoppedReader(stop_at=3), out)
    metadata = folder / "metadata.jsonl"
    metadata.write_text(metadata.read_text().replace("a red ball rolls to the left", "a red ball rolls left"))
    again = Reader()
    run(again, out)
    assert again.seeds == [0, 1, 2]
