"""Stage 0: the learned codec trains by reconstruction, is saved, frozen, and reused on resume."""

import json

import pytest
import torch

from uvigu import UniViGUPipeline
from uvigu.models.autoencoder import VideoAutoencoder
from uvigu.training.codec_stage import CODEC_DIR, CODEC_LOG, codec_learning_rate
from uvigu.training.config import get_train_preset
from uvigu.training.trainer import LOG_FILE, train


def read(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_the_codec_learns_to_reconstruct_then_ships_frozen(tmp_path):
    # One fixed batch of 8 clips: the reconstruction loss must fall.
    config = get_train_preset("tiny", out_dir=str(tmp_path), shapes_clips=8, batch_size=8, steps_codec=40, codec_lr=1e-2,
                              steps_recall=1, steps_refine=0, ckpt_every=1000)
    final = train(config)
    log = read(tmp_path / CODEC_LOG)
    assert [r["step"] for r in log] == list(range(1, 41)) and {r["stage"] for r in log} == {"codec"}
    first, last = (sum(r["reconstruction"] for r in part) / len(part) for part in (log[:5], log[-5:]))
    assert last < 0.5 * first, (first, last)
    # The pipeline ships the stage's codec, unchanged by the later stages.
    shipped = UniViGUPipeline.from_pretrained(final).codec.state_dict()
    trained = VideoAutoencoder.from_pretrained(tmp_path / CODEC_DIR).state_dict()
    assert shipped.keys() == trained.keys()
    for key, value in trained.items():
        torch.testing.assert_close(shipped[key], value, rtol=0, atol=0, msg=key)


def test_a_resumed_run_reuses_the_finished_codec_stage(tmp_path):
    config = get_train_preset("tiny", out_dir=str(tmp_path), steps_recall=2, steps_refine=0, ckpt_every=1)
    train(config)
    codec_log = (tmp_path / CODEC_LOG).read_text()
    before = VideoAutoencoder.from_pretrained(tmp_path / CODEC_DIR).state_dict()
    resumed = train(get_train_preset("tiny", out_dir=str(tmp_path), steps_recall=2, steps_refine=2, ckpt_every=1),
                    resume=True)
    assert (tmp_path / CODEC_LOG).read_text() == codec_log  # not trained again
    assert [r["step"] for r in read(tmp_path / LOG_FILE)] == [1, 2, 3, 4]
    after = UniViGUPipeline.from_pretrained(resumed).codec.state_dict()
    for key, value in before.items():
        torch.testing.assert_close(after[key], value, rtol=0, atol=0, msg=key)


def test_a_learned_codec_needs_its_stage_or_init_from(tmp_path):
    with pytest.raises(ValueError, match="learned codec"):
        train(get_train_preset("tiny", out_dir=str(tmp_path / "a"), steps_codec=0))
    # A run folder holding another preset's codec is not silently reused.
    VideoAutoencoder(latent_channels=4, width=24, num_blocks=1).save_pretrained(tmp_path / "b" / CODEC_DIR)
    with pytest.raises(ValueError, match="another size"):
        train(get_train_preset("tiny", out_dir=str(tmp_path / "b")))


def test_codec_learning_rate_decays_to_a_tenth():
    config = get_train_preset("tiny", steps_codec=10, codec_lr=1.0)
    rates = [codec_learning_rate(s, config) for s in range(11)]
    assert rates[0] == pytest.approx(1.0) and rates[-1] == pytest.approx(0.1)
    assert all(a >= b for a, b in zip(rates, rates[1:]))
