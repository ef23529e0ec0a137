"""Stage 0: the learned codec trains by reconstruction, is saved, frozen, and reused on resume."""

import json

import pytest
import torch

from uvigu import UniViGUPipeline
from uvigu.cli import main
from uvigu.models.autoencoder import VideoAutoencoder
from uvigu.training.codec_stage import CODEC_DIR, CODEC_LOG, codec_learning_rate
from uvigu.training.config import get_train_preset
from uvigu.training.trainer import LOG_FILE, train


def tiny_latent(**overrides):
    return get_train_preset("tiny-latent", **overrides)


def read(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def codec_state(folder):
    return UniViGUPipeline.from_pretrained(folder).codec.state_dict()


def assert_same(a, b):
    assert a.keys() == b.keys()
    for key, value in a.items():
        torch.testing.assert_close(b[key], value, rtol=0, atol=0, msg=key)


def test_the_codec_learns_to_reconstruct_then_ships_frozen(tmp_path):
    # One fixed batch of 8 clips: the reconstruction loss must fall.
    config = tiny_latent(out_dir=str(tmp_path), shapes_clips=8, batch_size=8, steps_codec=40, codec_lr=1e-2,
                         steps_recall=1, steps_refine=0, ckpt_every=1000)
    final = train(config)
    log = read(tmp_path / CODEC_LOG)
    assert [r["step"] for r in log] == list(range(1, 41)) and {r["stage"] for r in log} == {"codec"}
    first, last = (sum(r["reconstruction"] for r in part) / len(part) for part in (log[:5], log[-5:]))
    assert last < 0.5 * first, (first, last)
    # The pipeline ships the stage's codec, unchanged by the later stages.
    assert_same(VideoAutoencoder.from_pretrained(tmp_path / CODEC_DIR).state_dict(), codec_state(final))
    summary = json.loads((final / "training_summary.json").read_text())
    assert summary["steps"] == {"codec": 40, "recall": 1, "refine": 0}
    assert summary["final_losses"]["codec"]["reconstruction"] == pytest.approx(
        sum(r["reconstruction"] for r in log[-4:]) / 4, abs=1e-5)
    assert summary["codec_wall_time_s"] > 0


def test_a_resumed_run_reuses_the_finished_codec_stage(tmp_path):
    train(tiny_latent(out_dir=str(tmp_path), steps_recall=2, steps_refine=0, ckpt_every=1))
    codec_log = (tmp_path / CODEC_LOG).read_text()
    before = VideoAutoencoder.from_pretrained(tmp_path / CODEC_DIR).state_dict()
    resumed = train(tiny_latent(out_dir=str(tmp_path), steps_recall=2, steps_refine=2, ckpt_every=1), resume=True)
    assert (tmp_path / CODEC_LOG).read_text() == codec_log  # not trained again
    assert [r["step"] for r in read(tmp_path / LOG_FILE)] == [1, 2, 3, 4]
    assert_same(before, codec_state(resumed))


def test_init_from_brings_its_codec_and_skips_the_stage(tmp_path):
    source = train(tiny_latent(out_dir=str(tmp_path / "source")))
    started = train(tiny_latent(out_dir=str(tmp_path / "init"), init_from=str(source), steps_recall=1, steps_refine=0))
    assert not (tmp_path / "init" / CODEC_LOG).exists()
    assert_same(codec_state(source), codec_state(started))
    # The run folder keeps the copy, so that --resume finds the same codec.
    assert_same(codec_state(source), VideoAutoencoder.from_pretrained(tmp_path / "init" / CODEC_DIR).state_dict())
    # The same transformer over another codec is refused: its latents would mean something else.
    other = UniViGUPipeline.from_pretrained(source)
    other.register_modules(codec=VideoAutoencoder(latent_channels=4, width=24, num_blocks=1))
    other.save_pretrained(tmp_path / "other")
    with pytest.raises(ValueError, match="codec .* differs from this preset's"):
        train(tiny_latent(out_dir=str(tmp_path / "x"), init_from=str(tmp_path / "other")))


def test_a_learned_codec_needs_its_stage_or_init_from(tmp_path):
    with pytest.raises(ValueError, match="learned codec"):
        train(tiny_latent(out_dir=str(tmp_path / "a"), steps_codec=0))
    # A run folder holding another preset's codec is not silently reused.
    VideoAutoencoder(latent_channels=4, width=24, num_blocks=1).save_pretrained(tmp_path / "b" / CODEC_DIR)
    with pytest.raises(ValueError, match="another size"):
        train(tiny_latent(out_dir=str(tmp_path / "b")))


def test_codec_learning_rate_decays_to_a_tenth():
    config = tiny_latent(steps_codec=10, codec_lr=1.0)
    rates = [codec_learning_rate(s, config) for s in range(11)]
    assert rates[0] == pytest.approx(1.0) and rates[-1] == pytest.approx(0.1)
    assert all(a >= b for a, b in zip(rates, rates[1:]))


def test_the_command_trains_the_codec_stage_it_is_asked_for(tmp_path):
    out = tmp_path / "run"
    assert main(["train", "--preset", "tiny-latent", "--out", str(out), "--steps-codec", "2", "--steps-recall", "1",
                 "--steps-refine", "1"]) == 0
    assert [r["step"] for r in read(out / CODEC_LOG)] == [1, 2]
    assert json.loads((out / "pipeline" / "training_summary.json").read_text())["steps"] == {
        "codec": 2, "recall": 1, "refine": 1}
