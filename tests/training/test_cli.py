import json

from uvigu import UniViGUPipeline
from uvigu.cli import main
from uvigu.training.trainer import LOG_FILE


def test_uvigu_train_tiny_then_resume_longer(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--preset", "tiny", "--out", str(out), "--steps-recall", "1", "--steps-refine", "1"]) == 0
    assert f"trained pipeline: {out / 'pipeline'}" in capsys.readouterr().out
    assert (out / "pipeline" / "model_index.json").is_file()

    # --resume keeps the run's saved settings and applies the ones given again.
    assert main(["train", "--preset", "tiny", "--out", str(out), "--resume", "--steps-refine", "3"]) == 0
    steps = [json.loads(line)["step"] for line in (out / LOG_FILE).read_text().splitlines()]
    assert steps == [1, 2, 3, 4]
    summary = json.loads((out / "pipeline" / "training_summary.json").read_text())
    assert summary["steps"] == {"recall": 1, "refine": 3}


def test_uvigu_train_reports_bad_data_folder(tmp_path, capsys):
    code = main(["train", "--preset", "tiny", "--out", str(tmp_path / "x"), "--data", str(tmp_path / "missing")])
    assert code == 2
    assert "metadata.jsonl" in capsys.readouterr().err


def test_uvigu_train_takes_task_weights_word_swaps_reverse_twins_noise_levels_a_loss_cap_and_accumulation(tmp_path):
    out = tmp_path / "run"
    args = ["train", "--preset", "tiny", "--out", str(out), "--steps-recall", "0", "--steps-refine", "2",
            "--task-probs", "0", "1", "0", "--text-swap", "0.2", "--reverse-twins", "0.5",
            "--video-sigma-min", "0.7", "--video-sigma-min-share", "0.25", "--video-loss-cap", "4", "--video-sigma-shift", "6", "--text-loss-weight", "0.1", "--batch-size", "2", "--grad-accum", "3", "--warmup-steps", "1"]
    assert main(args) == 0
    config = json.loads((out / "pipeline" / "training_config.json").read_text())
    assert config["task_probs"] == [0.0, 1.0, 0.0] and config["text_swap"] == 0.2 and config["reverse_twins"] == 0.5
    assert config["video_sigma_min"] == 0.7 and config["video_sigma_min_share"] == 0.25 and config["batch_size"] == 2 and config["grad_accum"] == 3
    assert config["warmup_steps"] == 1 and config["video_loss_cap"] == 4.0
    assert config["video_sigma_shift"] == 6.0 and config["text_loss_weight"] == 0.1
    assert json.loads((out / "pipeline" / "training_summary.json").read_text())["examples_seen"] == 2 * 2 * 3
    records = [json.loads(line) for line in (out / LOG_FILE).read_text().splitlines()]
    assert records and all("caption/text" in r and not {"generate/video", "joint/text"} & r.keys() for r in records)


def test_uvigu_train_logs_the_twins_a_step_gained(tmp_path):
    def records(*extra):
        out = tmp_path / "-".join(extra or ("plain",))
        args = ["train", "--preset", "tiny", "--out", str(out), "--steps-recall", "3", "--steps-refine", "0",
                "--task-probs", "1", "0", "0", "--log-every", "1", *extra]
        assert main(args) == 0
        return [json.loads(line) for line in (out / LOG_FILE).read_text().splitlines()]

    with_twins = records("--reverse-twins", "1")
    assert len(with_twins) == 3 and all(r["twins"] >= 0 for r in with_twins) and sum(r["twins"] for r in with_twins) > 0
    assert not any("twins" in r for r in records())


def test_uvigu_train_position_features_from_scratch_and_on_resume(tmp_path):
    out = tmp_path / "run"
    base = ["train", "--preset", "tiny", "--out", str(out), "--steps-recall", "2", "--ckpt-every", "1"]
    assert main([*base, "--steps-refine", "1", "--position-features", "2"]) == 0
    assert main([*base, "--steps-refine", "2", "--resume"]) == 0  # keeps the run's features
    pipe = UniViGUPipeline.from_pretrained(out / "pipeline")
    assert pipe.transformer.config.position_features == 2
    assert pipe.transformer.pos_embedding.weight.abs().max() > 0  # trained from their zero start
    assert json.loads((out / "pipeline" / "training_config.json").read_text())["position_features"] == 2
    assert main(["train", "--preset", "tiny", "--out", str(tmp_path / "bad"), "--position-features", "-1"]) == 2


def test_uvigu_train_stop_after_checkpoints_says_how_to_continue_and_resume_finishes(tmp_path, capsys):
    out = tmp_path / "run"
    base = ["train", "--preset", "tiny", "--out", str(out), "--steps-recall", "1", "--steps-refine", "2"]
    assert main([*base, "--stop-after", "0"]) == 0
    printed = capsys.readouterr().out
    assert f"stopped at step 1 of 3; checkpoint: {out / 'checkpoints' / 'step_0000001'}" in printed
    assert f"uvigu train --resume --out {out}" in printed
    assert not (out / "pipeline").exists()
    assert main([*base, "--resume"]) == 0
    assert f"trained pipeline: {out / 'pipeline'}" in capsys.readouterr().out
    assert [json.loads(line)["step"] for line in (out / LOG_FILE).read_text().splitlines()] == [1, 2, 3]

    assert main([*base, "--stop-after", "-1"]) == 2
    assert "--stop-after must be 0 or more minutes, not -1" in capsys.readouterr().err
