"""
Distribution shifts applied to grayscale uint8 images.

Each shift maps a batch ``(N, H, W)`` uint8 array and a numpy ``Generator``
to a new array of the same shape and dtype; new shifts are registered with
:func:`register_shift`.
"""

from typing import Callable, Dict

import numpy as np
from scipy import ndimage

ShiftFn = Callable[[np.ndarray, np.random.Generator], np.ndarray]

SHIFTS: Dict[str, ShiftFn] = {}


def register_shift(name: str, fn: ShiftFn) -> ShiftFn:
    """Registers ``fn`` as the shift called ``name``; returns ``fn``."""
    SHIFTS[name] = fn

    return fn


def apply_shift(name: str, images: np.ndarray, rng=None) -> np.ndarray:
    """Returns ``images`` under the shift ``name``; ``images`` is unchanged."""
    if name not in SHIFTS:
        raise ValueError(
            "Unknown shift %r; available shifts are %s, or register one "
            "with register_shift()" % (name, sorted(SHIFTS))
        )

    rng = rng if rng is not None else np.random.default_rng(0)
    out = SHIFTS[name](np.asarray(images), rng)

    return np.ascontiguousarray(out, dtype=np.uint8)


def _clip(x):
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def invert(images, rng):
    return 255 - images


def blur(images, rng, sigma=1.5):
    return _clip(
        ndimage.gaussian_filter(
            images.astype(np.float32), sigma=(0, sigma, sigma)
        )
    )


def low_contrast(images, rng, factor=0.3):
    x = images.astype(np.float32)

    return _clip(128.0 + factor * (x - 128.0))


def occlusion(images, rng, size=12):
    out = images.copy()
    n, h, w = images.shape
    ys = rng.integers(0, h - size + 1, size=n)
    xs = rng.integers(0, w - size + 1, size=n)
    for i in range(n):
        out[i, ys[i] : ys[i] + size, xs[i] : xs[i] + size] = 0

    return out


def gaussian_noise(images, rng, std=60.0):
    noise = rng.normal(0.0, std, size=images.shape).astype(np.float32)

    return _clip(images.astype(np.float32) + noise)


for _fn in (invert, blur, low_contrast, occlusion, gaussian_noise):
    register_shift(_fn.__name__, _fn)
