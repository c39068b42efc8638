"""Region similarity J and boundary F-measure of one frame, as davis2017-evaluation computes them.

Every referring-VOS benchmark this project reports (Ref-YouTube-VOS's server, MeViS's
``eval_mevis.py``, Ref-DAVIS17 through ``davis2017/metrics.py``) scores frames with the same two
functions, ``db_eval_iou`` and ``f_measure``. The functions here re-implement their documented
behaviour, including the quirks, so that the numbers are bit-identical (float64 throughout, the
same operation order):

- J of two empty masks is 1 (nothing to find, nothing found).
- The boundary map (``_seg2bmap``, D. Martin's BSDS code) marks a pixel when it differs from its
  east, south or south-east neighbour; the last row only looks east, the last column only looks
  south, and the bottom-right pixel is never a boundary. So a mask that covers the whole frame has
  no boundary at all, and F(full, empty) is 1 while J(full, empty) is 0.
- The tolerance is ``bound_th`` pixels when ``bound_th >= 1``, else ``ceil(bound_th * diagonal)``
  with the diagonal ``sqrt(H^2 + W^2)`` computed as ``np.linalg.norm((H, W))``.
- Boundaries are dilated with ``skimage.morphology.disk(bound_pix)`` through ``cv2.dilate``:
  correlation with the kernel anchored at ``(kw // 2, kh // 2)``, pixels outside the frame count
  as background.
- Precision/recall: both boundaries empty -> 1 and 1; only the prediction's empty -> P=1, R=0;
  only the ground truth's empty -> P=0, R=1; F = 2PR / (P + R), 0 when P + R == 0.

Masks may be bool or numeric; any nonzero value (NaN included) is foreground, as ``astype(bool)``
decides in the reference.
"""
from __future__ import annotations

import numpy as np

__all__ = ["boundary_f_measure", "boundary_map", "boundary_tolerance", "dilate", "disk", "region_similarity"]


def _frame(mask: np.ndarray, name: str) -> np.ndarray:
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"{name} must be one 2-D frame [H, W], got shape {mask.shape}; score videos frame by frame")
    if mask.size == 0:
        raise ValueError(f"{name} has no pixels (shape {mask.shape}); pass a frame with H, W >= 1")
    return mask


def _same_shape(gt: np.ndarray, pred: np.ndarray, void: np.ndarray | None) -> None:
    if gt.shape != pred.shape:
        raise ValueError(
            f"ground truth {gt.shape} and prediction {pred.shape} differ in shape; "
            "resize the prediction to the annotation's size before scoring"
        )
    if void is not None and void.shape != gt.shape:
        raise ValueError(f"void mask {void.shape} does not match the ground truth {gt.shape}")


def region_similarity(gt: np.ndarray, pred: np.ndarray, *, void: np.ndarray | None = None) -> float:
    """J: intersection over union of two ``[H, W]`` masks, ignoring ``void`` pixels.

    1.0 when the union (outside ``void``) is empty, as ``db_eval_iou`` does.
    """
    gt, pred = _frame(gt, "gt"), _frame(pred, "pred")
    void_arr = None if void is None else _frame(void, "void")
    _same_shape(gt, pred, void_arr)
    gt_b, pred_b = gt.astype(bool), pred.astype(bool)
    keep = np.ones_like(gt_b) if void_arr is None else ~void_arr.astype(bool)
    inter = np.sum(gt_b & pred_b & keep)
    union = np.sum((gt_b | pred_b) & keep)
    if union == 0:
        return 1.0
    # int64 / int64 is a float64 true division: the same rounding as the reference's ``inters / union``.
    return float(inter / union)


def boundary_map(seg: np.ndarray, width: int | None = None, height: int | None = None) -> np.ndarray:
    """One-pixel-wide boundary of a ``[H, W]`` mask, ``_seg2bmap`` of davis2017-evaluation.

    Returns bool ``[H, W]`` when ``width``/``height`` are left out (or equal the mask's size). With
    another size the reference scatters the boundary into a float64 ``[height, width]`` map with
    ``row = 1 + floor(y - 1 + height / H)`` and ``col = 1 + floor(x - 1 + width / H)`` (sic: the
    column also divides by H); we keep that mapping so maps match, and raise ``ValueError`` where
    the reference would fail (an index outside the map, or its size check: mis-parenthesised as
    ``width > (W | height) > ...``, it only fires when ``width > (W | height)``).
    """
    seg = _frame(seg, "seg").astype(bool)
    h, w = seg.shape
    width = w if width is None else width
    height = h if height is None else height
    if not (isinstance(width, (int, np.integer)) and isinstance(height, (int, np.integer))):
        raise ValueError(f"width and height must be integers, got {width!r} and {height!r}")
    if height <= 0 or width <= 0:
        raise ValueError(f"boundary map size must be positive, got {width}x{height}")
    if width > (w | height):
        raise ValueError(f"can't convert a {w}x{h} mask to a {width}x{height} boundary map; ask for at most {w}x{h}")

    east = np.zeros_like(seg)
    south = np.zeros_like(seg)
    south_east = np.zeros_like(seg)
    east[:, :-1] = seg[:, 1:]
    south[:-1, :] = seg[1:, :]
    south_east[:-1, :-1] = seg[1:, 1:]
    bmap = (seg ^ east) | (seg ^ south) | (seg ^ south_east)
    # The frame's last row and column have no south / east neighbour inside the image; the
    # reference compares them along the edge only, and leaves the corner out.
    bmap[-1, :] = seg[-1, :] ^ east[-1, :]
    bmap[:, -1] = seg[:, -1] ^ south[:, -1]
    bmap[-1, -1] = False
    if width == w and height == h:
        return bmap

    ys, xs = np.nonzero(bmap)
    rows = 1 + np.floor((ys - 1) + height / h).astype(np.int64)
    cols = 1 + np.floor((xs - 1) + width / h).astype(np.int64)
    if rows.size and (rows.max() >= height or cols.max() >= width):
        raise ValueError(
            f"the reference's resize of a {w}x{h} boundary to {width}x{height} indexes outside the map "
            "(it raises IndexError); use the mask's own size"
        )
    out = np.zeros((height, width))
    out[rows, cols] = 1
    return out


def boundary_tolerance(shape: tuple[int, int], bound_th: float = 0.008) -> float:
    """Radius in pixels of the boundary match: ``bound_th`` if >= 1, else ``ceil(bound_th * diagonal)``."""
    if not (bound_th >= 0):  # also rejects NaN
        raise ValueError(f"bound_th must be >= 0 (a fraction of the diagonal, or pixels if >= 1), got {bound_th}")
    if bound_th >= 1:
        return bound_th
    # np.linalg.norm on the shape tuple, as the reference: sqrt of the exact integer dot product.
    return float(np.ceil(bound_th * np.linalg.norm(shape)))


def disk(radius: float) -> np.ndarray:
    """bool ``[n, n]`` disk of ``skimage.morphology.disk(radius)``: offsets from ``arange(-r, r + 1)``
    with ``x^2 + y^2 <= r^2``. A non-integer radius gives an even-sized, off-centre kernel there too."""
    if not (radius >= 0):
        raise ValueError(f"disk radius must be >= 0, got {radius}")
    offsets = np.arange(-radius, radius + 1)
    x, y = np.meshgrid(offsets, offsets)
    return (x**2 + y**2) <= radius**2


def dilate(mask: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Binary dilation ``[H, W] -> [H, W]`` as ``cv2.dilate`` with default anchor and border.

    ``out[y, x] = any(mask[y + ky - kh // 2, x + kx - kw // 2] for kernel[ky, kx])``, with pixels
    outside the frame treated as 0.
    """
    mask = np.asarray(mask).astype(bool)
    kernel = np.asarray(kernel).astype(bool)
    if mask.ndim != 2:
        raise ValueError(f"mask must be 2-D [H, W], got shape {mask.shape}")
    if kernel.ndim != 2 or kernel.size == 0:
        raise ValueError(f"kernel must be a non-empty 2-D array, got shape {kernel.shape}")
    out = np.zeros(mask.shape, dtype=bool)
    rows, cols = np.nonzero(mask.any(axis=1))[0], np.nonzero(mask.any(axis=0))[0]
    if rows.size == 0:
        return out
    # Boundaries are sparse: only the box around them, widened by the kernel, can change. Pixels
    # outside the box are 0 like pixels outside the frame, so the cropped result is exact.
    margin = max(kernel.shape)
    y0, y1 = max(int(rows[0]) - margin, 0), min(int(rows[-1]) + margin + 1, mask.shape[0])
    x0, x1 = max(int(cols[0]) - margin, 0), min(int(cols[-1]) + margin + 1, mask.shape[1])
    out[y0:y1, x0:x1] = _dilate_full(mask[y0:y1, x0:x1], kernel)
    return out


def _dilate_full(mask: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    # Each kernel row is one or more horizontal runs; a run is an OR over a window of columns,
    # read off a row-wise cumulative sum, then shifted vertically. Cost O(kh * H * W).
    h, w = mask.shape
    kh, kw = kernel.shape
    anchor_y, anchor_x = kh // 2, kw // 2
    pad = kw + 1
    # counts[:, pad + c] = number of mask pixels in columns [0, c) of the row, for any c, with
    # c < 0 reading 0 and c > w reading the row total: window sums become plain slices.
    counts = np.zeros((h, w + 1 + 2 * pad), dtype=np.int32)
    np.cumsum(mask, axis=1, out=counts[:, pad + 1 : pad + 1 + w])
    counts[:, pad + 1 + w :] = counts[:, pad + w : pad + w + 1]
    windows: dict[tuple[int, int], np.ndarray] = {}
    out = np.zeros((h, w), dtype=bool)
    for ky in range(kh):
        row = kernel[ky]
        if not row.any():
            continue
        edges = np.diff(np.concatenate(([0], row.astype(np.int8), [0])))
        starts, stops = np.nonzero(edges == 1)[0], np.nonzero(edges == -1)[0]
        dy = ky - anchor_y
        if abs(dy) >= h:
            continue
        for start, stop in zip(starts, stops):
            lo, hi = int(start) - anchor_x, int(stop) - anchor_x  # columns x+lo .. x+hi-1
            window = windows.get((lo, hi))
            if window is None:
                window = counts[:, pad + hi : pad + hi + w] > counts[:, pad + lo : pad + lo + w]
                windows[(lo, hi)] = window
            if dy >= 0:
                out[: h - dy] |= window[dy:]
            else:
                out[-dy:] |= window[: h + dy]
    return out


def boundary_f_measure(
    gt: np.ndarray, pred: np.ndarray, bound_th: float = 0.008, *, void: np.ndarray | None = None
) -> float:
    """F: boundary F-measure of two ``[H, W]`` masks, ``f_measure(pred, gt)`` of davis2017-evaluation.

    ``void`` pixels are removed from both masks before their boundaries are taken (the reference's
    only use of them). See the module docstring for the conventions.
    """
    gt, pred = _frame(gt, "gt"), _frame(pred, "pred")
    void_arr = None if void is None else _frame(void, "void")
    _same_shape(gt, pred, void_arr)
    radius = boundary_tolerance(pred.shape, bound_th)
    if void_arr is not None:
        # Multiplying (not and-ing) keeps the reference's treatment of odd values, e.g. NaN * 0.
        keep = np.logical_not(void_arr.astype(bool))
        pred, gt = pred * keep, gt * keep
    pred_boundary = boundary_map(pred)
    gt_boundary = boundary_map(gt)
    kernel = disk(radius)
    pred_dilated = dilate(pred_boundary, kernel)
    gt_dilated = dilate(gt_boundary, kernel)

    n_pred = int(pred_boundary.sum())
    n_gt = int(gt_boundary.sum())
    if n_pred == 0 and n_gt == 0:
        precision, recall = 1.0, 1.0
    elif n_pred == 0:
        precision, recall = 1.0, 0.0
    elif n_gt == 0:
        precision, recall = 0.0, 1.0
    else:
        precision = int(np.sum(pred_boundary & gt_dilated)) / float(n_pred)
        recall = int(np.sum(gt_boundary & pred_dilated)) / float(n_gt)
    if precision + recall == 0:
        return 0.0
    return float(2 * precision * recall / (precision + recall))

