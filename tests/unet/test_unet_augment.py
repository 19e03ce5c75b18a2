"""Augmentation: frames and truth get the same window, crop and symmetry; seeded; no aliasing."""

import pytest
import torch

from dancekit.errors import ParameterError
from dancekit.unet.augment import apply_symmetry, augment_pair, draw_augmentation


def coded_pair(n_frames=10, height=24, width=30):
    """Video whose value encodes (t, y, x) and truth encoding (y, x): every pixel is marked."""
    t, y, x = torch.meshgrid(torch.arange(n_frames), torch.arange(height), torch.arange(width), indexing="ij")
    video = (t * 10_000 + y * 100 + x).to(torch.float64)
    truth = (y[0] * 100 + x[0]).to(torch.float64)
    return video, truth


def test_frames_and_truth_get_the_same_window_crop_and_symmetry():
    video, truth = coded_pair()
    video_before, truth_before = video.clone(), truth.clone()
    generator = torch.Generator().manual_seed(0)
    seen = set()
    for _ in range(64):
        frames, target, aug = augment_pair(video, truth, context=4, tile=16, generator=generator)
        assert frames.shape == (4, 16, 16) and target.shape == (16, 16)
        time_code = torch.arange(aug.t0, aug.t0 + 4, dtype=torch.float64)[:, None, None] * 10_000
        assert torch.equal(frames - time_code, target.expand(4, 16, 16))  # same pixel everywhere
        crop = truth[aug.y0:aug.y0 + 16, aug.x0:aug.x0 + 16]
        assert torch.equal(target, apply_symmetry(crop, aug.k, aug.flip))
        seen.add((aug.k, aug.flip))
    assert len(seen) == 8  # all symmetries of the square occur
    assert torch.equal(video, video_before) and torch.equal(truth, truth_before)


@pytest.mark.parametrize("k, flip, expected", [
    (0, False, (2, 5)), (1, False, (7 - 5, 2)), (2, False, (7 - 2, 7 - 5)), (3, False, (5, 7 - 2)),
    (0, True, (2, 7 - 5)), (1, True, (7 - 5, 7 - 2)),
])
def test_a_marked_pixel_moves_as_the_rotation_says(k, flip, expected):
    # torch.rot90 turns counter-clockwise in (row, column) display: (r, c) -> (n-1-c, r)
    image = torch.zeros(8, 8)
    image[2, 5] = 1.0
    moved = apply_symmetry(image, k, flip)
    assert moved.sum() == 1.0 and moved[expected] == 1.0


def test_same_seed_same_sample_and_outputs_are_not_views():
    video, truth = coded_pair()
    a = augment_pair(video, truth, context=10, tile=24, generator=torch.Generator().manual_seed(9))
    b = augment_pair(video, truth, context=10, tile=24, generator=torch.Generator().manual_seed(9))
    assert a[2] == b[2] and torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    draws = {draw_augmentation(10, 24, 30, context=3, tile=8, generator=torch.Generator().manual_seed(s))
             for s in range(20)}
    assert len(draws) > 15
    a[0].fill_(-1.0)
    a[1].fill_(-1.0)
    assert video.min() >= 0 and truth.min() >= 0


def test_window_and_crop_cover_the_whole_range():
    generator = torch.Generator().manual_seed(1)
    draws = [draw_augmentation(5, 10, 12, context=3, tile=8, generator=generator) for _ in range(400)]
    assert {d.t0 for d in draws} == {0, 1, 2}
    assert {d.y0 for d in draws} == {0, 1, 2}
    assert {d.x0 for d in draws} == {0, 1, 2, 3, 4}


def test_augmentation_errors_name_the_allowed_range():
    video, truth = coded_pair(n_frames=5)
    g = torch.Generator().manual_seed(0)
    with pytest.raises(ParameterError, match=r"context must be an integer in \[1, 5\]"):
        augment_pair(video, truth, context=6, tile=8, generator=g)
    with pytest.raises(ParameterError, match=r"tile must be an integer in \[1, 24\] pixels, got 32"):
        augment_pair(video, truth, context=2, tile=32, generator=g)
    with pytest.raises(ParameterError, match=r"truth must be \(H, W\) = \(24, 30\)"):
        augment_pair(video, truth[:-1], context=2, tile=8, generator=g)
    with pytest.raises(ParameterError, match="generator must be a torch.Generator"):
        augment_pair(video, truth, context=2, tile=8, generator=0)


def test_big_endian_numpy_input_as_read_from_fits():
    video, truth = coded_pair()
    g1, g2 = torch.Generator().manual_seed(4), torch.Generator().manual_seed(4)
    frames, target, _ = augment_pair(video.numpy().astype(">f8"), truth.numpy().astype(">f8"),
                                     context=3, tile=8, generator=g1)
    expected = augment_pair(video, truth, context=3, tile=8, generator=g2)
    assert torch.equal(frames, expected[0]) and torch.equal(target, expected[1])
