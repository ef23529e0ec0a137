"""A training checkpoint as a pipeline: the run's EMA model at that step, to use or export mid-run."""

import json

import pytest
import torch
from safetensors.torch import load_file

from uvigu import UniViGUPipeline
from uvigu.cli import main
from uvigu.training.checkpoint import checkpoint_dir, is_checkpoint, list_checkpoints
from uvigu.training.codec_stage import CODEC_DIR
from uvigu.training.config import get_train_preset
from uvigu.training.export import export_checkpoint, load_checkpoint_pipeline
from uvigu.training.trainer import train

PROMPT = "a red circle moving right"


def state(pipe):
    return {**{f"transformer.{k}": v for k, v in pipe.transformer.state_dict().items()},
            **{f"text_encoder.{k}": v for k, v in pipe.text_encoder.state_dict().items()},
            **{f"codec.{k}": v for k, v in pipe.codec.state_dict().items()}}


def assert_same(a, b):
    assert a.keys() == b.keys()
    for key, value in a.items():
        torch.testing.assert_close(b[key], value, rtol=0, atol=0, msg=key)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A 2 + 4 step tiny run with position features (not the preset's default) and three checkpoints kept."""
    out = tmp_path_factory.mktemp("run")
    config = get_train_preset("tiny", out_dir=str(out), steps_recall=2, steps_refine=4, ckpt_every=2,
                              keep_checkpoints=3, position_features=2)
    return out, train(config)


def test_the_last_checkpoint_is_the_runs_final_pipeline(run):
    out, final = run
    assert [c.name for c in list_checkpoints(out)] == ["step_0000002", "step_0000004", "step_0000006"]
    pipe = load_checkpoint_pipeline(checkpoint_dir(out, 6))
    saved = UniViGUPipeline.from_pretrained(final)
    assert pipe.transformer.config.position_features == 2
    assert pipe.tokenizer.get_vocab() == saved.tokenizer.get_vocab()
    assert_same(state(saved), state(pipe))
    assert not pipe.transformer.training and not pipe.text_encoder.training
    a = pipe.generate(PROMPT, seed=3, num_inference_steps=2)
    b = saved.generate(PROMPT, seed=3, num_inference_steps=2)
    assert (a.frames == b.frames).all()


def test_an_earlier_checkpoint_exports_its_own_ema_weights(run, tmp_path):
    out, final = run
    folder = export_checkpoint(checkpoint_dir(out, 2), tmp_path / "step2")
    early = UniViGUPipeline.from_pretrained(folder)
    assert json.loads((folder / "checkpoint.json").read_text())["step"] == 2
    assert json.loads((folder / "training_config.json").read_text())["position_features"] == 2
    # The EMA weights of step 2, not the trained ones and not the end's.
    ema = load_file(str(checkpoint_dir(out, 2) / "ema_transformer.safetensors"))
    trained = load_file(str(checkpoint_dir(out, 2) / "transformer.safetensors"))
    moved = [k for k in ema if not torch.equal(ema[k], trained[k])]
    assert moved, "the tiny run's EMA should differ from its trained weights by step 2"
    for key, value in ema.items():
        torch.testing.assert_close(early.transformer.state_dict()[key], value, rtol=0, atol=0, msg=key)
    end = UniViGUPipeline.from_pretrained(final).transformer.state_dict()
    assert any(not torch.equal(end[k], early.transformer.state_dict()[k]) for k in moved)
    assert early.generate(PROMPT, seed=0, num_inference_steps=2).frames.shape[0] > 0


def test_model_commands_take_a_checkpoint_and_export_writes_one(run, tmp_path, capsys):
    out, _ = run
    step4 = checkpoint_dir(out, 4)
    clip = tmp_path / "clip.mp4"
    assert main(["generate", PROMPT, "--model", str(step4), "--steps", "2", "--seed", "0", "--no-caption",
                 "--out", str(clip)]) == 0
    assert clip.stat().st_size > 0
    assert main(["export", str(step4), "--out", str(tmp_path / "p4")]) == 0
    assert f"exported pipeline: {tmp_path / 'p4'}" in capsys.readouterr().out
    assert_same(state(load_checkpoint_pipeline(step4)), state(UniViGUPipeline.from_pretrained(tmp_path / "p4")))
    # A second export into the same folder is refused, as is a folder that is no checkpoint.
    assert main(["export", str(step4), "--out", str(tmp_path / "p4")]) == 2
    assert "not empty" in capsys.readouterr().err
    assert not is_checkpoint(out)
    assert main(["export", str(out), "--out", str(tmp_path / "p")]) == 2
    assert "not a training checkpoint" in capsys.readouterr().err
    assert main(["generate", PROMPT, "--model", str(tmp_path / "nothing"), "--out", str(clip)]) == 2
    assert "state.json" in capsys.readouterr().err


def test_a_learned_codec_comes_from_the_run(tmp_path):
    config = get_train_preset("tiny-latent", out_dir=str(tmp_path), steps_recall=2, steps_refine=0, ckpt_every=2)
    final = train(config)
    pipe = load_checkpoint_pipeline(checkpoint_dir(tmp_path, 2))
    assert_same(state(UniViGUPipeline.from_pretrained(final)), state(pipe))
    (tmp_path / CODEC_DIR / "config.json").unlink()
    with pytest.raises(ValueError, match="learned codec"):
        load_checkpoint_pipeline(checkpoint_dir(tmp_path, 2))


def test_uvigu_train_keeps_as_many_checkpoints_as_asked(tmp_path):
    out = tmp_path / "run"
    assert main(["train", "--preset", "tiny", "--out", str(out), "--steps-recall", "4", "--steps-refine", "0",
                 "--ckpt-every", "1", "--keep-checkpoints", "3"]) == 0
    assert [c.name for c in list_checkpoints(out)] == ["step_0000002", "step_0000003", "step_0000004"]
    assert main(["train", "--preset", "tiny", "--out", str(tmp_path / "bad"), "--keep-checkpoints", "0"]) == 2
