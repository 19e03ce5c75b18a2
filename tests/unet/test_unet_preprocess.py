"""Training and inference share one pixel path; its inverses do what their docstrings say."""

import pytest
import torch

from dancekit.unet.preprocess import network_input, network_output_to_electrons, network_target


def test_input_removes_the_sky_level_per_window():
    gen = torch.Generator().manual_seed(0)
    sky = torch.tensor([20.0, 300.0])
    windows = torch.poisson(sky[:, None, None, None].expand(2, 6, 64, 64).contiguous(), generator=gen)
    windows[:, :, 10:13, 10:13] += 5000
    x, level = network_input(windows)
    assert level.tolist() == pytest.approx(sky.tolist(), rel=0.02)
    assert x.shape == windows.shape and float(x.min()) >= 2 * (3 / 8) ** 0.5 - 1e-6


def test_input_computed_in_place_is_the_same_and_leaves_no_copy():
    gen = torch.Generator().manual_seed(1)
    windows = torch.poisson(torch.full((3, 5, 32, 32), 40.0), generator=gen)
    windows[1, :, 4:7, 4:7] += 900
    x, level = network_input(windows)
    buffer = windows.clone()
    x_in_place, level_in_place = network_input(buffer, overwrite=True)
    assert x_in_place.data_ptr() == buffer.data_ptr()
    assert torch.equal(x_in_place, x) and torch.equal(level_in_place, level)
    assert not torch.equal(windows, buffer)  # the caller's batch was used as the output's memory


def test_algebraic_inverse_undoes_the_target_exactly_and_unbiased_adds_a_quarter():
    truth = torch.tensor([[[0.0, 1.0, 100.0, 1e4]]])
    target = network_target(truth)
    assert network_output_to_electrons(target, "algebraic")[0, 0].tolist() == pytest.approx(truth[0, 0].tolist(), abs=1e-2)
    unbiased = network_output_to_electrons(target, "unbiased")[0, 0]
    assert float(unbiased[0]) == pytest.approx(0.0, abs=1e-6)
    assert float(unbiased[2]) - 100 == pytest.approx(0.26, abs=0.01)
    with pytest.raises(ValueError, match="unknown inverse 'exact'"):
        network_output_to_electrons(target, "exact")
