"""The GPU benchmark refuses without CUDA; its measuring and table code runs on the CPU at a tiny size."""

from pathlib import Path

import pytest
import torch

from uvigu.bench_gpu import ClipSize, render_markdown, run_gpu_benchmark

from .tiny_wan import tiny_wan_transformer

CONFIGS = Path(__file__).parents[2] / "configs" / "accelerate"


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal without CUDA")
def test_refuses_without_cuda():
    with pytest.raises(RuntimeError, match="needs a CUDA device"):
        run_gpu_benchmark()


def test_tiny_run_and_table_on_cpu():
    config = dict(tiny_wan_transformer().config)
    config = {k: v for k, v in config.items() if not k.startswith("_") and k not in ("image_dim", "added_kv_proj_dim", "pos_embed_seq_len")}
    sizes = [ClipSize(9, 16, 16), ClipSize(5, 32, 32)]
    rows = run_gpu_benchmark(sizes, model_config=config, vocab_size=40, text_len=8, prompt_tokens=3,
                             context_len=4, warmup=0, iters=1, device="cpu", dtype=torch.float32)
    assert [(r["size"], r["task"]) for r in rows] == [
        (s.label, t) for s in sizes for t in ("wan", "t2v", "caption", "joint")
    ]
    assert rows[0]["video_tokens"] == 3 * 1 * 1 and rows[4]["video_tokens"] == 2 * 2 * 2
    assert all(r["step_ms"] > 0 and r["peak_gib"] is None for r in rows)
    assert rows[0]["vs_wan"] == 1.0
    table = render_markdown(rows, "cpu (test)", model="a tiny size")
    assert table.startswith("Device: cpu (test). Random weights at a tiny size, float32,")
    assert [r["text_tokens"] for r in rows[:4]] == [0, 3, 8, 8]  # t2v holds the prompt's tokens alone
    assert "| 9×16×16 | 3 | 8 | joint |" in table and table.count("\n| ") == 1 + len(rows)


def test_accelerate_configs():
    from accelerate import FullyShardedDataParallelPlugin
    from accelerate.commands.config.config_args import load_config_from_file

    from uvigu.testing import tiny_pipeline

    ddp = load_config_from_file(str(CONFIGS / "ddp.yaml"))
    assert str(ddp.distributed_type) == "DistributedType.MULTI_GPU" and ddp.mixed_precision == "bf16"
    fsdp = load_config_from_file(str(CONFIGS / "fsdp.yaml"))
    assert str(fsdp.distributed_type) == "DistributedType.FSDP"
    assert fsdp.fsdp_config["fsdp_auto_wrap_policy"] == "TRANSFORMER_BASED_WRAP"
    plugin = FullyShardedDataParallelPlugin(fsdp_version=2, auto_wrap_policy="transformer_based_wrap")
    plugin.set_auto_wrap_policy(tiny_pipeline().transformer)
    assert plugin.transformer_cls_names_to_wrap == ["UniViGUBlock"]  # one FSDP unit per block
