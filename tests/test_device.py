"""--device: auto falls back to the CPU; asking for an absent GPU is a clear user error."""

import pytest
import torch

from dancekit.device import resolve_device
from dancekit.errors import ParameterError


def test_auto_and_cpu():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    assert resolve_device("cpu").type == "cpu"


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is present")
def test_cuda_without_gpu_is_refused():
    with pytest.raises(ParameterError, match="CUDA was asked for but no GPU is available"):
        resolve_device("cuda")
    with pytest.raises(ParameterError, match="unknown device 'tpu'"):
        resolve_device("tpu")
