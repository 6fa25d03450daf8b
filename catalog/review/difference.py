"""Where two pictures of a group differ, for the review page's compare view: the other picture is
aligned onto this one (ORB keypoints and a RANSAC similarity transform, so a crop, a resize, a border
or a slight turn line up), then three kinds of region are found on each side:

- ``missing``: part of this picture the other does not show (a crop's margin);
- ``added``: part of this picture the other does not have (a caption bar, a frame, a screenshot's bars);
- ``changed``: where both show the scene but it differs (an overlay, a caption over the picture, an edit).

A change over the whole picture (brightness, contrast, grayscale) is said in words, not highlighted:
the comparison is made after matching the two pictures' brightness and contrast.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

#: The long edge the pictures are compared at.
WORK = 512
#: A region smaller than this share of the picture is noise (JPEG blocks, an edge off by a pixel).
SMALLEST = 0.002
#: Keypoint matches a transform needs before it is trusted (else the pictures are stretched onto
#: each other, as a resize would make them).
INLIERS = 12


@dataclass
class Region:
    kind: str  # missing, added, changed
    box: tuple[float, float, float, float]  # left, top, right, bottom, as fractions of the picture

    def as_dict(self) -> dict[str, object]:
        return {"kind": self.kind, "box": [round(v, 4) for v in self.box]}


@dataclass
class Difference:
    #: Regions on each picture: ``first`` of the first picture, ``second`` of the second.
    first: list[Region] = field(default_factory=list)
    second: list[Region] = field(default_factory=list)
    #: What a person reads: how the second differs from the first.
    said: list[str] = field(default_factory=list)
    aligned: bool = False  # whether keypoints aligned the pictures (else they were stretched)

    def as_dict(self) -> dict[str, object]:
        return {
            "first": [r.as_dict() for r in self.first],
            "second": [r.as_dict() for r in self.second],
            "said": self.said,
            "aligned": self.aligned,
        }


def difference(first: np.ndarray, second: np.ndarray) -> Difference:
    """How ``second`` (an RGB array) differs from ``first``, each shown at its own size."""
    from skimage.transform import AffineTransform, warp

    a, b = _small(_three(first)), _small(_three(second))
    ga, gb = _gray(a), _gray(b)
    to_first = _align(ga, gb)  # maps points of the second onto the first
    aligned = to_first is not None
    if to_first is None:  # stretched onto each other
        scale = (ga.shape[1] / gb.shape[1], ga.shape[0] / gb.shape[0])
        to_first = AffineTransform(scale=scale)
    ones_b = np.ones(gb.shape)
    # The second in the first's frame (and where it lands), and the first in the second's.
    b_on_a = warp(gb, to_first.inverse, output_shape=ga.shape, order=1, cval=0.0)
    seen_a = warp(ones_b, to_first.inverse, output_shape=ga.shape, order=0, cval=0.0) > 0.5
    seen_b = warp(np.ones(ga.shape), to_first, output_shape=gb.shape, order=0, cval=0.0) > 0.5
    changed_a = _changed(ga, b_on_a, _shrunk(seen_a))
    changed_b = warp(changed_a.astype(float), to_first, output_shape=gb.shape, order=0, cval=0.0) > 0.5
    result = Difference(aligned=aligned)
    result.first = _margins(~seen_a, "missing") + _regions(changed_a, "changed")
    result.second = _margins(~seen_b, "added") + _regions(changed_b, "changed")
    result.said = _said(a, b, seen_a, seen_b, changed_a, to_first if aligned else None)
    return result


def _three(pixels: np.ndarray) -> np.ndarray:
    """Any picture array as three channels: gray repeated, an alpha channel dropped."""
    if pixels.ndim == 2:
        return np.repeat(pixels[:, :, None], 3, axis=2)
    if pixels.shape[2] == 1:
        return np.repeat(pixels, 3, axis=2)
    return pixels[:, :, :3]


def _small(rgb: np.ndarray) -> np.ndarray:
    from skimage.transform import resize

    height, width = rgb.shape[:2]
    factor = WORK / max(height, width)
    if factor >= 1:
        return rgb.astype(np.float64) / 255.0
    shape = (max(8, round(height * factor)), max(8, round(width * factor)))
    return resize(rgb, shape, anti_aliasing=True, preserve_range=True) / 255.0  # type: ignore[no-any-return]


def _gray(rgb: np.ndarray) -> np.ndarray:
    return rgb @ np.array([0.299, 0.587, 0.114])  # type: ignore[no-any-return]


def _align(ga: np.ndarray, gb: np.ndarray):  # type: ignore[no-untyped-def]
    """The similarity transform taking the second's points onto the first's, or None."""
    from skimage.feature import ORB, match_descriptors
    from skimage.measure import ransac
    from skimage.transform import SimilarityTransform

    found = []
    for gray in (ga, gb):
        orb = ORB(n_keypoints=600, fast_threshold=0.05)
        try:
            orb.detect_and_extract(gray)
        except (RuntimeError, ValueError):  # too plain a picture for keypoints
            return None
        found.append((orb.keypoints, orb.descriptors))
    (ka, da), (kb, db) = found
    if len(ka) < INLIERS or len(kb) < INLIERS:
        return None
    matches = match_descriptors(da, db, cross_check=True, max_ratio=0.85)
    if len(matches) < INLIERS:
        return None
    src = kb[matches[:, 1]][:, ::-1]  # (row, col) -> (x, y)
    dst = ka[matches[:, 0]][:, ::-1]
    rng = np.random.default_rng(0)  # the same answer each time it is asked
    model, inliers = ransac(
        (src, dst), SimilarityTransform, min_samples=3, residual_threshold=2.0, max_trials=1000, rng=rng
    )
    if model is None or inliers is None or inliers.sum() < INLIERS:
        return None
    return model


def _shrunk(mask: np.ndarray) -> np.ndarray:
    """A mask without its edge: the warped picture's border is blurred, not different."""
    from scipy.ndimage import binary_erosion

    return binary_erosion(mask, iterations=3)  # type: ignore[no-any-return]


def _changed(ga: np.ndarray, gb: np.ndarray, both: np.ndarray) -> np.ndarray:
    """Where two aligned gray pictures differ, inside ``both``, after matching brightness and contrast."""
    from scipy.ndimage import binary_closing, binary_opening, gaussian_filter

    if both.sum() < 64:
        return np.zeros_like(both)
    sa, sb = gaussian_filter(ga, 1.5), gaussian_filter(gb, 1.5)
    za = (sa - sa[both].mean()) / (sa[both].std() + 1e-6)
    zb = (sb - sb[both].mean()) / (sb[both].std() + 1e-6)
    differs = (np.abs(za - zb) > 0.9) & both
    differs = binary_opening(differs, iterations=2)
    return binary_closing(differs, iterations=4) & both  # type: ignore[no-any-return]


def _margins(mask: np.ndarray, kind: str) -> list[Region]:
    """A mask of margins (a crop's, a border's, a bar's) as the strips along each side it covers, then
    whatever else it holds."""
    height, width = mask.shape
    rows, cols = mask.mean(axis=1) >= 0.9, mask.mean(axis=0) >= 0.9
    top = int(np.argmin(rows)) if not rows.all() else height
    bottom = int(np.argmin(rows[::-1])) if not rows.all() else 0
    left = int(np.argmin(cols)) if not cols.all() else width
    right = int(np.argmin(cols[::-1])) if not cols.all() else 0
    strips = []
    for size, box in (
        (top, (0.0, 0.0, 1.0, top / height)),
        (bottom, (0.0, 1 - bottom / height, 1.0, 1.0)),
        (left, (0.0, 0.0, left / width, 1.0)),
        (right, (1 - right / width, 0.0, 1.0, 1.0)),
    ):
        if size >= 2:
            strips.append(Region(kind, box))
    rest = mask.copy()
    rest[:top], rest[height - bottom :], rest[:, :left], rest[:, width - right :] = False, False, False, False
    return strips + _regions(rest, kind)


def _regions(mask: np.ndarray, kind: str) -> list[Region]:
    """The mask's connected parts worth showing, largest first, as boxes in fractions."""
    from scipy.ndimage import find_objects, label

    labels, count = label(mask)
    if not count:
        return []
    sizes = np.bincount(labels.ravel())[1:]
    height, width = mask.shape
    smallest = SMALLEST * mask.size
    found = []
    for number, where in enumerate(find_objects(labels), 1):
        if where is None or sizes[number - 1] < smallest:
            continue
        rows, cols = where
        box = (cols.start / width, rows.start / height, cols.stop / width, rows.stop / height)
        found.append((sizes[number - 1], Region(kind, box)))
    found.sort(key=lambda item: -item[0])
    return [region for _, region in found[:12]]


def _said(a, b, seen_a, seen_b, changed_a, transform) -> list[str]:  # type: ignore[no-untyped-def]
    """How the second differs from the first, in words."""
    said = []
    missing, added = 1 - seen_a.mean(), 1 - seen_b.mean()
    if missing > 0.01:
        said.append(f"{missing:.0%} of the first is not in the second (cropped or covered)")
    if added > 0.01:
        said.append(f"{added:.0%} of the second is not in the first (a border, a bar, a caption)")
    if transform is not None:
        turn = float(np.degrees(transform.rotation))
        if abs(turn) >= 0.5:
            said.append(f"the second is turned by {turn:+.1f}°")
    if changed_a.any():
        said.append(f"{changed_a.sum() / max(1, seen_a.sum()):.0%} of the picture they share differs")
    if not (seen_a.any() and seen_b.any()):
        return said or ["no difference found at this size"]
    mean_a, mean_b = _gray(a)[seen_a].mean(), _gray(b)[seen_b].mean()
    if mean_b - mean_a > 0.06:
        said.append("the second is brighter")
    elif mean_a - mean_b > 0.06:
        said.append("the second is darker")
    if _colourless(b) and not _colourless(a):
        said.append("the second is in grayscale")
    return said or ["no difference found at this size"]


def _colourless(rgb: np.ndarray) -> bool:
    return float(np.abs(rgb - rgb.mean(axis=2, keepdims=True)).mean()) < 0.01
