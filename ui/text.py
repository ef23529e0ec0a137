"""Words and styles of the studio page: its help, and the text of a take's panel and of the history."""

from __future__ import annotations

import re
from collections.abc import Callable

from uvigu.judge import EXPERT_LEAVES_EMPTY, NAMES_NO_OBJECT, names_no_object, read_back_count
from uvigu.studio import MODE_LABELS, Take

_MARKDOWN_SYNTAX = re.compile(r"([\\`*_{}\[\]<>#|~!])")


def md_escape(text: str) -> str:
    """Text shown in Markdown as written (a visitor's, or the model's own guide with its ``<colour>``):
    Markdown and HTML syntax escaped."""
    return _MARKDOWN_SYNTAX.sub(r"\\\1", text)


INTRO = """\
# Uni-ViGU Studio
One diffusion model that **makes video from text and says what a video shows**. Type a prompt,
read what the model sees in its own clip, write a critique, edit the caption and regenerate from
the previous clip, as often as you like. Your takes are kept for this browser.
"""

def model_help(num_frames: int, fps: int, width: int, height: int, max_tokens: int, words: list[str] | None,
               runs_on: str = "", guide: str | None = None) -> str:
    """What this model makes and reads: its clip format, its prompt length, how its prompts go
    (``guide``, when it says) and its words; and where it runs here (``runs_on``, e.g. "the CPU, in
    bfloat16"), which decides what a seed makes."""
    lines = [
        f"It makes clips of {num_frames} frames at {fps} fps ({num_frames / fps:g} s), {width}×{height} pixels, "
        f"and reads prompts and captions of up to {max_tokens} tokens.",
    ]
    if guide:
        lines.append(md_escape(guide))
    if runs_on:
        lines.append(f"Here it runs on {runs_on}: a seed makes the same clip again on this server, and may make a "
                     "slightly different one on other hardware or in another precision.")
    if words:
        lines.append(f"It knows these {len(words)} words (any other is read as unknown, and is flagged under "
                     f"the prompt): " + ", ".join(words) + ".")
    else:
        lines.append("Its tokenizer spells out any word, so no word is unknown to it.")
    return "\n\n".join(lines)


UPLOAD_START_INFO = "The model takes its clip length from here."

UNGRAMMATICAL_CAPTION = (
    "⚠️ This caption does not follow the grammar the model writes: your clip is probably unlike the footage it "
    "learned from (see *What this model knows* in the Studio tab)."
)


_READ_BACK_LEADS = {
    "generate": "Round trip: what you asked, in the model's caption of its clip",
    "joint": "What you asked, in the caption written with the clip",
    "edit": "Your edit, in the model's caption of the new clip",
}


EMPTY_CLIP = f"{NAMES_NO_OBJECT.capitalize()}: try another seed"
EMPTY_CLIP_EXPERT = f", or untick *High-noise expert* under Settings: {EXPERT_LEAVES_EMPTY}"


def read_back(mode: str, read_backs: list, expert: bool = False) -> str:
    """Under a take's caption: what it says of each thing the prompt (an edit's caption) asked
    for (`uvigu.judge.ReadBack`s) — how many objects as asked, then an object per line with what
    the caption says instead, and each object it names that was not asked for; or how many of the
    prompt's words it uses. Words, not symbols: they
    read the same in every font and to a screen reader. When the model's caption of its own clip
    names no object (`uvigu.judge.names_no_object`), a line says what to try; ``expert``: the
    clip's first step was the high-noise expert's."""
    if mode not in _READ_BACK_LEADS or not read_backs:
        return ""
    lead = f"**{_READ_BACK_LEADS[mode]}**: {read_back_count(read_backs)}"
    if len(read_backs) == 1 and not read_backs[0].name:  # the prompt's words
        missing = [c.asked for c in read_backs[0].checks if not c.agrees]
        return lead + (f"; not in it: {', '.join(missing)}." if missing else ".")
    lines = [f"{lead}.", ""]
    for item in read_backs:
        if not item.asked:
            lines.append(f"- {item.name}: **not asked for**")
        elif item.agrees:
            lines.append(f"- {item.name}: as asked")
        elif not item.found:
            lines.append(f"- {item.name}: **not in the caption**")
        else:
            misses = (f"**{said}** instead of {asked}" for said, asked in item.misses())
            lines.append(f"- {item.name}: {', '.join(misses)}")
    if mode != "joint" and names_no_object(read_backs):
        lines += ["", EMPTY_CLIP + (EMPTY_CLIP_EXPERT if expert else "") + "."]
    return "\n".join(lines)


NOTHING_ASKED = "This clip was uploaded, so nothing was asked of it: edit its caption yourself."
NOTHING_MISSED = "The caption already says everything you asked."
# The model's caption of its own clip can misread it, and then the correction breaks what was right
# (docs/EVAL.md, *Asking for what a clip missed, measured again*): say so where the correction is made.
ASKED_FOR_MISSES = (
    "The edited caption now asks for what the model's caption says otherwise than your prompt. That caption "
    "can misread the clip: look at the clip before you regenerate (this take stays in History either way)."
)
CANNOT_CORRECT = (
    "This caption cannot be corrected word for word (it is not in the grammar the model writes, or the model "
    "has none): edit it yourself."
)


# Failures that are not the visitor's input, said in the browser (Gradio would show a bare "Error").
STORAGE_FAILED = (
    "The studio could not write or read its files ({reason}), so what it was making was not kept; the takes "
    "already saved are as they were. If the disk is full, whoever runs the studio has to free space on it."
)
OUT_OF_MEMORY = (
    "The model ran out of memory. Try again with fewer takes per click or tries per take; the takes already "
    "saved are as they were."
)


def upload_start_info(length: str, clip_s: float) -> str:
    """Under *Start at*, once a clip is uploaded: how long its video lasts (``length``, m:ss.s)."""
    return f"Your clip lasts {length}; the model takes {clip_s:g} s of it from here."


def understand_help(max_minutes: float, max_megabytes: float) -> str:
    return f"""\
Upload a clip (up to {max_minutes:g} minutes and {max_megabytes:g} MB) and the model describes it. Clips
of another size, length or frame rate are fitted to the model (you are told what changed, and see
the clip it read); from a longer clip it takes its own length from the start time you give. The
captioned clip becomes a take you can edit like any other. *Caption the whole clip as a timeline*
captions it every few seconds instead, from the start time to its end, with subtitles to download.
If your browser cannot play the file (HEVC from a phone in some browsers, ProRes, AVI…), the model
still reads it; phones' HDR colours are brought to standard range first.
"""

TRAJECTORY_HELP = """\
Scrub through the denoising steps of your last run: the model's estimate of the clean clip and
its text at each noise level σ (1 is pure noise, 0 is clean). In joint mode, video and caption
form together. *Save every step as one picture* puts the whole run in one PNG, a row per step
(four frames of the estimate and the text), for slides and handouts.
"""

HISTORY_HELP = """\
Click a take to open it in the Studio tab, then edit or branch from it. **Export** saves the
session as a zip (clips, frames and every take's prompt, caption and critique); **Import** adds the
takes of such a zip to this session — to move your work to another browser or studio, or to keep
it when the studio's storage is wiped. **Delete all takes…** empties the session (it asks first;
*Delete take…* in the Studio tab removes only the open take).
"""

EXAMPLE_PROMPTS = [
    "a red circle moving right",
    "a large blue square moving up on a white background",
    "a yellow triangle moving left and a small green circle staying still",
    "a purple diamond moving down on a gray background",
]

# Clips are stored already enlarged with nearest neighbour; keep the browser from blurring them
# further when it scales the player.
CSS = """
#take-video video, #before-video video, #traj-video video, #history-gallery img { image-rendering: pixelated; }
#caption-diff { min-height: 3em; }
/* Gradio breaks highlighted text anywhere (word-break: break-all), cutting words in two at a line's
   end; a caption's diff wraps between words, and inside one only when it is longer than a line. */
#caption-diff .token-container, #caption-diff .token, #caption-diff .text {
  word-break: normal !important; overflow-wrap: anywhere;
}
/* Gradio gives a gallery as many columns as it has images, up to `columns`: with two takes each
   thumbnail would be half the page wide. Fixed-width columns keep a first take as small as the
   twentieth, and fewer columns on a phone; without Gradio's fixed minimum height, one row of them
   leaves no empty box below. */
#history-gallery .grid-container { grid-template-columns: repeat(auto-fill, minmax(160px, 1fr)) !important; }
#history-gallery .grid-wrap { min-height: 12rem !important; }
/* A timeline's times on one line, however long the captions beside them. */
#understand-timeline td:first-child, #understand-timeline th:first-child { white-space: nowrap; }
"""


def history(takes: list[Take], read_back: Callable[[str, str], list | None] | None = None) -> str:
    """The History tab's list of takes, newest first; with ``read_back`` (`Studio.read_back`), each
    model caption says how much of what was asked it names."""
    if not takes:
        return "No takes yet."
    numbers = {take.id: take.seq for take in takes}
    lines = []
    for take in reversed(takes):
        parent = (f" from #{numbers[take.parent_id]}" if take.parent_id in numbers
                  else " from a deleted take" if take.parent_id else "")
        kept = ", keeping the rest" if take.settings.get("keep_rest") else ""
        tries = take.settings.get("tries") or []
        best = f", best of {len(tries)} tries" if tries else ""
        alone = ", without the high-noise expert" if take.settings.get("high_noise_expert") is False else ""
        plain = ", without moving noise" if take.settings.get("motion_noise") == 0 else ""
        how = f"{MODE_LABELS[take.mode]}{parent}{kept}{best}{alone}{plain}"
        lines.append(f"**#{take.seq}** · {how} · seed {take.seed}")
        if take.prompt:
            label = "Edited caption" if take.mode == "edit" else "Prompt"
            lines.append(f"- {label}: {md_escape(take.prompt)}")
        agreement = read_back_count(read_back(take.prompt, take.caption) or []) if read_back else ""
        lines.append(f"- Model's caption: {md_escape(take.caption)}{f' ({agreement})' if agreement else ''}")
        if tries:
            against = "edited caption" if take.mode == "edit" else "prompt"
            lines.append(f"- Tries, each read by the model and scored against the {against} (a try's seed, "
                         "with *Tries per take* at 1, makes that try again):")
            lines += [_try_line(t, kept=t["seed"] == take.seed) for t in tries]
        if take.critique:
            lines.append(f"- Critique: {md_escape(take.critique)}")
        lines.append("")
    return "\n".join(lines)


def _try_line(item: dict, kept: bool) -> str:
    """One try of a take in its History entry: seed, score and what the model read in it (records
    from before the captions were kept have none)."""
    caption = f" · “{md_escape(item['caption'])}”" if item.get("caption") else ""
    return f"  - seed {item['seed']} · {float(item['score']):.2f}{caption}{' (kept)' if kept else ''}"


def take_title(take: Take) -> str:
    """A take panel's heading: its number, kind, seed and the seconds it took."""
    what = MODE_LABELS[take.mode]
    seconds = sum(take.timings.get(key, 0.0) for key in ("generate", "caption"))
    return f"### Take #{take.seq} · {what} · seed {take.seed} · {seconds:.1f} s"


def unknown_warning(words: list[str] | tuple[str, ...]) -> str:
    """The warning over words the model does not know ("" when there are none)."""
    if not words:
        return ""
    listed = ", ".join(f"“{md_escape(word)}”" for word in words)
    return f"⚠️ The model does not know these words and will ignore them: {listed}.\n\n"


def input_notes(notes: tuple[str, ...]) -> str:
    """What was changed to fit an input clip to the model, as one line ("" when nothing was)."""
    return ("ℹ️ Fitted to the model: " + "; ".join(notes) + ".") if notes else ""
