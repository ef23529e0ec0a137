import json
import shutil
from dataclasses import replace
from itertools import islice

import pytest
import torch
from safetensors.torch import load_file

from uvigu import UniViGUPipeline
from uvigu.training.checkpoint import checkpoint_dir, list_checkpoints
from uvigu.training.config import TrainConfig, get_train_preset
from uvigu.training.trainer import LOG_FILE, ShuffledStream, learning_rate, train


def read_log(out):
    return [json.loads(line) for line in (out / LOG_FILE).read_text().splitlines()]


def weights(folder):
    return {**load_file(folder / "transformer" / "diffusion_pytorch_model.safetensors"),
            **{f"te.{k}": v for k, v in load_file(folder / "text_encoder" / "model.safetensors").items()}}


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A 3 + 3 step tiny run with checkpoints at steps 2, 4 and 6 (the last two kept)."""
    out = tmp_path_factory.mktemp("run")
    config = get_train_preset("tiny", out_dir=str(out), ckpt_every=2)
    final = train(config)
    return config, out, final


def test_a_few_steps_lower_both_losses(tmp_path):
    # One fixed batch of 8 clips (the dataset is exactly one batch), seeded: the model must fit it.
    config = get_train_preset("tiny", out_dir=str(tmp_path), shapes_clips=8, batch_size=8, steps_recall=40,
                              steps_refine=0, lr=3e-3, ckpt_every=1000)
    train(config)
    log = read_log(tmp_path)
    assert [r["step"] for r in log] == list(range(1, 41))

    def mean(key, records):
        return sum(r[key] for r in records) / len(records)

    for key in ("video_loss", "text_loss"):
        first, last = mean(key, log[:6]), mean(key, log[-6:])
        assert last < 0.8 * first, f"{key}: {first:.3f} → {last:.3f}"


def test_resume_continues_from_its_step_and_matches_a_straight_run(tiny_run):
    config, out, final = tiny_run
    straight_weights, straight_log = weights(final), read_log(out)
    assert [r["step"] for r in straight_log] == [1, 2, 3, 4, 5, 6]
    assert [c.name for c in list_checkpoints(out)] == ["step_0000004", "step_0000006"]

    # Simulate a run that died after step 4: the step-6 checkpoint and the pipeline never got written.
    shutil.rmtree(checkpoint_dir(out, 6))
    shutil.rmtree(final)
    with pytest.raises(ValueError, match="already holds checkpoints"):
        train(config)
    resumed = train(config, resume=True)

    log = read_log(out)
    assert [r["step"] for r in log] == [1, 2, 3, 4, 5, 6]  # records after step 4 replaced, not repeated
    assert log[:4] == straight_log[:4]
    assert [r["stage"] for r in log] == ["recall"] * 3 + ["refine"] * 3
    resumed_weights = weights(resumed)
    assert resumed_weights.keys() == straight_weights.keys()
    for name, value in straight_weights.items():
        torch.testing.assert_close(resumed_weights[name], value, rtol=0, atol=0, msg=name)


def test_final_folder_holds_the_ema_pipeline_with_its_config_and_summary(tiny_run):
    config, out, final = tiny_run
    pipe = UniViGUPipeline.from_pretrained(final)
    result = pipe.generate("a red circle moving right", seed=0, num_inference_steps=2)
    assert result.frames.shape == (4, 16, 16, 3) and result.frames.dtype.name == "uint8"
    assert isinstance(pipe.caption(result.frames, seed=0, num_inference_steps=2).text, str)

    # What ships is the EMA of the last checkpoint, not the raw weights.
    ema = load_file(checkpoint_dir(out, 6) / "ema_transformer.safetensors")
    raw = load_file(checkpoint_dir(out, 6) / "transformer.safetensors")
    shipped = pipe.transformer.state_dict()
    assert any(not torch.equal(ema[k], raw[k]) for k in ema)
    for k, v in ema.items():
        torch.testing.assert_close(shipped[k], v, rtol=0, atol=0)

    assert TrainConfig.load(final / "training_config.json") == config
    summary = json.loads((final / "training_summary.json").read_text())
    assert summary["steps"] == {"recall": 3, "refine": 3}
    assert {"loss", "video_loss", "text_loss"} <= summary["final_losses"]["refine"].keys()
    assert summary["wall_time_s"] > 0 and "cpu" in summary["device"]


def test_learning_rate_warms_up_then_decays_to_its_floor():
    config = replace(get_train_preset("tiny"), lr=1.0, warmup_steps=4, min_lr_ratio=0.1, steps_recall=10, steps_refine=10)
    assert [learning_rate(s, config) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert learning_rate(4, config) == pytest.approx(1.0)
    assert learning_rate(20, config) == pytest.approx(0.1)
    assert all(learning_rate(s, config) >= learning_rate(s + 1, config) for s in range(4, 20))


def test_batch_stream_resumes_at_its_position():
    full = list(islice(ShuffledStream(5, seed=3), 12))
    assert sorted(full[:5]) == list(range(5)) and sorted(full[5:10]) == list(range(5))
    assert list(islice(ShuffledStream(5, seed=3, start=7), 5)) == full[7:12]
