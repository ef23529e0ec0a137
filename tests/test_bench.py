"""Benchmarks: rows carry the expected fields and positive numbers, the doc writer keeps what lies
outside its markers, and the analytic FLOP count agrees with torch's counter. No wall-clock
assertions (STYLE: benchmarks are scripts)."""

import argparse
import copy

import pytest
import torch

from uvigu.bench import (
    ForwardShape,
    bench_forwards,
    bench_matmuls,
    bench_precision,
    bench_tasks,
    count_flops,
    format_markdown,
    machine_info,
    plain_wan_like,
    run_benchmarks,
    transformer_flops,
    video_tokens,
    write_section,
)
from uvigu.cli.bench import add_bench_parser, run_bench
from uvigu.inputs import auto_dtype
from uvigu.bench.report import markers
from uvigu.bench.suite import DIFFERENT_WAYS_PROMPT, PRECISION_TASKS, PROMPT
from uvigu.models.tokenizer import encode_text
from uvigu.testing import tiny_pipeline

BEGIN_MARKER, END_MARKER = markers("cpu")


@pytest.fixture(scope="module")
def pipe():
    pipe = tiny_pipeline()
    pipe.register_to_config(take_judge_at=0.5, take_judge_steps=2)  # best-of judged half-way, by 2 steps
    # objects going different ways: a 2-step draft, then each object's prompt guiding every step of the run
    pipe.register_to_config(motion_noise=0.5, motion_noise_draft=2, object_guidance=1.0, object_guidance_to=0.0)
    return pipe


@pytest.fixture(scope="module")
def result(pipe):
    return run_benchmarks(pipe, "tiny (test)", repeats=1, warmup=0, forward_repeats=1)


def _positive_timing(t):
    assert t.repeats >= 1
    assert 0 < t.min_s <= t.median_s <= t.max_s


def test_task_rows(result, pipe):
    assert [r.task for r in result.tasks] == ["generate", "generate_different_ways", "caption", "edit",
                                              "edit_keep_rest", "edit_one_word", "generate_with_caption",
                                              "generate_best_of_4", "generate_best_of_4_full"]
    by_task = {r.task: r for r in result.tasks}
    steps, caption_steps = pipe.config.num_inference_steps, pipe.config.caption_steps
    reading = by_task["caption"].denoiser_calls
    # four takes judged after half their steps by 2 caption steps, then the kept one made and read again
    judged = -(-steps // 2)  # each take judged half-way by 2 caption steps; the kept one goes on from there
    assert by_task["generate_best_of_4"].denoiser_calls == 4 * (judged + 2) + (steps - judged) + reading
    assert by_task["generate_best_of_4_full"].denoiser_calls == 4 * (steps + reading)
    assert by_task["generate"].denoiser_calls == steps  # CFG: both branches in one batch-2 call
    # the draft, then each step guided along the objects' paths (placed though the draft shows none)
    assert by_task["generate_different_ways"].denoiser_calls == 2 + 2 * steps
    assert by_task["generate_with_caption"].denoiser_calls == steps
    assert by_task["caption"].denoiser_calls == caption_steps + pipe.config.caption_reread  # + one per re-read pass
    assert 1 <= by_task["edit"].denoiser_calls < steps  # starts part-way (strength 0.6)
    # keeping the rest starts further up (strength 0.9), one call on both texts per step
    assert by_task["edit"].denoiser_calls < by_task["edit_keep_rest"].denoiser_calls < steps
    # the same steps, each object guided by its own text before and after the change (down to σ 0 here)
    assert by_task["edit_one_word"].denoiser_calls == 3 * by_task["edit_keep_rest"].denoiser_calls
    for row in result.tasks:
        _positive_timing(row.timing)
        assert row.seconds_per_call > 0


def test_forward_and_matmul_rows(result, pipe):
    generate, caption = result.forwards
    latent = pipe.codec.latent_shape(pipe.default_num_frames, pipe.default_height, pipe.default_width)
    n = video_tokens(tuple(pipe.transformer.config.patch_size), *latent[1:])
    _, valid = encode_text(pipe.tokenizer, [PROMPT], pipe.config.max_text_len)
    assert (generate.batch, generate.video_tokens, generate.text_tokens) == (2, n, int(valid.sum()))  # as in generate()
    assert (caption.batch, caption.video_tokens, caption.text_tokens) == (1, n, pipe.config.max_text_len)
    for row in result.forwards:
        _positive_timing(row.timing)
        assert row.flops > 0 and row.gflops_per_s > 0
    assert [m.dtype for m in result.matmuls] == ["float32", "bfloat16"]
    for m in result.matmuls:
        _positive_timing(m.timing)
        assert m.flops == 2 * m.m * m.k * m.n and m.gflops_per_s > 0


def test_step_costs_pair_same_batches(result, pipe):
    assert len(result.step_costs) == 3
    for cost in result.step_costs:
        assert cost.unified.batch == cost.wan.batch
        assert cost.wan.text_tokens == 0
        assert cost.ratio > 0
    # without text tokens the unified model does Wan's arithmetic, plus only the text σ embedding
    # (the text head sees no tokens)
    no_text = result.step_costs[1]
    assert no_text.unified.text_tokens == 0
    c, b = pipe.transformer.config, no_text.unified.batch
    d = c.num_attention_heads * c.attention_head_dim
    text_sigma_embedding = 2 * b * (c.freq_dim * d + d * d + d * 6 * d)
    assert no_text.unified.flops == no_text.wan.flops + text_sigma_embedding


def test_time_interleaved_alternates_and_counts():
    from uvigu.bench.timing import time_interleaved

    order = []
    timings = time_interleaved({"a": lambda: order.append("a"), "b": lambda: order.append("b")}, repeats=3, warmup=1)
    assert order == ["a", "b"] * 4
    assert set(timings) == {"a", "b"} and all(t.repeats == 3 and t.min_s >= 0 for t in timings.values())


def test_matmul_shape_is_as_asked():
    rows = bench_matmuls(8, 4, 3, repeats=2, warmup=0)
    assert [(r.m, r.k, r.n, r.timing.repeats) for r in rows] == [(8, 4, 3, 2), (8, 4, 3, 2)]


@pytest.mark.parametrize("batch, text_tokens, masked", [(1, 48, False), (2, 48, True), (1, 0, False)])
def test_analytic_flops_match_torch_counter(pipe, batch, text_tokens, masked):
    model = pipe.transformer
    c = model.config
    f, h, w = pipe.default_num_frames, pipe.default_height, pipe.default_width
    s = 32
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch, c.in_channels, f, h, w, generator=g)
    ids = torch.randint(0, c.vocab_size - 1, (batch, text_tokens), generator=g)
    mask = None
    if masked:
        mask = torch.zeros(batch, text_tokens, dtype=torch.bool)
        mask[:, :7] = True
    sigma = torch.full((batch,), 0.5)
    context = torch.randn(batch, s, c.text_dim, generator=g)
    with torch.no_grad():
        measured = count_flops(lambda: model(x, ids, sigma, sigma, context, mask))
    analytic = transformer_flops(c, ForwardShape(batch, video_tokens(tuple(c.patch_size), f, h, w), text_tokens, s))
    assert analytic == pytest.approx(measured, rel=0.03)


def test_analytic_flops_match_torch_counter_for_plain_wan(pipe):
    wan = plain_wan_like(pipe.transformer)
    c = pipe.transformer.config
    f, h, w = pipe.default_num_frames, pipe.default_height, pipe.default_width
    x = torch.randn(2, c.in_channels, f, h, w)
    context = torch.randn(2, 16, c.text_dim)
    with torch.no_grad():
        measured = count_flops(lambda: wan(x, torch.tensor([500.0, 500.0]), context, return_dict=False))
    shape = ForwardShape(2, video_tokens(tuple(c.patch_size), f, h, w), 0, 16)
    assert transformer_flops(dict(wan.config), shape, text_stream=False) == pytest.approx(measured, rel=0.03)


def test_attention_counts_quadratically():
    config = dict(num_attention_heads=2, attention_head_dim=8, freq_dim=16, patch_size=(1, 1, 1), in_channels=3,
                  out_channels=3, ffn_dim=32, text_dim=8, num_layers=1, vocab_size=10)
    base = transformer_flops(config, ForwardShape(1, 0, 0, 0), text_stream=False)
    one, two = (transformer_flops(config, ForwardShape(1, n, 0, 0), text_stream=False) - base for n in (10, 20))
    d = 16
    quadratic = 2 * (2 * d)  # QKᵀ + AV: 2 products of 2·n²·d, per n²
    assert two - 2 * one == quadratic * (20**2 - 2 * 10**2)


def test_objects_going_different_ways_cost_the_draft_and_a_call_a_guided_step(pipe, monkeypatch):
    import uvigu.object_paths
    from uvigu.bench.suite import _count_calls, _task_calls
    from uvigu.judge import ObjectPlace
    from uvigu.loading import denoisers

    places = [ObjectPlace("right", (4.0, 5.0), 3.0, "a red circle moving right", 0),
              ObjectPlace("up", (11.0, 10.0), 3.0, "a blue square moving up", 1)]
    monkeypatch.setattr(uvigu.object_paths, "object_places", lambda judge, prompt, frames, fill=False: places)
    calls = _count_calls(denoisers(pipe), _task_calls(pipe)["generate_different_ways"])
    assert calls == 2 + 2 * pipe.config.num_inference_steps  # a 2-step draft; every step guided (down to σ 0)
    steps = pipe.config.num_inference_steps
    pipe.register_to_config(object_guidance_every=2)
    try:  # the objects' prompts at every other step: the draft, the steps, and half as many calls again
        assert _count_calls(denoisers(pipe), _task_calls(pipe)["generate_different_ways"]) == 2 + steps + -(-steps // 2)
    finally:
        pipe.register_to_config(object_guidance_every=1)


def test_the_round_trip_edit_changes_one_colour_and_guides_each_object_with_two_calls_a_step(pipe):
    from uvigu.bench.suite import _count_calls, _task_calls, example, one_word_edited
    from uvigu.loading import denoisers

    shapes = example(pipe)
    edited = one_word_edited(shapes)
    changed = [(a, b) for a, b in zip(shapes.caption.split(), edited.split()) if a != b]
    assert len(changed) == 1 and changed[0][0] == shapes.scene.objects[0].color  # one colour, the first object's
    assert changed[0][1] not in {obj.color for obj in shapes.scene.objects}
    edit = _task_calls(pipe)["edit_one_word"]
    guided = _count_calls(denoisers(pipe), edit)
    pipe.register_to_config(object_guidance=0.0)
    try:
        plain = _count_calls(denoisers(pipe), edit)
    finally:
        pipe.register_to_config(object_guidance=1.0)
    assert len(shapes.scene.objects) >= 2 and guided == 3 * plain  # every step guided (down to σ 0)


def test_markdown_has_the_tables_and_provenance(result):
    machine = machine_info()
    text = format_markdown(result, machine, "uvigu bench --model x")
    assert "`uvigu bench --model x`" in text
    assert "tiny (test)" in text and machine.cpu in text and torch.__version__ in text
    # which precision the studio's default picks here, as the loaders pick it
    assert machine.auto_dtype == str(auto_dtype("cpu")).removeprefix("torch.")
    assert f"`--dtype auto`, the default of the studio and of `uvigu generate`, `caption` and `edit`, picks " \
           f"{machine.auto_dtype} on this machine." in text
    for task in ("`generate`", "`generate_different_ways`", "`caption`", "`edit`", "`edit_keep_rest`",
                 "`generate_with_caption`"):
        assert f"| {task} |" in text
    different_ways = "`generate_different_ways`: `generate` of a prompt whose objects go different ways"
    assert f'{different_ways} ("{DIFFERENT_WAYS_PROMPT}")' in text
    assert "`edit_keep_rest`: `edit` also given what the clip shows before the change" in text
    assert "| `edit_one_word` |" in text and "`edit_one_word`: the studio's round trip" in text
    assert "| `generate_best_of_4` |" in text and "| `generate_best_of_4_full` |" in text
    assert "`generate_best_of_4_full`: every take finished and captioned in full" in text
    assert "plain matmul float32" in text and "plain matmul bfloat16" in text
    assert text.count("diffusers Wan") == 3
    assert "### The same tasks with the denoiser's weights in bfloat16" in text
    row = next(line for line in text.splitlines() if line.startswith("| `caption` | ") and line.endswith("× |"))
    assert float(row.split("|")[-2].strip().rstrip("×")) > 0


def test_precision_rows_time_both_weights_and_leave_the_pipeline_in_float32(result, pipe):
    assert [r.task for r in result.precision] == ["generate", "generate_different_ways", "caption", "edit", "edit_keep_rest",
                                                  "edit_one_word"]
    for row in result.precision:
        _positive_timing(row.float32)
        _positive_timing(row.bfloat16)
        assert row.speedup == row.float32.median_s / row.bfloat16.median_s
    assert all(p.dtype == torch.float32 for p in pipe.transformer.parameters())  # the copy was cast, not it
    low = copy.deepcopy(pipe)
    low.transformer.to(torch.bfloat16)
    with pytest.raises(ValueError, match="compares with float32 weights"):
        bench_precision(low, repeats=1, warmup=0)


def test_write_section_replaces_only_the_marked_part(tmp_path):
    doc = tmp_path / "BENCHMARKS.md"
    doc.write_text(f"# Title\n\nintro kept\n\n{BEGIN_MARKER}\nold numbers\n{END_MARKER}\n\n## Notes\nkept too\n")
    write_section(doc, "new numbers\n")
    text = doc.read_text()
    assert "old numbers" not in text and "new numbers" in text
    assert text.startswith("# Title\n\nintro kept\n\n") and text.endswith("\n\n## Notes\nkept too\n")
    write_section(doc, "newer numbers")
    text2 = doc.read_text()
    assert text2 == text.replace("new numbers", "newer numbers")
    assert text2.count(BEGIN_MARKER) == 1 and text2.count(END_MARKER) == 1


def test_sections_are_independent(tmp_path):
    doc = tmp_path / "BENCHMARKS.md"
    write_section(doc, "cpu v1")
    write_section(doc, "gpu v1", section="gpu")
    write_section(doc, "cpu v2")
    text = doc.read_text()
    assert "cpu v2" in text and "gpu v1" in text and "cpu v1" not in text
    assert text.index(markers("cpu")[1]) < text.index(markers("gpu")[0])


def test_write_section_creates_or_appends(tmp_path):
    fresh = tmp_path / "docs" / "BENCHMARKS.md"
    write_section(fresh, "numbers")
    assert fresh.read_text().startswith("# Benchmarks") and "numbers" in fresh.read_text()
    plain = tmp_path / "plain.md"
    plain.write_text("# Mine\n\ntext\n")
    write_section(plain, "numbers")
    assert plain.read_text() == f"# Mine\n\ntext\n\n{BEGIN_MARKER}\nnumbers\n{END_MARKER}\n"


def test_write_section_refuses_an_unmatched_marker(tmp_path):
    doc = tmp_path / "b.md"
    doc.write_text(f"{BEGIN_MARKER}\nno end\n")
    with pytest.raises(ValueError, match="unmatched"):
        write_section(doc, "x")


def test_bench_command_writes_the_doc_and_falls_back_without_a_model(tmp_path, capsys, monkeypatch, pipe):
    import uvigu.bench.suite as suite

    monkeypatch.setattr(suite, "_fallback_pipeline", lambda: pipe)
    monkeypatch.chdir(tmp_path)  # reports show paths relative to the working directory
    parser = argparse.ArgumentParser(prog="uvigu")
    add_bench_parser(parser.add_subparsers(dest="command"))
    out = tmp_path / "BENCH.md"
    args = parser.parse_args(["bench", "--model", str(tmp_path / "missing"), "--repeats", "1", "--warmup", "0",
                              "--forward-repeats", "1", "--output", str(out)])
    assert run_bench(args) == 0
    printed = capsys.readouterr()
    assert "randomly initialised" in printed.err and "| `generate` |" in printed.out
    text = out.read_text()
    assert "uvigu bench --model missing" in text and "--output BENCH.md" in text and "| `caption` |" in text
    assert "randomly initialised" in text


def test_gpu_flag_explains_itself_without_cuda(capsys):
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    parser = argparse.ArgumentParser(prog="uvigu")
    add_bench_parser(parser.add_subparsers(dest="command"))
    assert run_bench(parser.parse_args(["bench", "--gpu"])) == 2
    assert "CUDA" in capsys.readouterr().err


def test_task_and_forward_functions_standalone(pipe):
    rows = bench_tasks(pipe, repeats=1, warmup=0)
    assert len(rows) == 9
    forwards, costs = bench_forwards(pipe, repeats=1, warmup=0)
    assert len(forwards) == 2 and len(costs) == 3


def test_a_model_with_a_high_noise_expert_is_timed_with_it_and_without_it(tmp_path):
    from uvigu import UniViGUPipeline
    from uvigu.models.expert import write_expert

    base = tiny_pipeline(seed=0)
    base.save_pretrained(tmp_path / "model")
    write_expert(base, tiny_pipeline(seed=1), tmp_path / "model" / "high_noise_expert", boundary=0.99, rank=4)
    pipe = UniViGUPipeline.from_pretrained(tmp_path / "model")
    pipe.set_progress_bar_config(disable=True)
    rows = {r.task: r for r in bench_tasks(pipe, repeats=1, warmup=0)}
    steps = pipe.config.num_inference_steps
    # the expert's call (σ 1) counts among generate's; the row without it makes them all with the model
    assert list(rows)[:2] == ["generate", "generate_no_expert"]
    assert rows["generate"].denoiser_calls == rows["generate_no_expert"].denoiser_calls == steps
    # bfloat16 casts the expert with the model (they must run alike), and the model is left as it was
    precision = bench_precision(pipe, repeats=1, warmup=0)
    assert [r.task for r in precision] == list(PRECISION_TASKS)
    assert pipe.transformer.dtype == pipe.high_noise_expert[0].transformer.dtype == torch.float32
    result = run_benchmarks(pipe, "tiny with an expert (test)", repeats=1, warmup=0, forward_repeats=1)
    assert result.high_noise_boundary == 0.99
    text = format_markdown(result, machine_info(), "uvigu bench")
    assert "- high-noise expert: attached, from σ 0.99" in text and "| `generate_no_expert` |" in text
    assert "high-noise expert" not in format_markdown(run_benchmarks(base, "tiny", repeats=1, warmup=0,
                                                                     forward_repeats=1), machine_info(), "uvigu bench")
