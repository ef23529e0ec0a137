import pytest
import torch


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip_gpu = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)


@pytest.fixture(autouse=True)
def cpu_without_native_bf16(monkeypatch):
    """The model commands' and the studio's ``--dtype auto`` run as on a CPU without native
    bfloat16 — in float32, the precision the tests compute their reference outputs in — whatever
    CPU runs the tests; the tests of ``auto`` itself say which CPU they mean."""
    from uvigu import inputs

    monkeypatch.setattr(inputs, "cpu_computes_bf16", lambda: False)
