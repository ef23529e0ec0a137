import pytest
import torch


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    # The tiny models gain nothing from a second thread, and on a shared 2-core machine OpenMP's
    # busy-waiting makes two threads over 10× slower (measured: 40 s vs 3 s for 40 tiny steps).
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
