import logging
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from uvigu.inputs import (
    CaptionSettings, caption_settings, check_device, check_dtype, check_judge_at, check_prompt, check_seed, check_steps,
    check_strength, prepare_video,
)
from uvigu.testing import tiny_pipeline

CONFIG = SimpleNamespace(
    caption_steps=12, text_temperature=1.0, caption_reread=1, caption_reread_threshold=1.0,
    caption_reread_period=8, caption_verify_weight=300.0, caption_verify_max_texts=16, caption_verify_draws=1,
)


def _gpus(monkeypatch, count: int) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: count > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)


def test_auto_is_the_gpu_when_torch_sees_one_except_on_zero_gpu(monkeypatch):
    _gpus(monkeypatch, 0)
    assert check_device("auto") == check_device(None) == torch.device("cpu")
    _gpus(monkeypatch, 2)
    assert check_device("auto") == check_device(" AUTO ") == torch.device("cuda")
    assert check_device("auto", zero_gpu=True) == torch.device("cpu")
    assert check_device("cuda:1") == torch.device("cuda:1") and check_device("cpu") == torch.device("cpu")


def test_a_device_that_is_not_there_is_named_before_the_model_loads(monkeypatch):
    _gpus(monkeypatch, 0)
    with pytest.raises(ValueError, match="device 'cuda' asks for a GPU, but this torch sees none .*use cpu or auto"):
        check_device("cuda")
    _gpus(monkeypatch, 2)
    with pytest.raises(ValueError, match=r"asks for GPU 2, but this torch sees 2 \(cuda:0 to cuda:1\)"):
        check_device("cuda:2")
    for name in ("gpu", "mps", "cuda:x", ""):
        with pytest.raises(ValueError, match="device must be auto, cpu, cuda or cuda:N"):
            check_device(name)


def test_a_checked_device_or_dtype_passes_a_second_check_unchanged(monkeypatch):
    _gpus(monkeypatch, 2)
    for device in (torch.device("cpu"), torch.device("cuda:1")):
        assert check_device(device) == check_device(check_device(device)) == device
    assert [check_dtype(d) for d in ("bf16", torch.bfloat16, None, torch.float32)] == [torch.bfloat16] * 2 + [torch.float32] * 2
    with pytest.raises(ValueError, match="dtype must be float32, bfloat16 .* or auto, got torch.float16"):
        check_dtype(torch.float16)


def test_auto_precision_is_bfloat16_where_the_hardware_computes_it(monkeypatch):
    from uvigu import inputs

    for native in (True, False):
        monkeypatch.setattr(inputs, "cpu_computes_bf16", lambda: native)
        expected = torch.bfloat16 if native else torch.float32
        assert check_dtype("auto") == check_dtype(" AUTO ", torch.device("cpu")) == expected
    _gpus(monkeypatch, 1)
    # an A100 / H100 computes bf16; a T4 or V100 only emulates it (torch's is_bf16_supported says yes)
    for capability, expected in (((8, 0), torch.bfloat16), ((9, 0), torch.bfloat16), ((7, 5), torch.float32)):
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a, **k: capability)
        assert check_dtype("auto", "cuda:0") == expected
    assert check_dtype("float32", "cuda") == torch.float32  # asked for, not chosen


# /proc/cpuinfo's flags lines, cut to what matters: a server with AMX, one with AVX-512 BF16
# alone, one with AVX2 only (bf16 emulated), and an ARM board (no flags line; not counted).
CPUINFO = {
    "amx": "processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_bf16 amx_bf16 amx_tile\n",
    "avx512_bf16": "processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_bf16\n",
    "avx2": "processor\t: 0\nflags\t\t: fpu sse2 avx2 fma\nvmx flags\t: vnmi\n",
    "arm": "processor\t: 0\nFeatures\t: fp asimd bf16\n",
}


@pytest.mark.parametrize("cpu, native", [("amx", True), ("avx512_bf16", True), ("avx2", False), ("arm", False)])
def test_native_bf16_is_read_from_the_cpus_flags(cpu, native):
    from uvigu.inputs import lists_bf16_flags

    assert lists_bf16_flags(CPUINFO[cpu]) is native


def test_caption_settings_take_the_model_defaults_and_keep_what_is_given():
    assert caption_settings(CONFIG) == CaptionSettings(12, 1.0, 1, 1.0, 8, 300.0, 16, 1)
    given = caption_settings(CONFIG, num_inference_steps=4, temperature=0, reread=0, reread_threshold=0.5,
                             reread_period=4, verify_weight=0, verify_max_texts=8, verify_draws=2)
    assert given == CaptionSettings(4, 0.0, 0, 0.5, 4, 0.0, 8, 2)
    assert isinstance(given.temperature, float) and isinstance(given.verify_weight, float)


def test_a_model_default_out_of_range_is_caught_like_a_given_value():
    with pytest.raises(ValueError, match="reread_period must be a whole number from 2 to 16, got 1"):
        caption_settings(SimpleNamespace(**{**vars(CONFIG), "caption_reread_period": 1}))


def test_a_prompt_is_tidied_and_its_unknown_words_are_logged(caplog):
    tokenizer = tiny_pipeline().tokenizer
    with caplog.at_level(logging.WARNING, logger="uvigu.inputs"):
        assert check_prompt(tokenizer, "  a red   zebra\nmoving right ", 40) == "a red zebra moving right"
    assert "zebra" in caplog.text
    with pytest.raises(ValueError, match="the caption is .* tokens long; this model reads at most 3"):
        check_prompt(tokenizer, "a red circle moving right", 3, "caption")


def test_a_seed_is_drawn_when_none_is_given_and_numpy_integers_are_accepted():
    assert 0 <= check_seed(None) < 2**31
    assert check_seed(np.int64(7)) == 7 and isinstance(check_seed(np.int64(7)), int)
    with pytest.raises(ValueError, match="seed"):
        check_seed(-1)


@pytest.mark.parametrize("check, value, message", [
    (lambda v: check_seed(v), True, "seed must be a whole number from 0 to 2147483647, got True"),
    (lambda v: check_steps(v, 20), True, "num_inference_steps must be a whole number from 1 to 1000, got True"),
    (lambda v: check_steps(v, 20), 2.5, "num_inference_steps must be a whole number"),
    (check_strength, True, r"strength must be in \(0, 1\], got True"),
    (check_strength, 0.0, r"strength must be in \(0, 1\], got 0.0"),
    (check_judge_at, 1.5, r"judge_at must be in \(0, 1\] \(the share of a take's steps"),
])
def test_a_flag_or_an_out_of_range_value_is_not_taken_for_a_number(check, value, message):
    with pytest.raises(ValueError, match=message):
        check(value)


def test_numbers_in_range_come_back_as_python_numbers():
    assert check_steps(np.int32(12), 20) == 12 and check_steps(None, 20) == 20
    assert check_strength(np.float32(0.5)) == 0.5 and type(check_strength(np.float32(0.5))) is float
    assert check_judge_at(1) == 1.0


def test_a_clip_is_brought_to_the_model_size_with_notes():
    config = SimpleNamespace(fps=8, num_frames=4, height=16, width=16)
    frames, notes = prepare_video(np.zeros((6, 32, 24, 3), np.uint8), config)
    assert frames.shape == (4, 16, 16, 3) and frames.dtype == np.uint8 and frames.flags.c_contiguous
    assert notes == ["used the first 0.5 s (4 frames)", "resized 24×32 → 16×16 (center-cropped to square)"]
    assert prepare_video(frames, config)[1] == []  # a clip that fits is left as it is
