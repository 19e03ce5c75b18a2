"""One torch thread per test process: on 2 shared cores, torch's default of one thread per core
spends most of its time waiting on the other busy core (measured: 68 s vs 7 s for this folder)."""

import pytest
import torch


@pytest.fixture(autouse=True)
def one_torch_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
