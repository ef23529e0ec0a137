"""Captions of your own clips against your captions: BLEU-4 and CIDEr-D over a folder of videos.

``uvigu eval --data FOLDER`` reads ``FOLDER/metadata.jsonl`` as training on your clips does
(`uvigu.data.video_folder`: the same fields, checks and decoding), captions each clip from its
start (the model's length of it, fitted to the model's size and frame rate) and scores the
captions against each line's ``caption`` (its ``prompt`` where it has none): the caption figures
``docs/EVAL.md`` gives for the Shapes world, on footage of yours. Keep the clips you measure on out
of the folder you train on (Hugging Face's ``train/`` and ``test/`` folders), and measure a run's
checkpoints in turn (``--model <run>/checkpoints/step_N``) to see whether training helps.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from uvigu.data.video_folder import METADATA_FILE, VideoFolderDataset
from uvigu.eval.journal import RunJournal, run_key
from uvigu.eval.metrics import bleu4, cider_d
from uvigu.eval.report import pipeline_settings, write_results, write_text
from uvigu.videoio import write_strip_png

logger = logging.getLogger(__name__)

ProgressCallback = Callable[[int, int], None]


@dataclass(frozen=True)
class FolderReport:
    """What `write_folder_report` wrote."""

    report_path: Path
    results_path: Path
    num_clips: int
    bleu4: float
    cider_d: float
    elapsed_s: float


def folder_dataset(pipe, root: str | Path) -> VideoFolderDataset:
    """The clips listed in ``root/metadata.jsonl``, each the model's length from its start at its size
    (checked as training checks them: every line and clip, before the first is captioned)."""
    return VideoFolderDataset(root, num_frames=pipe.default_num_frames, height=pipe.default_height,
                              width=pipe.default_width, fps=pipe.fps)


def caption_folder(
    pipe, root: str | Path | VideoFolderDataset, *, limit: int | None = None, progress: ProgressCallback | None = None,
    strips_dir: str | Path | None = None, num_strips: int = 0, journal: RunJournal | None = None,
) -> list[dict]:
    """Caption the clips listed in ``root/metadata.jsonl`` (or of a ``folder_dataset``; the first
    ``limit`` of them; None: all), clip ``i`` with seed ``i``; a record per clip: its metadata line,
    path, prompt, reference caption, the model's caption and the seconds it took. The first
    ``num_strips`` clips, as the model sees them, are written to ``strips_dir`` as PNG strips
    (``line-<line>.png``, its path in the record's ``strip``). With a ``journal`` (of
    ``folder_run_key``, identifying records by ``by_line``), each record is kept there as it is
    made, and those an interrupted run left there are taken instead of being made again."""
    dataset = root if isinstance(root, VideoFolderDataset) else folder_dataset(pipe, root)
    count = len(dataset) if limit is None else min(limit, len(dataset))
    if progress is not None:
        progress(0, count)
    records = []
    for index in range(count):
        entry = dataset.entries[index]
        kept = journal.done.get(by_line({"line": entry.line})) if journal is not None else None
        wants_strip = strips_dir is not None and index < num_strips
        if kept is not None and (not wants_strip or (Path(strips_dir) / kept.get("strip", "")).is_file()):
            records.append(kept if wants_strip else {k: v for k, v in kept.items() if k != "strip"})
            if progress is not None:
                progress(index + 1, count)
            continue
        item = dataset[index]
        start = time.perf_counter()
        caption = pipe.caption(item["frames"], seed=index).text
        records.append({
            "line": entry.line, "video": Path(os.path.relpath(entry.video, dataset.root)).as_posix(),
            "prompt": entry.prompt, "reference": entry.caption, "caption": caption, "seed": index,
            "seconds": round(time.perf_counter() - start, 3),
        })
        if strips_dir is not None and index < num_strips:
            strip = write_strip_png(item["frames"], Path(strips_dir) / f"line-{entry.line}.png", scale=2)
            records[-1]["strip"] = strip.name
        if journal is not None:
            journal.add(records[-1])
        if progress is not None:
            progress(index + 1, count)
    return records


def by_line(record: dict) -> tuple[str, int]:
    """Which clip a folder record is of: its line in metadata.jsonl."""
    return "line", record["line"]


def folder_run_key(pipe, dataset: VideoFolderDataset) -> str:
    """``run_key`` of captioning ``dataset``: the model, and every line of the folder's metadata
    with its clip's size and time of change (an edited caption or clip starts the run over)."""
    clips = [[e.line, str(e.video), e.prompt, e.caption, stat.st_size, stat.st_mtime_ns]
             for e in dataset.entries for stat in [e.video.stat()]]
    return run_key(pipe, {"folder": clips, "clip": [dataset.num_frames, dataset.fps, dataset.height, dataset.width]})


def folder_scores(records: list[dict]) -> tuple[float, float]:
    """Corpus BLEU-4 and CIDEr-D of the records' captions against their references."""
    captions, references = [r["caption"] for r in records], [[r["reference"]] for r in records]
    return bleu4(captions, references), cider_d(captions, references)


def _cell(text: str) -> str:
    """``text`` as one markdown table cell."""
    return " ".join(text.split()).replace("|", "\\|") or "*(empty)*"


def render_folder_report(
    records: list[dict], scores: tuple[float, float], *, folder: str, command: str, model: str, settings: dict,
    clip: str, elapsed_s: float, strips_link: str = "",
) -> str:
    """The report: ``scores`` (``folder_scores(records)``), a row per record, the examples' strips."""
    bleu, cider = scores
    lines = [
        f"# Captions of `{folder}`",
        "",
        f"Made by `{command}` on {datetime.now(timezone.utc).date().isoformat()}, model `{model}`.",
        f"{len(records)} clips of `{folder}/{METADATA_FILE}` in {elapsed_s / 60:.1f} min, each captioned from its "
        f"start ({clip}); pipeline settings: "
        + ", ".join(f"{key} {value}" for key, value in settings.items()) + ".",
        "",
        "| metric | value |",
        "|---|---|",
        f"| caption BLEU-4 | {bleu:.3f} (n={len(records)}) |",
        f"| caption CIDEr-D | {cider:.3f} (n={len(records)}) |",
        "",
        "The model's caption of each clip against the clip's `caption` in the metadata (its `prompt` where it has "
        "none), one reference per clip, as corpus scores (docs/EVAL.md scores the Shapes world's captions the same "
        "way). Clip *i* is captioned with seed *i*.",
        "",
        "## Clips",
        "",
        "| line | clip | reference | the model's caption |",
        "|---:|---|---|---|",
    ]
    lines += [f"| {r['line']} | `{_cell(r['video'])}` | {_cell(r['reference'])} | {_cell(r['caption'])} |"
              for r in records]
    examples = [r for r in records if r.get("strip")]
    if examples:
        lines += ["", "## Examples", "", "Each clip as the model sees it (evenly spaced frames of its "
                  f"{clip}), with your caption and the model's.", ""]
        for r in examples:
            lines += [f"### line {r['line']}: `{_cell(r['video'])}`", "",
                      f"![line {r['line']}]({strips_link}/{r['strip']})", "",
                      f"- yours: {_cell(r['reference'])}", f"- the model's: {_cell(r['caption'])}", ""]
    return "\n".join(lines).rstrip("\n") + "\n"


def write_folder_report(
    pipe,
    root: str | Path,
    out: str | Path,
    *,
    command: str,
    model: str,
    folder: str | None = None,
    limit: int | None = None,
    num_examples: int = 4,
    progress: ProgressCallback | None = None,
) -> FolderReport:
    """Caption the folder's clips, write the report to ``out``, the records beside it (``out`` with
    the suffix ``.jsonl``) and the first ``num_examples`` clips as strips in ``<out stem>_strips/``.
    ``folder``: the folder's name as the report shows it."""
    out = Path(out)
    strips_dir = out.parent / f"{out.stem}_strips"
    dataset = folder_dataset(pipe, root)
    # An interrupted run over the same clips and captions goes on from where it stopped.
    with RunJournal(out.with_suffix(".partial.jsonl"), folder_run_key(pipe, dataset), identify=by_line) as journal:
        records = caption_folder(pipe, dataset, limit=limit, progress=progress, strips_dir=strips_dir,
                                 num_strips=num_examples, journal=journal)
        elapsed = journal.elapsed_s()
        if not records:
            journal.finish()
            raise ValueError(f"{Path(root) / METADATA_FILE} lists no clips")
        clip = f"{pipe.default_num_frames} frames at {pipe.fps:g} fps, {pipe.default_width}×{pipe.default_height}"
        scores = folder_scores(records)
        text = render_folder_report(records, scores, folder=folder or Path(root).name, command=command, model=model,
                                    settings={k: v for k, v in pipeline_settings(pipe).items()
                                              if k.startswith("caption_")},
                                    clip=clip, elapsed_s=elapsed, strips_link=strips_dir.name)
        results = write_results(records, out.with_suffix(".jsonl"))
        write_text(out, text)
        journal.finish()
    logger.info("wrote %s and %s in %.0f s", out, results, elapsed)
    return FolderReport(out, results, len(records), *scores, elapsed)


__all__ = ["FolderReport", "caption_folder", "folder_dataset", "folder_scores", "render_folder_report",
           "write_folder_report"]
