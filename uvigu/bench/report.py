"""The benchmark report: the machine it ran on, markdown tables, and the marked section of
``docs/BENCHMARKS.md`` that a re-run replaces (everything outside the markers is kept)."""

from __future__ import annotations

import datetime
import os
import platform
from dataclasses import dataclass
from pathlib import Path

import torch

from ..inputs import auto_dtype
from .suite import DIFFERENT_WAYS_PROMPT, BenchmarkResult



def markers(section: str = "cpu") -> tuple[str, str]:
    """The begin / end lines around one generated section (``cpu``: ``uvigu bench``; ``gpu``:
    ``uvigu bench --gpu``), so each command replaces only its own numbers."""
    return (
        f"<!-- uvigu bench {section}: begin (generated; edits inside are overwritten by the next run) -->",
        f"<!-- uvigu bench {section}: end -->",
    )

DOC_HEADER = """# Benchmarks

Speed of the default model on a CPU, measured by `uvigu bench` (DESIGN §5: generate, caption and
edit within a few seconds on the 2-core CPU; the unified model's step within a small factor of a
plain Wan transformer of the same size). Every comparison is against a baseline timed in the same
run. Re-running the command replaces the section between the markers and keeps the rest.

"""


@dataclass(frozen=True)
class MachineInfo:
    cpu: str
    logical_cores: int | None
    torch_version: str
    torch_threads: int
    platform: str
    accelerator: str | None  # the CUDA device, when the model ran on one
    load_average: tuple[float, float, float] | None  # 1, 5, 15 min, when the OS reports it
    auto_dtype: str  # the precision ``--dtype auto`` (the studio's default) picks for the model's device

    def describe(self) -> str:
        parts = [
            f"{self.cpu}, {self.logical_cores} logical cores",
            f"torch {self.torch_version} ({self.torch_threads} thread{'' if self.torch_threads == 1 else 's'})",
            self.platform,
        ]
        if self.accelerator:
            parts.append(self.accelerator)
        return "; ".join(parts)


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def load_average() -> tuple[float, float, float] | None:
    """The OS's 1 / 5 / 15 minute load averages (other work sharing the cores), if available."""
    try:
        return os.getloadavg()
    except OSError:
        return None


def machine_info(device: torch.device | str = "cpu") -> MachineInfo:
    accelerator = None
    if torch.device(device).type == "cuda":
        accelerator = torch.cuda.get_device_name(torch.device(device))
    return MachineInfo(
        cpu=_cpu_model(),
        logical_cores=os.cpu_count(),
        torch_version=torch.__version__,
        torch_threads=torch.get_num_threads(),
        platform=f"{platform.system()} {platform.release()}, Python {platform.python_version()}",
        accelerator=accelerator,
        load_average=load_average(),
        auto_dtype=str(auto_dtype(device)).removeprefix("torch."),
    )


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.1f}"


def _load(value: tuple[float, float, float] | None) -> str:
    return "n/a" if value is None else " / ".join(f"{v:.2f}" for v in value)


def format_markdown(
    result: BenchmarkResult,
    machine: MachineInfo,
    command: str,
    *,
    date: datetime.datetime | None = None,
    load_after: tuple[float, float, float] | None = None,
) -> str:
    """The report as markdown: provenance, then one table per measurement."""
    date = date or datetime.datetime.now(datetime.timezone.utc)
    lines = [
        f"## `{command}`",
        "",
        f"- model: {result.model}",
        f"- machine: {machine.describe()}",
        f"- date: {date.strftime('%Y-%m-%d %H:%M UTC')}; whole run {result.elapsed_s:.0f} s",
        f"- load average (1 / 5 / 15 min) before: {_load(machine.load_average)}; after: {_load(load_after)}"
        f" — above the core count means other work shared the cores and the times are inflated",
        *([] if result.high_noise_boundary is None else [
            f"- high-noise expert: attached, from σ {result.high_noise_boundary:g} (it makes the denoiser calls of "
            f"generate, joint and the plain edit at and above that level, counted among the calls below)"]),
        "",
        "### Tasks at the pipeline's default settings (seed 0)",
        "",
        "| task | denoiser calls | median (s) | min (s) | max (s) | repeats | s per call |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in result.tasks:
        t = row.timing
        lines.append(
            f"| `{row.task}` | {row.denoiser_calls} | {t.median_s:.2f} | {t.min_s:.2f} | {t.max_s:.2f} | "
            f"{t.repeats} | {row.seconds_per_call:.3f} |"
        )
    if any(row.task == "generate_no_expert" for row in result.tasks):
        lines += ["", "`generate_no_expert`: `generate` with `high_noise_expert=False`: every call by the model, "
                      "none by its high-noise expert (the studio's *High-noise expert* box unticked)."]
    if any(row.task == "generate_different_ways" for row in result.tasks):
        lines += ["", f"`generate_different_ways`: `generate` of a prompt whose objects go different ways "
                      f"(\"{DIFFERENT_WAYS_PROMPT}\"), as the model samples one: where its settings say so, a draft "
                      "of its first `motion_noise_draft` steps places each object, and each object's own prompt "
                      "guides its path (`object_guidance`) — the calls of both among the row's."]
    if any(row.task == "edit_keep_rest" for row in result.tasks):
        lines += ["", "`edit_keep_rest`: `edit` also given what the clip shows before the change (`source_prompt`; "
                      "the studio's *Keep the rest*, ticked by default): both texts in every denoiser call."]
    if any(row.task == "edit_one_word" for row in result.tasks):
        lines += ["", "`edit_one_word`: the studio's round trip — the example clip's caption with one object's colour "
                      "changed, edited from the caption (`source_prompt`), keeping the rest; when the two texts name "
                      "the same two or more objects, as this clip's do, each object is also guided by its own text "
                      "before and after the change (`object_guidance`), two calls more a guided step."]
    best_of = [row.task for row in result.tasks if row.task.startswith("generate_best_of_")]
    if best_of:
        lines += ["", f"`{best_of[0]}`: `generate` with `best_of`, each take judged by its caption as the model's "
                      "`take_judge_at` / `take_judge_steps` say, the kept one then finished and captioned"
                      + (f"; `{best_of[-1]}`: every take finished and captioned in full (judge_at 1, judge_steps 0)."
                         if len(best_of) > 1 else ".")]
    if result.precision:
        lines += [
            "",
            "### The same tasks with the denoiser's weights in bfloat16 (same run, called in turn)",
            "",
            "| task | float32 median (s) | bfloat16 median (s) | float32 / bfloat16 |",
            "|---|---:|---:|---:|",
            *[f"| `{row.task}` | {row.float32.median_s:.2f} | {row.bfloat16.median_s:.2f} | {row.speedup:.2f}× |"
              for row in result.precision],
            "",
            "bfloat16: `--dtype bfloat16` (every model command and the studio); norms, modulation tables and "
            "the timestep embedder stay float32, as diffusers loads a model in low precision. `--dtype auto`, the "
            "default of the studio and of `uvigu generate`, `caption` and `edit`, picks "
            f"{machine.auto_dtype} on this machine.",
        ]
    fp32 = next((m for m in result.matmuls if m.dtype == "float32"), None)
    bf16 = next((m for m in result.matmuls if m.dtype == "bfloat16"), None)
    lines += [
        "",
        "### Denoiser throughput against a plain matmul (same run)",
        "",
        "FLOPs are counted analytically (matrix products only; checked against "
        "`torch.utils.flop_counter` in the tests).",
        "",
        "| forward | batch | video + text tokens | GFLOP | median (ms) | GFLOP/s | vs fp32 matmul | vs bf16 matmul |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in result.forwards:
        ratios = [f"{row.gflops_per_s / m.gflops_per_s:.0%}" if m else "n/a" for m in (fp32, bf16)]
        lines.append(
            f"| {row.name} | {row.batch} | {row.video_tokens} + {row.text_tokens} | {row.flops / 1e9:.2f} | "
            f"{_ms(row.timing.median_s)} | {row.gflops_per_s:.1f} | {ratios[0]} | {ratios[1]} |"
        )
    for m in result.matmuls:
        lines.append(
            f"| plain matmul {m.dtype} ({m.m}×{m.k}) @ ({m.k}×{m.n}) | | | {m.flops / 1e9:.2f} | "
            f"{_ms(m.timing.median_s)} | {m.gflops_per_s:.1f} | | |"
        )
    lines += [
        "",
        "### Step cost: unified model against diffusers' `WanTransformer3DModel` of the same size (same run)",
        "",
        "| unified forward | median (ms) | Wan forward | median (ms) | ratio | FLOP ratio |",
        "|---|---:|---|---:|---:|---:|",
    ]
    for cost in result.step_costs:
        u, w = cost.unified, cost.wan
        lines.append(
            f"| {u.name} | {_ms(u.timing.median_s)} | {w.name} | {_ms(w.timing.median_s)} | "
            f"{cost.ratio:.2f}× | {u.flops / w.flops:.2f}× |"
        )
    return "\n".join(lines) + "\n"


def write_section(path: str | Path, markdown: str, section: str = "cpu") -> None:
    """Put ``markdown`` between the ``section`` markers of ``path``: replace what the markers held,
    append a marked section when there is none, create the file (with a header) when missing."""
    path = Path(path)
    begin_marker, end_marker = markers(section)
    block = f"{begin_marker}\n{markdown.rstrip()}\n{end_marker}"
    text = path.read_text(encoding="utf-8") if path.exists() else DOC_HEADER
    begin, end = text.find(begin_marker), text.find(end_marker)
    if begin != -1 and end > begin:
        text = text[:begin] + block + text[end + len(end_marker):]
    elif begin == -1 and end == -1:
        text = text.rstrip("\n") + "\n\n" + block + "\n" if text.strip() else block + "\n"
    else:
        raise ValueError(f"{path} has an unmatched '{section}' bench marker; fix or remove it, then re-run.")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
