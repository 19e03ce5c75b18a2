"""The running temporal mean equals numpy's nanmean, whatever the chunking."""

import numpy as np
import pytest

from dancekit.errors import InputError
from dancekit.sky.stack import RunningMean


def test_chunked_mean_equals_nanmean():
    rng = np.random.default_rng(3)
    cube = rng.normal(100, 10, (23, 9, 7)).astype(np.float32)
    cube[4] = np.nan
    cube[7, 2, 3] = np.nan
    stack = RunningMean((9, 7))
    for start in range(0, 23, 5):
        stack.add(cube[start : start + 5])
    np.testing.assert_allclose(stack.result(), np.nanmean(cube, axis=0), rtol=1e-6)
    assert stack.frames == 23 and stack.empty_frames == 1


def test_all_nan_and_shape_mismatch():
    stack = RunningMean((2, 2))
    stack.add(np.full((3, 2, 2), np.nan))
    with pytest.raises(InputError, match="all 3 frames are NaN"):
        stack.result()
    with pytest.raises(InputError, match=r"frame shape \(3, 2\) differs from the first frame's \(2, 2\)"):
        stack.add(np.zeros((1, 3, 2)))
