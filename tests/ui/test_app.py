import socket
from pathlib import Path

import pytest

import app


def free_port() -> int:
    """A port nothing listens on now, so a test's studio does not depend on what else runs here."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_flags_fall_back_to_environment_variables(monkeypatch, tmp_path):
    monkeypatch.setenv("UVIGU_MODEL", str(tmp_path / "model"))
    monkeypatch.setenv("UVIGU_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("GRADIO_SERVER_NAME", "0.0.0.0")
    monkeypatch.setenv("GRADIO_SERVER_PORT", "7861")
    monkeypatch.setenv("GRADIO_SHARE", "true")
    monkeypatch.setenv("UVIGU_DEVICE", "cuda:1")
    monkeypatch.setenv("UVIGU_DTYPE", "bfloat16")
    args = app.parse_args([])
    assert (args.model, args.data_dir, args.host, args.port, args.share, args.device, args.dtype) == (
        tmp_path / "model", tmp_path / "data", "0.0.0.0", 7861, True, "cuda:1", "bfloat16")
    assert app.parse_args(["--port", "9000", "--model", "m"]).port == 9000


def test_defaults_serve_the_shipped_model_locally(monkeypatch):
    for name in ("UVIGU_MODEL", "UVIGU_DATA_DIR", "GRADIO_SERVER_NAME", "GRADIO_SERVER_PORT", "GRADIO_SHARE",
                 "UVIGU_DEVICE", "UVIGU_DTYPE"):
        monkeypatch.delenv(name, raising=False)
    args = app.parse_args([])
    assert args.model == app.DEFAULT_MODEL and app.DEFAULT_MODEL.parts[-2:] == ("assets", "uvigu-shapes")
    assert (args.host, args.port, args.share, args.device, args.dtype) == ("127.0.0.1", 7860, False, "auto", "auto")


def test_a_missing_model_fails_with_how_to_get_it(tmp_path):
    with pytest.raises(SystemExit, match=r"(?s)No Uni-ViGU model at .*nothing.*--model"):
        app.check_model(tmp_path / "nothing")
    (tmp_path / "step_0000500").mkdir()
    (tmp_path / "step_0000500" / "state.json").write_text("{}")
    app.check_model(tmp_path / "step_0000500")  # a training checkpoint
    (tmp_path / "model_index.json").write_text("{}")
    app.check_model(tmp_path)


def test_the_studio_serves_a_training_checkpoint(monkeypatch, tmp_path):
    """A run's checkpoint, as the CLI's model commands take it: the studio serves its EMA weights."""
    import ui
    from uvigu.training.checkpoint import checkpoint_dir
    from uvigu.training.config import get_train_preset
    from uvigu.training.export import load_checkpoint_pipeline
    from uvigu.training.trainer import train

    config = get_train_preset("tiny", out_dir=str(tmp_path / "run"), steps_recall=1, steps_refine=1, ckpt_every=1)
    train(config)
    step = checkpoint_dir(tmp_path / "run", 1)
    served = []

    class Demo:
        def launch(self, **kwargs):
            served.append(kwargs)

    monkeypatch.setattr(ui, "build_demo", lambda studio, gpu=None: served.append(studio) or Demo())
    # in the checkpoint's own precision, to compare weight for weight (the default may pick bfloat16)
    app.main(["--model", str(step), "--device", "cpu", "--dtype", "float32", "--data-dir", str(tmp_path / "data"),
              "--port", str(free_port())])
    studio, _ = served
    studio.close()
    expected = load_checkpoint_pipeline(step).transformer.state_dict()
    for key, value in studio.pipe.transformer.state_dict().items():
        assert value.equal(expected[key]), key


def test_a_gpu_that_is_not_there_stops_the_app_before_the_model_loads(monkeypatch):
    import torch

    from uvigu import UniViGUPipeline

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(UniViGUPipeline, "from_pretrained", lambda *a, **k: pytest.fail("the model was loaded"))
    with pytest.raises(SystemExit, match="--device: device 'cuda' asks for a GPU, but this torch sees none"):
        app.main(["--device", "cuda"])


def test_the_dtype_flag_serves_the_denoiser_in_bfloat16(monkeypatch, tmp_path):
    import torch

    import ui
    from uvigu import UniViGUPipeline
    from uvigu.testing import tiny_pipeline

    served = []

    class Demo:
        def launch(self, **kwargs):
            served.append(kwargs)

    threads_at_load = []
    monkeypatch.setattr(UniViGUPipeline, "from_pretrained",
                        lambda *a, **k: threads_at_load.append(torch.get_num_threads()) or tiny_pipeline())
    monkeypatch.setattr(ui, "build_demo", lambda studio, gpu=None: served.append(studio) or Demo())
    monkeypatch.setattr(app, "check_model", lambda path: None)
    port, threads = free_port(), torch.get_num_threads()
    app.main(["--dtype", "bf16", "--device", "cpu", "--data-dir", str(tmp_path), "--port", str(port)])
    studio, launched = served
    studio.close()
    assert studio.pipe.transformer.dtype == torch.bfloat16 and launched["server_port"] == port
    # loaded on one torch thread (no thread pool left on this thread to slow the studio's worker), then put back
    assert threads_at_load == [1] and torch.get_num_threads() == threads
    monkeypatch.setattr(UniViGUPipeline, "from_pretrained", lambda *a, **k: pytest.fail("the model was loaded"))
    with pytest.raises(SystemExit, match="--dtype: dtype must be float32, bfloat16 .* or auto"):
        app.main(["--dtype", "half", "--data-dir", str(tmp_path)])


@pytest.mark.parametrize("native, dtype", [(True, "bfloat16"), (False, "float32")])
def test_by_default_the_studio_serves_in_bfloat16_where_the_cpu_computes_it(monkeypatch, tmp_path, native, dtype):
    import torch

    import ui
    from uvigu import UniViGUPipeline, inputs
    from uvigu.testing import tiny_pipeline

    served = []

    class Demo:
        def launch(self, **kwargs):
            served.append(kwargs)

    monkeypatch.delenv("UVIGU_DTYPE", raising=False)
    monkeypatch.setattr(inputs, "cpu_computes_bf16", lambda: native)
    monkeypatch.setattr(UniViGUPipeline, "from_pretrained", lambda *a, **k: tiny_pipeline())
    monkeypatch.setattr(ui, "build_demo", lambda studio, gpu=None: served.append(studio) or Demo())
    monkeypatch.setattr(app, "check_model", lambda path: None)
    app.main(["--device", "cpu", "--data-dir", str(tmp_path), "--port", str(free_port())])
    studio, _ = served
    studio.close()
    assert studio.pipe.transformer.dtype == getattr(torch, dtype)


def test_a_bad_port_stops_at_parsing_naming_the_flag_and_variable(monkeypatch, capsys):
    for bad in ("abc", "0", "70000"):
        monkeypatch.setenv("GRADIO_SERVER_PORT", bad)
        with pytest.raises(SystemExit):
            app.parse_args([])
        assert f"a port is a whole number from 1 to 65535, got '{bad}' (from --port or GRADIO_SERVER_PORT)" in (
            capsys.readouterr().err)
    assert app.parse_args(["--port", "8080"]).port == 8080


def test_threads_are_a_whole_number_from_1_or_auto(monkeypatch, capsys):
    monkeypatch.delenv("UVIGU_THREADS", raising=False)
    assert app.parse_args([]).threads is None and app.parse_args(["--threads", "AUTO"]).threads is None
    assert app.parse_args(["--threads", "1"]).threads == 1
    monkeypatch.setenv("UVIGU_THREADS", "3")
    assert app.parse_args([]).threads == 3
    for bad in ("0", "-2", "1.5", "many"):
        with pytest.raises(SystemExit):
            app.parse_args(["--threads", bad])
        assert f"threads is a whole number from 1, or auto, got '{bad}' (from --threads or UVIGU_THREADS)" in (
            capsys.readouterr().err)


def test_the_studio_runs_its_model_on_the_threads_asked_for(monkeypatch, tmp_path):
    import torch

    import ui
    from uvigu import UniViGUPipeline
    from uvigu.testing import tiny_pipeline

    served = []

    class Demo:
        def launch(self, **kwargs):
            pass

    monkeypatch.setattr(UniViGUPipeline, "from_pretrained", lambda *a, **k: tiny_pipeline())
    monkeypatch.setattr(ui, "build_demo", lambda studio, gpu=None: served.append(studio) or Demo())
    monkeypatch.setattr(app, "check_model", lambda path: None)
    threads = torch.get_num_threads()
    try:
        app.main(["--threads", "1", "--device", "cpu", "--data-dir", str(tmp_path), "--port", str(free_port())])
        studio = served[0]
        try:  # the worker thread that runs every take
            assert studio.jobs.submit("visitor", lambda job: torch.get_num_threads()).result() == 1
        finally:
            studio.close()
    finally:
        torch.set_num_threads(threads)


def test_a_keeping_time_that_would_delete_every_session_stops_at_parsing(monkeypatch, capsys):
    for bad in ("0", "-3", "nan", "soon"):
        monkeypatch.setenv("UVIGU_SESSION_MAX_AGE_DAYS", bad)
        with pytest.raises(SystemExit):
            app.parse_args([])
        assert (f"sessions are kept a number of days above 0 (inf: for ever), got '{bad}' (from "
                "--session-max-age-days or UVIGU_SESSION_MAX_AGE_DAYS)") in capsys.readouterr().err
    monkeypatch.setenv("UVIGU_SESSION_MAX_AGE_DAYS", "inf")
    assert app.parse_args([]).session_max_age_days == float("inf")
    assert app.parse_args(["--session-max-age-days", "0.5"]).session_max_age_days == 0.5


def test_a_data_dir_that_cannot_be_written_stops_before_the_model_loads(monkeypatch, tmp_path):
    from uvigu import UniViGUPipeline

    monkeypatch.setattr(UniViGUPipeline, "from_pretrained", lambda *a, **k: pytest.fail("the model was loaded"))
    (tmp_path / "a-file").write_text("not a folder")
    with pytest.raises(SystemExit, match=r"--data-dir: cannot keep sessions in .*a-file/data \(Not a directory\); "
                       r"choose a folder this user can write, with --data-dir or UVIGU_DATA_DIR"):
        app.main(["--device", "cpu", "--data-dir", str(tmp_path / "a-file" / "data"), "--port", str(free_port())])
    app.check_data_dir(tmp_path / "new" / "data")  # a folder that is not there yet is made
    assert (tmp_path / "new" / "data").is_dir() and not any((tmp_path / "new" / "data").iterdir())


def test_a_port_in_use_stops_before_the_model_loads(monkeypatch, tmp_path):
    from uvigu import UniViGUPipeline

    monkeypatch.setattr(UniViGUPipeline, "from_pretrained", lambda *a, **k: pytest.fail("the model was loaded"))
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        with pytest.raises(SystemExit, match=f"--port: port {port} is in use .* pass another port with --port or "
                           "GRADIO_SERVER_PORT"):
            app.main(["--device", "cpu", "--data-dir", str(tmp_path), "--port", str(port)])
        with pytest.raises(SystemExit, match="--port: port .* is in use"):  # all addresses include this one
            app.check_port("0.0.0.0", port)
    app.check_port("127.0.0.1", port)  # free again once the other server stops
    with pytest.raises(SystemExit, match=r"--host: cannot listen on 'nosuchhost\.invalid'"):
        app.check_port("nosuchhost.invalid", port)


def test_zero_gpu_is_read_from_the_space_environment(monkeypatch):
    monkeypatch.delenv("SPACES_ZERO_GPU", raising=False)
    assert not app.on_zero_gpu()
    monkeypatch.setenv("SPACES_ZERO_GPU", "true")
    assert app.on_zero_gpu()


def test_without_spaces_the_gpu_decorator_is_the_identity(monkeypatch):
    import sys
    monkeypatch.setitem(sys.modules, "spaces", None)  # import fails
    fn = lambda: 1  # noqa: E731
    assert app.gpu_decorator()(fn) is fn


def test_app_reads_no_tensors_or_torch_in_ui():
    for path in Path("ui").glob("*.py"):
        source = path.read_text()
        assert "import torch" not in source and "numpy" not in source, path
