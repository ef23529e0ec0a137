"""uvigu train --init-from: a run starts from a saved pipeline's weights, word by word."""

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from uvigu import UniViGUPipeline
from uvigu.cli import main
from uvigu.training.config import get_train_preset
from uvigu.training.trainer import LOG_FILE, train
from uvigu.training.warm_start import source_words
from uvigu.videoio import write_mp4

# A run that barely moves its weights: one step at a negligible learning rate.
STILL = dict(steps_recall=1, steps_refine=0, lr=1e-12, warmup_steps=0, ckpt_every=1000)


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """A tiny pipeline trained for a few steps: the weights to start from."""
    out = tmp_path_factory.mktemp("source")
    return train(get_train_preset("tiny", out_dir=str(out), seed=3))


def load(folder):
    return UniViGUPipeline.from_pretrained(folder)


def state(pipe):
    return {**pipe.transformer.state_dict(), **{f"te.{k}": v for k, v in pipe.text_encoder.state_dict().items()}}


def test_run_starts_from_the_saved_weights(source, tmp_path):
    started = train(get_train_preset("tiny", out_dir=str(tmp_path / "init"), init_from=str(source), **STILL))
    fresh = train(get_train_preset("tiny", out_dir=str(tmp_path / "fresh"), **STILL))
    before, after, scratch = state(load(source)), state(load(started)), state(load(fresh))
    assert before.keys() == after.keys()
    for key in before:
        torch.testing.assert_close(after[key], before[key], rtol=0, atol=1e-6, msg=key)
    assert any(not torch.allclose(scratch[k], before[k]) for k in before)
    assert json.loads((started / "training_config.json").read_text())["init_from"] == str(source)


def test_new_words_of_the_data_get_rows_and_old_words_keep_theirs(source, tmp_path):
    clips = tmp_path / "clips"
    clips.mkdir()
    frames = np.zeros((8, 16, 16, 3), np.uint8)
    frames[:, 4:12, 4:12] = (230, 40, 40)
    write_mp4(frames, clips / "a.mp4", fps=8)
    # "aardvark" sorts before every Shapes word, so every old word's id moves by one.
    record = {"video": "a.mp4", "prompt": "a red aardvark", "caption": "a red aardvark stays still."}
    (clips / "metadata.jsonl").write_text(json.dumps(record) + "\n")
    started = train(get_train_preset("tiny", data=str(clips), batch_size=1, out_dir=str(tmp_path / "run"),
                                     init_from=str(source), **STILL))

    old, new = load(source), load(started)
    old_vocab, new_vocab = old.tokenizer.get_vocab(), new.tokenizer.get_vocab()
    assert "aardvark" not in old_vocab and "aardvark" in new_vocab
    assert new_vocab["red"] == old_vocab["red"] + 1
    assert new.transformer.config.vocab_size == len(new_vocab) == len(old_vocab) + 1
    for word in ("red", "circle", "[MASK]"):
        i, j = old_vocab[word], new_vocab[word]
        torch.testing.assert_close(new.transformer.token_embedding.weight[j], old.transformer.token_embedding.weight[i])
        torch.testing.assert_close(new.transformer.proj_out_t.weight[j], old.transformer.proj_out_t.weight[i])
        torch.testing.assert_close(new.text_encoder.shared.weight[j], old.text_encoder.shared.weight[i])
    # The new word can be captioned and prompted with: the saved pipeline knows it.
    assert new.unknown_words("a red aardvark") == []


def test_a_pipeline_of_another_architecture_or_no_pipeline_is_refused(source, tmp_path):
    with pytest.raises(ValueError, match="choose the preset it was trained with"):
        train(get_train_preset("shapes", out_dir=str(tmp_path / "a"), init_from=str(source), **STILL))
    with pytest.raises(ValueError, match="model_index.json"):
        train(get_train_preset("tiny", out_dir=str(tmp_path / "b"), init_from=str(tmp_path), **STILL))
    # Same shapes, another setting that changes what the weights mean.
    other = load(source)
    kind = other.transformer.config.prediction_type
    other.transformer.register_to_config(prediction_type="velocity" if kind == "sample" else "sample")
    other.save_pretrained(tmp_path / "other")
    with pytest.raises(ValueError, match="differs from this preset's in prediction_type"):
        train(get_train_preset("tiny", out_dir=str(tmp_path / "c"), init_from=str(tmp_path / "other"), **STILL))


def test_cli_init_from_then_resume(source, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--preset", "tiny", "--out", str(out), "--init-from", str(source),
                 "--steps-recall", "1", "--steps-refine", "1", "--ckpt-every", "1"]) == 0
    capsys.readouterr()
    # The resumed run takes its weights from its checkpoint; it keeps its init_from setting.
    assert main(["train", "--preset", "tiny", "--out", str(out), "--resume", "--steps-refine", "2"]) == 0
    steps = [json.loads(line)["step"] for line in (out / LOG_FILE).read_text().splitlines()]
    assert steps == [1, 2, 3]
    assert json.loads((out / "pipeline" / "training_config.json").read_text())["init_from"] == str(source)
    assert main(["train", "--preset", "tiny", "--out", str(tmp_path / "x"), "--init-from", str(tmp_path / "no")]) == 2
    assert "model_index.json" in capsys.readouterr().err


def test_a_pipeline_with_another_tokenizer_is_refused():
    class SubwordTokenizer:  # no [MASK]/[PAD]/... of the word-level vocabulary
        def get_vocab(self):
            return {"▁a": 0, "▁red": 1}

    with pytest.raises(ValueError, match="word-level vocabulary"):
        source_words(SimpleNamespace(tokenizer=SubwordTokenizer()))


def test_a_run_may_add_position_features_to_a_model_without_them(source, tmp_path):
    """--position-features on a model trained without them: the new map starts at zero, so the run
    starts from the saved model's outputs; the saved pipeline keeps them, and so does a later run
    from it that does not set them. Turning them off (a model that has them, into a run with 0)
    would drop what they learned, and is refused."""
    assert load(source).transformer.config.position_features == 0
    out = tmp_path / "placed"
    assert main(["train", "--preset", "tiny", "--out", str(out), "--init-from", str(source), "--position-features",
                 "2", "--steps-recall", "1", "--steps-refine", "0", "--lr", "1e-12", "--warmup-steps", "0"]) == 0
    assert json.loads((out / "training_config.json").read_text())["position_features"] == 2
    before, after = load(source), load(out / "pipeline")
    assert after.transformer.config.position_features == 2
    assert after.transformer.pos_embedding.weight.abs().max() < 1e-9
    shared = state(before)
    for key, value in state(after).items():
        if key.startswith("pos_embedding."):
            continue
        torch.testing.assert_close(value, shared.pop(key), rtol=0, atol=1e-6, msg=key)
    assert not shared  # nothing of the saved model left behind

    # a run from it that does not mention them keeps them (the shipped model has them: fine-tuning
    # it with the README's command must work); one that turns them off is refused
    kept = train(get_train_preset("tiny", out_dir=str(tmp_path / "on"), init_from=str(out / "pipeline"), **STILL))
    assert json.loads((tmp_path / "on" / "training_config.json").read_text())["position_features"] == 2
    torch.testing.assert_close(load(kept).transformer.pos_embedding.weight, after.transformer.pos_embedding.weight,
                               rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match="trained with position_features 2; pass --position-features 2"):
        train(get_train_preset("tiny", out_dir=str(tmp_path / "back"), init_from=str(out / "pipeline"),
                               position_features=0, **STILL))


def test_an_anchored_run_holds_the_levels_below_the_top_to_the_starting_models_prediction(source, tmp_path):
    # Generate examples only, none mapped to the top: with the anchor each learns the velocity the
    # starting model predicts, which the run's first step still predicts itself (no loss); without it
    # the same step learns the data's.
    common = ["train", "--preset", "tiny", "--init-from", str(source), "--steps-recall", "0", "--steps-refine", "1",
              "--task-probs", "1", "0", "0", "--video-sigma-min", "0.99", "--video-sigma-min-share", "0"]
    assert main([*common, "--video-anchor", "--out", str(tmp_path / "held")]) == 0
    assert main([*common, "--out", str(tmp_path / "free")]) == 0

    def first_loss(run):
        return json.loads((tmp_path / run / LOG_FILE).read_text().splitlines()[0])["generate/video"]

    assert first_loss("held") < 1e-5 and first_loss("free") > 1e-3  # the log rounds to a few digits
    config = json.loads((tmp_path / "held" / "pipeline" / "training_config.json").read_text())
    assert config["video_anchor"] is True and config["video_sigma_min_share"] == 0.0


def test_a_text_anchored_run_holds_the_captions_to_the_starting_models_words(source, tmp_path):
    # Caption examples only: with the anchor the run's first step reads the words as the starting
    # model does (no loss); without it the same step learns the data's words.
    common = ["train", "--preset", "tiny", "--init-from", str(source), "--steps-recall", "0", "--steps-refine", "1",
              "--task-probs", "0", "1", "0"]
    assert main([*common, "--text-anchor", "--out", str(tmp_path / "held")]) == 0
    assert main([*common, "--out", str(tmp_path / "free")]) == 0

    def first_loss(run):
        return json.loads((tmp_path / run / LOG_FILE).read_text().splitlines()[0])["caption/text"]

    assert first_loss("held") < 1e-5 and first_loss("free") > 1e-3
    assert json.loads((tmp_path / "held" / "pipeline" / "training_config.json").read_text())["text_anchor"] is True


def test_a_run_from_a_model_with_a_high_noise_expert_starts_from_the_model_and_leaves_the_expert(source, tmp_path):
    # The expert is a difference from the starting weights, not from the run's: the run's model has none.
    import shutil

    from uvigu.models.expert import EXPERT_FOLDER, write_expert

    shutil.copytree(source, tmp_path / "with_expert")
    base = load(source)
    top = load(source)
    with torch.no_grad():
        for param in top.transformer.parameters():
            param.add_(0.1)
    write_expert(base, top, tmp_path / "with_expert" / EXPERT_FOLDER, boundary=0.99, rank=4)
    assert load(tmp_path / "with_expert").high_noise_expert is not None
    started = train(get_train_preset("tiny", out_dir=str(tmp_path / "run"), init_from=str(tmp_path / "with_expert"),
                                     **STILL))
    after = state(load(started))
    for key, value in state(base).items():  # the model's weights, not the expert's
        torch.testing.assert_close(after[key], value, rtol=0, atol=1e-6, msg=key)
    assert not (started / EXPERT_FOLDER).exists()
    assert load(started).high_noise_expert is None
