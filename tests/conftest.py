import sys
from pathlib import Path

import pytest
import torch

# Tests import helpers that live beside them (e.g. reference_capture).
sys.path.insert(0, str(Path(__file__).parent))
# The fixtures were made with 2 threads; results do not depend on it beyond kernel noise.
torch.set_num_threads(max(1, min(2, torch.get_num_threads())))


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: runs the model on a reference fixture (seconds to a minute)")


@pytest.fixture(scope="module")
def one_thread():
    """Training tests on one torch thread: on a shared 2-core machine, two competing threads are
    many times slower than one."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
