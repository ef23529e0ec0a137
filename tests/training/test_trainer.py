import json
import shutil
import signal
from dataclasses import replace
from itertools import islice

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import uvigu.training.trainer as trainer_module
from uvigu import UniViGUPipeline
from uvigu.data.shapes import shapes_vocabulary
from uvigu.models.presets import build_pipeline
from uvigu.training.checkpoint import checkpoint_dir, list_checkpoints
from uvigu.training.config import TrainConfig, get_train_preset
from uvigu.training.objective import compute_loss
from uvigu.training.export import load_checkpoint_pipeline
from uvigu.training.trainer import LOG_FILE, ShuffledStream, build_optimizer, learning_rate, train
from uvigu.videoio import write_mp4


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
    # Tagged with their epoch, for datasets whose items differ from draw to draw; same order.
    tagged = list(islice(ShuffledStream(5, seed=3, tag_epochs=True), 12))
    assert tagged == [i + 5 * (position // 5) for position, i in enumerate(full)]
    assert list(islice(ShuffledStream(5, seed=3, start=7, tag_epochs=True), 5)) == tagged[7:12]


def test_gradient_accumulation_steps_on_the_mean_gradient_of_its_micro_batches(tmp_path, monkeypatch):
    """One optimizer step over two micro-batches of 2 equals AdamW on the mean of their two
    gradients, computed here by hand from the same clips and the same objective draws."""
    calls = []

    def spy(**kwargs):
        calls.append({"state": kwargs["generator"].get_state(),
                      **{k: kwargs[k].clone() if k == "frames" else list(kwargs[k]) for k in ("frames", "prompts", "captions")}})
        return compute_loss(**kwargs)

    monkeypatch.setattr(trainer_module, "compute_loss", spy)
    config = get_train_preset("tiny", out_dir=str(tmp_path), steps_recall=1, steps_refine=0, batch_size=2,
                              grad_accum=2, ckpt_every=1000, log_every=1)
    trained = {}
    train(config, on_trained=lambda accelerator, models: trained.update(
        {f"{i}.{k}": v.detach().clone() for i, m in enumerate(models) for k, v in m.state_dict().items()}))
    assert len(calls) == 2  # two micro-batches, one step
    assert calls[0]["prompts"] != calls[1]["prompts"]  # of different clips
    (record,) = read_log(tmp_path)
    summary = json.loads((tmp_path / "pipeline" / "training_summary.json").read_text())
    assert summary["examples_seen"] == 4

    pipe = build_pipeline("tiny", shapes_vocabulary(), seed=config.seed)  # the trainer's starting model
    models = [pipe.transformer.train(), pipe.text_encoder.train()]
    optimizer = build_optimizer(models, config)
    for group in optimizer.param_groups:
        group["lr"] = learning_rate(0, config)
    for call in calls:
        generator = torch.Generator()
        generator.set_state(call["state"])
        result = compute_loss(
            transformer=models[0], text_encoder=models[1], tokenizer=pipe.tokenizer, codec=pipe.codec,
            frames=call["frames"], prompts=call["prompts"], captions=call["captions"], config=config.objective("recall"),
            text_flow=pipe.text_flow, max_text_len=pipe.config.max_text_len, max_prompt_len=pipe.config.max_prompt_len,
            generator=generator,
        )
        (result.loss / 2).backward()
    params = [p for m in models for p in m.parameters()]
    norm = torch.nn.utils.clip_grad_norm_(params, config.grad_clip)
    assert record["grad_norm"] == pytest.approx(float(norm), rel=1e-4)  # the mean's norm, not the sum's
    optimizer.step()
    expected = {f"{i}.{k}": v for i, m in enumerate(models) for k, v in m.state_dict().items()}
    assert trained.keys() == expected.keys()
    for name, value in expected.items():
        torch.testing.assert_close(trained[name], value, msg=name)


def test_an_accumulating_run_resumes_where_it_stopped(tmp_path):
    config = get_train_preset("tiny", out_dir=str(tmp_path), steps_recall=2, steps_refine=2, batch_size=2,
                              grad_accum=3, ckpt_every=2)
    final = train(config)
    straight_weights, straight_log = weights(final), read_log(tmp_path)
    shutil.rmtree(checkpoint_dir(tmp_path, 4))
    shutil.rmtree(final)
    resumed = train(config, resume=True)
    assert read_log(tmp_path)[:2] == straight_log[:2] and len(read_log(tmp_path)) == 4
    for name, value in weights(resumed).items():
        torch.testing.assert_close(value, straight_weights[name], rtol=0, atol=0, msg=name)


def test_grad_accum_must_be_at_least_one():
    with pytest.raises(ValueError, match="grad_accum"):
        get_train_preset("tiny", grad_accum=0)


def test_a_run_stopped_by_its_time_limit_checkpoints_and_resumes_as_if_it_had_not(tiny_run, tmp_path):
    config, straight_out, straight_final = tiny_run
    # No checkpoint or log record but the stop's.
    stopped_config = replace(config, out_dir=str(tmp_path), ckpt_every=1000, log_every=4)
    stopped = train(stopped_config, stop_after_s=0)  # the limit is checked after each step: one step
    assert stopped == checkpoint_dir(tmp_path, 1) and list_checkpoints(tmp_path) == [stopped]
    assert not (tmp_path / "pipeline").exists()
    assert [r["step"] for r in read_log(tmp_path)] == [1]  # the step it made is logged
    frames = load_checkpoint_pipeline(stopped).generate("a red circle moving right", seed=0, num_inference_steps=2).frames
    assert frames.shape == (4, 16, 16, 3)  # the checkpoint is a model already

    final = train(stopped_config, resume=True)
    assert [r["step"] for r in read_log(tmp_path)] == [1, 3, 4, 6]  # stop, end of recall, every 4th, end
    for name, value in weights(straight_final).items():
        torch.testing.assert_close(weights(final)[name], value, rtol=0, atol=0, msg=name)


@pytest.fixture
def python_sigint():
    """SIGINT raising KeyboardInterrupt, as in a terminal, even where pytest was started with it
    ignored (a shell's background job); the handler found is put back afterwards."""
    found = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, found)


def test_ctrl_c_ends_the_step_checkpoints_and_a_second_one_stops_at_once(tiny_run, tmp_path, monkeypatch,
                                                                         python_sigint):
    config, _, straight_final = tiny_run
    before = signal.getsignal(signal.SIGINT)
    calls = []

    def interrupted_at_third_step(**kwargs):
        calls.append(1)
        if len(calls) == 3:
            signal.raise_signal(signal.SIGINT)  # mid-step: the step still ends
        return compute_loss(**kwargs)

    monkeypatch.setattr(trainer_module, "compute_loss", interrupted_at_third_step)
    stopped = train(replace(config, out_dir=str(tmp_path / "a")), resume=False)
    assert stopped == checkpoint_dir(tmp_path / "a", 3) and len(calls) == 3
    assert signal.getsignal(signal.SIGINT) is before  # the handler is put back

    monkeypatch.setattr(trainer_module, "compute_loss", compute_loss)
    final = train(replace(config, out_dir=str(tmp_path / "a")), resume=True)
    for name, value in weights(straight_final).items():
        torch.testing.assert_close(weights(final)[name], value, rtol=0, atol=0, msg=name)

    def interrupted_twice(**kwargs):
        signal.raise_signal(signal.SIGINT)
        signal.raise_signal(signal.SIGINT)
        return compute_loss(**kwargs)

    monkeypatch.setattr(trainer_module, "compute_loss", interrupted_twice)
    with pytest.raises(KeyboardInterrupt):
        train(replace(config, out_dir=str(tmp_path / "b")))
    assert signal.getsignal(signal.SIGINT) is before
    assert not list_checkpoints(tmp_path / "b")


def test_a_negative_time_limit_is_refused(tmp_path):
    with pytest.raises(ValueError, match="stop_after_s"):
        train(get_train_preset("tiny", out_dir=str(tmp_path)), stop_after_s=-1)


def test_a_folder_with_a_caption_too_long_for_the_model_stops_before_the_first_step(tmp_path):
    clips = tmp_path / "clips"
    clips.mkdir()
    write_mp4(np.zeros((8, 16, 16, 3), np.uint8), clips / "a.mp4", fps=8)
    record = {"video": "a.mp4", "prompt": "a dark screen", "caption": " ".join(["dark"] * 200)}
    (clips / "metadata.jsonl").write_text(json.dumps(record) + "\n")
    config = get_train_preset("tiny", data=str(clips), batch_size=1, out_dir=str(tmp_path / "run"))
    with pytest.raises(ValueError, match="line 1: the caption is 200 tokens long"):
        train(config)
    assert not (tmp_path / "run" / LOG_FILE).exists()  # refused before the recall stage, not at refine's turn


def test_clips_shorter_than_an_item_are_warned_of_before_training(tmp_path, caplog):
    clips = tmp_path / "clips"
    clips.mkdir()
    write_mp4(np.zeros((2, 16, 16, 3), np.uint8), clips / "short.mp4", fps=8)  # 0.25 s; an item of tiny is 0.5 s
    write_mp4(np.zeros((8, 16, 16, 3), np.uint8), clips / "long.mp4", fps=8)
    (clips / "metadata.jsonl").write_text("".join(json.dumps({"video": name, "prompt": "dark"}) + "\n"
                                                  for name in ("short.mp4", "long.mp4")))
    config = get_train_preset("tiny", data=str(clips), out_dir=str(tmp_path / "run"))
    with caplog.at_level("INFO", logger="uvigu.training.trainer"):
        trainer_module.build_dataset(config)
    (warning,) = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warning.endswith("1 of 2 clips are shorter than an item (0.5 s): each is filled out by holding its last "
                            "frame, so the model learns motion that stops; give it clips of at least 0.5 s")
    assert any("1 shorter than an item (the last frame held to fill it)" in m for m in caplog.messages)
    caplog.clear()
    (clips / "metadata.jsonl").write_text(json.dumps({"video": "long.mp4", "prompt": "dark"}) + "\n")
    with caplog.at_level("INFO", logger="uvigu.training.trainer"):
        trainer_module.build_dataset(config)
    assert not [r for r in caplog.records if r.levelname == "WARNING"]


def test_a_clip_damaged_after_the_start_is_skipped_and_the_run_goes_on(tmp_path, monkeypatch, caplog):
    clips = tmp_path / "clips"
    clips.mkdir()
    for name, level in (("a.mp4", 40), ("b.mp4", 200)):
        write_mp4(np.full((8, 16, 16, 3), level, np.uint8), clips / name, fps=8)
    (clips / "metadata.jsonl").write_text("".join(json.dumps({"video": name, "prompt": f"clip {name[0]}"}) + "\n"
                                                  for name in ("a.mp4", "b.mp4")))
    build = trainer_module.build_dataset

    def damaged_after_the_check(config):  # every clip was checked; then one file is overwritten
        dataset, words = build(config)
        (clips / "b.mp4").write_bytes(b"overwritten")
        return dataset, words

    monkeypatch.setattr(trainer_module, "build_dataset", damaged_after_the_check)
    config = get_train_preset("tiny", data=str(clips), batch_size=2, steps_recall=2, steps_refine=1,
                              out_dir=str(tmp_path / "run"))
    with caplog.at_level("WARNING", logger="uvigu.data.video_folder"):
        final = train(config)
    assert [r["step"] for r in read_log(tmp_path / "run")] == [1, 2, 3]
    assert (final / "model_index.json").is_file()
    (warning,) = [m for m in caplog.messages if "skipped" in m]  # once, however often it was drawn
    assert "line 2: b.mp4" in warning


def test_held_out_clips_are_captioned_at_every_sample_as_uvigu_eval_data_scores_them(tmp_path):
    from uvigu.cli import main
    from uvigu.eval.folder import caption_folder, folder_scores

    assert main(["shapes", str(tmp_path / "held"), "--set", "heldout", "--num", "3"]) == 0
    config = get_train_preset("tiny", out_dir=str(tmp_path / "run"), steps_recall=2, steps_refine=2, ckpt_every=2,
                              keep_checkpoints=2, sample_every=2, eval_data=str(tmp_path / "held"))
    train(config)
    samples = [json.loads(line) for line in (tmp_path / "run" / "samples" / "samples.jsonl").read_text().splitlines()]
    assert [(s["step"], s["eval_clips"]) for s in samples] == [(2, 3), (4, 3)]
    for sample in samples:  # the EMA weights at the sample are the checkpoint's of that step
        bleu, cider = folder_scores(caption_folder(load_checkpoint_pipeline(checkpoint_dir(tmp_path / "run", sample["step"])),
                                                   tmp_path / "held"))
        assert (sample["eval_bleu4"], sample["eval_cider_d"]) == (round(bleu, 4), round(cider, 4))


def test_held_out_clips_are_checked_before_the_first_step_and_need_samples(tmp_path):
    (tmp_path / "held").mkdir()
    (tmp_path / "held" / "metadata.jsonl").write_text('{"video": "gone.mp4", "prompt": "a red circle"}\n')
    config = get_train_preset("tiny", out_dir=str(tmp_path / "run"), sample_every=2, eval_data=str(tmp_path / "held"))
    with pytest.raises(ValueError, match="line 1: video file not found: gone.mp4"):
        train(config)
    assert not (tmp_path / "run" / LOG_FILE).exists()
    with pytest.raises(ValueError, match="eval_data is captioned at every sample; give sample_every"):
        get_train_preset("tiny", sample_every=0, eval_data=str(tmp_path / "held"))
