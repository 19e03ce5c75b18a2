"""Training samples drawn from videos that stay on disk (Bialek et al. 2024 §2.2.2, §3.1).

A video is a ``VideoSource``: its shape and two readers, ``read_frames(start, stop)`` (frames
``start:stop`` in electrons, (n, H, W)) and ``read_truth()`` (the turbulence-free image, (H, W),
electrons per frame). ``dancekit.io.training_videos`` makes them from FITS files so that only
the frames of one window are in memory at a time; ``VideoSource.from_arrays`` wraps arrays.

Sampling is counter-based so that training can stop anywhere and resume exactly: the order of
the training videos in epoch ``e`` and the window, crop and symmetry of sample ``k`` of that epoch
come from child seeds ``SeedSequence(seed).spawn`` keyed by ``(e,)`` and ``(e, k)``, never from a
stream that has to be replayed. Epoch ``e`` visits every training video once in a random order
(the paper's epoch over its 40 000 videos), wrapping round when a batch asks for more.

Validation samples are fixed: the first ``context`` frames and the central ``tile`` square of each
validation video, unturned, so that every epoch is judged on the same pixels.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from dancekit.errors import InputError, ParameterError
from dancekit.unet.augment import Augmentation, apply_symmetry, draw_augmentation

ReadFrames = Callable[[int, int], np.ndarray]
ReadTruth = Callable[[], np.ndarray]


@dataclass(frozen=True)
class VideoSource:
    """One training video: (T, H, W) frames and their truth, both in electrons (per frame)."""

    name: str
    shape: tuple[int, int, int]  # (frames, rows, columns)
    read_frames: ReadFrames      # (start, stop) -> (stop - start, H, W) float32 electrons
    read_truth: ReadTruth        # () -> (H, W) float32 electrons per frame

    @classmethod
    def from_arrays(cls, name: str, frames: np.ndarray, truth: np.ndarray) -> "VideoSource":
        """A source held in memory (tests, benchmarks, data made on the fly)."""
        frames = np.asarray(frames, dtype=np.float32)
        truth = np.asarray(truth, dtype=np.float32)
        if frames.ndim != 3 or truth.shape != frames.shape[1:]:
            raise ParameterError(f"{name}: frames must be (T, H, W) and truth (H, W) alike, got "
                                 f"{frames.shape} and {truth.shape}")
        return cls(name, tuple(frames.shape), _ArrayFrames(frames), _ArrayTruth(truth))


class _ArrayFrames:  # classes rather than lambdas: sources must pickle for DataLoader workers
    def __init__(self, frames: np.ndarray):
        self.frames = frames

    def __call__(self, start: int, stop: int) -> np.ndarray:
        return self.frames[start:stop]


class _ArrayTruth:
    def __init__(self, truth: np.ndarray):
        self.truth = truth

    def __call__(self) -> np.ndarray:
        return self.truth


def check_sources(sources: list[VideoSource], context: int, tile: int, total_stride: int) -> None:
    """Refuse, before training starts, videos that cannot give a (context, tile, tile) sample."""
    if not (isinstance(context, int) and context >= 1):
        raise ParameterError(f"context must be a positive number of frames, got {context!r}", source="--context")
    if not (isinstance(tile, int) and tile >= total_stride and tile % total_stride == 0):
        raise ParameterError(
            f"tile must be a positive multiple of the network's total stride {total_stride} pixels, got {tile!r}",
            source="--tile",
        )
    for source in sources:
        n_frames, height, width = source.shape
        if n_frames < context:
            raise InputError(f"has {n_frames} frames, fewer than the context of {context} "
                             "(use a shorter --context or longer videos)", source=source.name)
        if min(height, width) < tile:
            raise InputError(f"frames are {height} x {width} pixels, smaller than the tile of {tile} "
                             "(use a smaller --tile)", source=source.name)


def child_seed(seed: int, *keys: int) -> int:
    """A 64-bit seed for the child stream ``keys`` of ``seed`` (``SeedSequence`` spawn keys)."""
    sequence = np.random.SeedSequence(int(seed), spawn_key=tuple(int(k) for k in keys))
    return int(sequence.generate_state(1, np.uint64)[0])


# spawn-key roots of the independent streams of one training run
ORDER_STREAM, SAMPLE_STREAM, SPLIT_STREAM, INIT_STREAM = 0, 1, 2, 3


def split_sources(sources: list[VideoSource], val_fraction: float, seed: int) -> tuple[list[VideoSource], list[VideoSource]]:
    """Training and validation videos: ``round(val_fraction N)`` videos (at least 1 when the
    fraction is > 0) drawn at random go to validation (the paper splits 90 / 10 by video)."""
    if not 0.0 <= val_fraction < 1.0:
        raise ParameterError(f"validation fraction must be in [0, 1), got {val_fraction}", source="--val-fraction")
    n_val = 0 if val_fraction == 0 else max(1, int(round(val_fraction * len(sources))))
    if n_val and len(sources) - n_val < 1:
        raise InputError(f"{len(sources)} video(s) cannot be split into training and validation sets; "
                         "give more videos or --val-fraction 0 (then the last epoch's model is kept)")
    order = np.random.default_rng(child_seed(seed, SPLIT_STREAM)).permutation(len(sources))
    val = sorted(order[:n_val].tolist())
    train = sorted(order[n_val:].tolist())
    return [sources[i] for i in train], [sources[i] for i in val]


class TrainingSamples(torch.utils.data.Dataset):
    """Augmented samples of epoch ``epoch``: item ``k`` -> (frames (context, tile, tile), truth
    (tile, tile)) in electrons, float32, read from disk on demand (DataLoader workers welcome)."""

    def __init__(self, sources: list[VideoSource], context: int, tile: int, seed: int):
        if not sources:
            raise InputError("no training videos")
        self.sources, self.context, self.tile, self.seed = list(sources), context, tile, int(seed)
        self.epoch = 0

    def order(self, epoch: int) -> np.ndarray:
        """The training videos in the order epoch ``epoch`` visits them."""
        return np.random.default_rng(child_seed(self.seed, ORDER_STREAM, epoch)).permutation(len(self.sources))

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)
        self._order = self.order(self.epoch)

    def __len__(self) -> int:
        return len(self.sources)

    def __getitem__(self, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        frames, truth, _ = self.sample(self.epoch, k)
        return frames, truth

    def sample(self, epoch: int, k: int) -> tuple[torch.Tensor, torch.Tensor, Augmentation]:
        """Sample ``k`` of epoch ``epoch`` (k may exceed the number of videos: it wraps round)."""
        order = self._order if epoch == self.epoch and hasattr(self, "_order") else self.order(epoch)
        source = self.sources[int(order[k % len(order)])]
        generator = torch.Generator().manual_seed(child_seed(self.seed, SAMPLE_STREAM, epoch, k))
        aug = draw_augmentation(*source.shape, context=self.context, tile=self.tile, generator=generator)
        frames, truth = read_window(source, aug.t0, aug.y0, aug.x0, self.context, self.tile)
        return apply_symmetry(frames, aug.k, aug.flip).contiguous(), apply_symmetry(truth, aug.k, aug.flip).contiguous(), aug


class ValidationSamples(torch.utils.data.Dataset):
    """The fixed validation sample of each video: first ``context`` frames, central tile."""

    def __init__(self, sources: list[VideoSource], context: int, tile: int):
        self.sources, self.context, self.tile = list(sources), context, tile

    def __len__(self) -> int:
        return len(self.sources)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        source = self.sources[i]
        _, height, width = source.shape
        return read_window(source, 0, (height - self.tile) // 2, (width - self.tile) // 2, self.context, self.tile)


def read_window(source: VideoSource, t0: int, y0: int, x0: int, context: int, tile: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Frames t0:t0+context and truth, cropped to rows y0:y0+tile and columns x0:x0+tile."""
    frames = np.asarray(source.read_frames(t0, t0 + context))
    truth = np.asarray(source.read_truth())
    if frames.shape[0] != context or frames.shape[1:] != truth.shape:
        raise InputError(f"read {frames.shape} frames and a {truth.shape} truth, expected {context} frames "
                         f"of {source.shape[1:]}", source=source.name)
    frames = frames[:, y0:y0 + tile, x0:x0 + tile]
    truth = truth[y0:y0 + tile, x0:x0 + tile]
    return (torch.from_numpy(np.array(frames, dtype=np.float32)),   # copies: never alias the reader's memory
            torch.from_numpy(np.array(truth, dtype=np.float32)))
