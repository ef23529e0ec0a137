from uvigu.training.progress import time_left


def test_time_left_at_the_recent_rate_in_words():
    assert time_left(2800, 0.512) == "about 1 h 31 min left"  # 5,469 s
    assert time_left(300, 0.5) == "about 10 min left"
    assert time_left(40, 2.0) == "about 20 s left"
    assert time_left(1, 1000.0) == "about 1 s left"
    assert time_left(0, 1.0) == time_left(10, 0.0) == ""  # done, or no rate yet


def test_a_training_log_line_says_the_step_of_how_many_and_the_time_left(tmp_path, caplog):
    from uvigu.training.config import get_train_preset
    from uvigu.training.trainer import train

    config = get_train_preset("tiny", out_dir=str(tmp_path), steps_recall=2, steps_refine=1, log_every=1)
    with caplog.at_level("INFO", logger="uvigu.training.trainer"):
        train(config)
    lines = [m for m in caplog.messages if m.startswith("step ")]
    assert [line.split(" ", 2)[1] for line in lines] == ["1/3", "2/3", "3/3"]
    assert all(" left" in line for line in lines[:2]) and " left" not in lines[2]  # nothing left at the end
