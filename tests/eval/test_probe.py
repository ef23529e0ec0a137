"""uvigu probe: the denoiser's error with the clip's caption against one attribute changed."""

import pytest
import torch

from uvigu.cli import main
from uvigu.eval.grammar import parse_caption
from uvigu.eval.probe import render_probe, run_probe
from uvigu.eval.report import EvalConfig
from uvigu.testing import tiny_pipeline

CONFIG = EvalConfig(num_clips=4, num_heldout=0)
SIGMAS = (0.5, 0.9)


@pytest.fixture(scope="module")
def pipe():
    return tiny_pipeline()  # pixel space, so the fake denoiser below works on pixels


def reads(attribute):
    """A fake denoiser that returns x_t as its estimate, or ±10 off it in a random sign per value
    wherever the text's ``attribute`` differs from the first text's (the clip's own caption) — it
    "uses" only that. Decoded, a wrong estimate is ±1 per value, (1 + x²) from the truth on average,
    against σ²(1 + x²) for the right one."""

    def denoise(x_t, texts, sigma):
        own = parse_caption(texts[0]).objects
        signs = torch.randn(x_t.shape[1:], generator=torch.Generator().manual_seed(0)).sign()
        out = []
        for x, text in zip(x_t, texts):
            said = parse_caption(text).objects
            differs = any(getattr(a, attribute) != getattr(b, attribute) for a, b in zip(own, said))
            out.append(x + 10.0 * signs if differs else x)
        return torch.stack(out)

    return denoise


def test_only_the_attribute_the_denoiser_reads_makes_a_difference(pipe):
    rows = run_probe(pipe, CONFIG, SIGMAS, denoise=reads("color"))
    assert [(r.sigma, r.attribute) for r in rows] == [(s, a) for s in SIGMAS for a in ("color", "shape", "motion")]
    for row in rows:
        assert 0 < row.clips <= CONFIG.num_clips
        if row.attribute == "color":
            assert row.ratio > 1 and row.right_better == row.clips
        else:
            assert row.error_wrong == pytest.approx(row.error_right) and row.right_better == 0


@pytest.mark.parametrize("preset", ["tiny", "tiny-latent"])  # errors on decoded pixels, whatever the codec
def test_the_real_denoiser_runs_and_the_table_has_a_line_per_row(preset):
    pipe = tiny_pipeline(preset=preset)
    rows = run_probe(pipe, CONFIG, SIGMAS)
    assert all(r.error_right > 0 and r.error_wrong > 0 for r in rows)
    lines = render_probe(rows).splitlines()
    assert len(lines) == 2 + len(rows) and lines[2].startswith("| 0.5 | color |")
    with pytest.raises(ValueError, match="noise levels"):
        run_probe(pipe, CONFIG, (0.0,))


def test_the_command_prints_the_table(tmp_path, capsys):
    tiny_pipeline().save_pretrained(tmp_path)
    assert main(["probe", "--model", str(tmp_path), "--num", "2", "--sigma", "0.8"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 5 and lines[2].startswith("| 0.8 | color | 2 |")
