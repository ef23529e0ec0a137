import json
from pathlib import Path

import numpy as np
import pytest
import torch

from uvigu import UniViGUPipeline
from uvigu.cli import main
from uvigu.models.expert import EXPERT_FOLDER, read_expert, write_expert
from uvigu.testing import tiny_pipeline

PROMPT = "a red circle moving right on a black background"


def weights(pipe):
    return {f"{part}.{k}": v.float() for part in ("transformer", "text_encoder")
            for k, v in getattr(pipe, part).state_dict().items()}


def test_an_expert_written_as_its_difference_reads_back_as_it_was(tmp_path):
    base, tuned = tiny_pipeline(seed=0), tiny_pipeline(seed=1)
    # a rank above every matrix's sides keeps every difference whole: back to float16's precision
    write_expert(base, tuned, tmp_path / "whole", boundary=0.9, rank=10_000)
    expert, boundary = read_expert(base, tmp_path / "whole")
    assert boundary == 0.9 and expert is not base
    for key, value in weights(tuned).items():
        torch.testing.assert_close(weights(expert)[key], value, rtol=0, atol=2e-3, msg=key)
    # a difference of rank 2 in one matrix, written in rank 2: that matrix back, in fewer numbers
    near = tiny_pipeline(seed=0)
    matrix = near.transformer.proj_out.weight
    low = torch.randn(matrix.shape[0], 2) @ torch.randn(2, matrix.shape[1])
    with torch.no_grad():
        matrix.add_(0.1 * low)
    write_expert(base, near, tmp_path / "low", boundary=0.99, rank=2)
    rebuilt, _ = read_expert(base, tmp_path / "low")
    torch.testing.assert_close(rebuilt.transformer.proj_out.weight, matrix, rtol=0, atol=2e-3)
    size = (tmp_path / "low" / "difference.safetensors").stat().st_size
    assert size < (tmp_path / "whole" / "difference.safetensors").stat().st_size / 2
    # the model it serves is left as it was
    for key, value in weights(tiny_pipeline(seed=0)).items():
        assert torch.equal(weights(base)[key], value), key
    with pytest.raises(ValueError, match="rank must be"):
        write_expert(base, tuned, tmp_path / "bad", boundary=0.99, rank=0)
    with pytest.raises(ValueError, match="noise level"):
        write_expert(base, tuned, tmp_path / "bad", boundary=0.0, rank=2)
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ValueError, match="would replace the expert's own"):
        write_expert(base, tuned, tmp_path / "bad", boundary=0.99, rank=2, records=[tmp_path / "config.json"])
    assert not (tmp_path / "bad.partial").exists()
    assert not (tmp_path / "bad").exists()


def test_a_folder_with_an_expert_loads_with_it_attached_and_keeps_it(tmp_path):
    base, tuned = tiny_pipeline(seed=0), tiny_pipeline(seed=1)
    base.save_pretrained(tmp_path / "model")
    plain = UniViGUPipeline.from_pretrained(tmp_path / "model")
    assert plain.high_noise_expert is None
    write_expert(base, tuned, tmp_path / "model" / EXPERT_FOLDER, boundary=0.9, rank=10_000)
    pipe = UniViGUPipeline.from_pretrained(tmp_path / "model")
    expert, boundary = pipe.high_noise_expert
    assert boundary == 0.9
    torch.testing.assert_close(weights(expert)["transformer.proj_out.weight"],
                               weights(tuned)["transformer.proj_out.weight"], rtol=0, atol=2e-3)
    # it makes the top of the noise: the clip is not the plain model's, and is the one the
    # expert attached by hand makes
    made = pipe.generate(PROMPT, seed=2, num_inference_steps=4).frames
    assert not np.array_equal(made, plain.generate(PROMPT, seed=2, num_inference_steps=4).frames)
    plain.use_high_noise_expert(expert, 0.9)
    assert np.array_equal(made, plain.generate(PROMPT, seed=2, num_inference_steps=4).frames)
    # saved with it; moved and cast with it
    pipe.save_pretrained(tmp_path / "copy")
    assert json.loads((tmp_path / "copy" / EXPERT_FOLDER / "config.json").read_text())["boundary"] == 0.9
    assert UniViGUPipeline.from_pretrained(tmp_path / "copy").high_noise_expert is not None
    pipe.to(torch.bfloat16)
    assert pipe.high_noise_expert[0].transformer.dtype == torch.bfloat16
    # a difference made for another model is refused
    other = UniViGUPipeline.from_pretrained(tmp_path / "model")
    other_folder = tmp_path / "other"
    write_expert(tiny_pipeline(seed=0, preset="tiny-latent"), tiny_pipeline(seed=1, preset="tiny-latent"),
                 other_folder, boundary=0.9, rank=4)
    with pytest.raises(ValueError, match="made for another model"):
        read_expert(other, other_folder)


def test_the_command_writes_an_expert_into_a_model_folder(tmp_path, capsys):
    tiny_pipeline(seed=0).save_pretrained(tmp_path / "model")
    tiny_pipeline(seed=1).save_pretrained(tmp_path / "tuned")
    (tmp_path / "tuned" / "training_config.json").write_text('{"video_sigma_min": 0.99}\n')  # as a run leaves it
    assert main(["expert", str(tmp_path / "tuned"), "--model", str(tmp_path / "model"), "--rank", "4"]) == 0
    assert "high-noise expert:" in capsys.readouterr().out
    config = json.loads((tmp_path / "model" / EXPERT_FOLDER / "config.json").read_text())
    assert config == {"boundary": 0.99, "rank": 4}
    # how the expert was made goes with it (what the tuned folder has of its run's records)
    made = tmp_path / "model" / EXPERT_FOLDER / "training_config.json"
    assert json.loads(made.read_text()) == {"video_sigma_min": 0.99}
    assert not (tmp_path / "model" / EXPERT_FOLDER / "training_summary.json").exists()
    assert UniViGUPipeline.from_pretrained(tmp_path / "model").high_noise_expert[1] == 0.99
    # one expert per folder; only into a pipeline folder
    assert main(["expert", str(tmp_path / "tuned"), "--model", str(tmp_path / "model")]) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(["expert", str(tmp_path / "tuned"), "--model", str(tmp_path / "nothing")]) == 2
    assert "not a pipeline folder" in capsys.readouterr().err
    assert not Path(tmp_path / "model" / (EXPERT_FOLDER + ".partial")).exists()


def test_no_expert_makes_the_commands_clip_with_the_model_alone(tmp_path, monkeypatch):
    from uvigu.cli import generate
    from uvigu.videoio import write_mp4

    base = tiny_pipeline(seed=0)
    base.save_pretrained(tmp_path / "model")
    write_expert(base, tiny_pipeline(seed=1), tmp_path / "model" / EXPERT_FOLDER, boundary=0.9, rank=10_000)
    written = []
    monkeypatch.setattr(generate, "write_outputs", lambda frames, *args: written.append(frames))
    common = ["--model", str(tmp_path / "model"), "--seed", "2", "--steps", "4", "--no-caption", "--dtype", "float32",
              "--out", str(tmp_path / "clip.mp4")]
    assert main(["generate", PROMPT, *common]) == 0
    assert main(["generate", PROMPT, *common, "--no-expert"]) == 0
    with_it, without_it = written
    assert np.array_equal(without_it, base.generate(PROMPT, seed=2, num_inference_steps=4).frames)  # the model alone
    assert not np.array_equal(with_it, without_it)
    write_mp4(with_it, tmp_path / "in.mp4", fps=8)
    edit = ["edit", str(tmp_path / "in.mp4"), PROMPT, *common, "--strength", "1"]
    assert main(edit) == 0 and main([*edit, "--no-expert"]) == 0
    assert not np.array_equal(written[2], written[3])  # from pure noise, the expert makes the first step
