from pathlib import Path

import pytest

import app


def test_flags_fall_back_to_environment_variables(monkeypatch, tmp_path):
    monkeypatch.setenv("UVIGU_MODEL", str(tmp_path / "model"))
    monkeypatch.setenv("UVIGU_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("GRADIO_SERVER_NAME", "0.0.0.0")
    monkeypatch.setenv("GRADIO_SERVER_PORT", "7861")
    monkeypatch.setenv("GRADIO_SHARE", "true")
    args = app.parse_args([])
    assert (args.model, args.data_dir, args.host, args.port, args.share) == (
        tmp_path / "model", tmp_path / "data", "0.0.0.0", 7861, True)
    assert app.parse_args(["--port", "9000", "--model", "m"]).port == 9000


def test_defaults_serve_the_shipped_model_locally(monkeypatch):
    for name in ("UVIGU_MODEL", "UVIGU_DATA_DIR", "GRADIO_SERVER_NAME", "GRADIO_SERVER_PORT", "GRADIO_SHARE"):
        monkeypatch.delenv(name, raising=False)
    args = app.parse_args([])
    assert args.model == app.DEFAULT_MODEL and app.DEFAULT_MODEL.parts[-2:] == ("assets", "uvigu-shapes")
    assert (args.host, args.port, args.share) == ("127.0.0.1", 7860, False)


def test_a_missing_model_fails_with_how_to_get_it(tmp_path):
    with pytest.raises(SystemExit, match=r"(?s)No Uni-ViGU checkpoint.*--model"):
        app.check_model(tmp_path / "nothing")
    (tmp_path / "model_index.json").write_text("{}")
    app.check_model(tmp_path)


def test_without_spaces_the_gpu_decorator_is_the_identity(monkeypatch):
    import sys
    monkeypatch.setitem(sys.modules, "spaces", None)  # import fails
    fn = lambda: 1  # noqa: E731
    assert app.gpu_decorator()(fn) is fn


def test_app_reads_no_tensors_or_torch_in_ui():
    for path in Path("ui").glob("*.py"):
        source = path.read_text()
        assert "import torch" not in source and "numpy" not in source, path
