"""Measure and repair gaps in a drawing's outline.

Colour bleeds out of a garment exactly where its outline has a gap: seen from the paper
outside, the garment's interior is reachable through the gap. `outline_closure` measures that
leak the way a bucket fill would; `find_gaps` / `close_gaps` find stroke ends that almost meet
and draw the missing bit of line (the UI will offer this to shoppers).

Edge maps are uint8 HxW with 0 = ink and 255 = paper. Ink is 8-connected and paper
4-connected (the usual digital-topology pairing), so a one-pixel diagonal line does close a
region, as it does for a bucket fill.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import dijkstra

from sketch2fashion.imaging.edges import REFERENCE_SIZE

Point = tuple[int, int]
Gap = tuple[Point, Point]

INK_LEVEL = 128
"""Pixels darker than this are ink."""


def ink_of(edges: np.ndarray) -> np.ndarray:
    """Boolean ink mask of an edge map."""
    return edges < INK_LEVEL


def reachable_from_border(paper: np.ndarray) -> np.ndarray:
    """Paper pixels 4-connected to the image border: where a fill from outside goes."""
    count, labels = cv2.connectedComponents(paper.astype(np.uint8), connectivity=4)
    border = np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]])
    seeds = np.zeros(count, dtype=bool)
    seeds[np.unique(border)] = True
    seeds[0] = False  # label 0 is ink
    return seeds[labels]


def outline_closure(edges: np.ndarray, mask: np.ndarray, *, margin: int | None = None) -> float:
    """Fraction of the garment's interior that a fill from the image border cannot reach.

    1.0 means the outline is closed; a gap lets the fill leak in and the score drops towards
    0 (unless inner lines fence part of the interior off). The interior is the mask eroded by
    `margin` pixels (default 2 at 256 px) so a drawn outline a pixel off the mask does not
    count as a leak. An empty interior has nothing to leak: 1.0.
    """
    if edges.shape[:2] != mask.shape[:2]:
        raise ValueError(f"edges {edges.shape} and mask {mask.shape} differ in size")
    if margin is None:
        margin = max(1, int(round(2 * min(mask.shape[:2]) / REFERENCE_SIZE)))
    pen = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * margin + 1, 2 * margin + 1))
    interior = cv2.erode((mask > 0).astype(np.uint8), pen) > 0
    if not interior.any():
        return 1.0
    leaked = reachable_from_border(~ink_of(edges))
    return 1.0 - float(np.count_nonzero(leaked & interior)) / float(np.count_nonzero(interior))


def _neighbours(image: np.ndarray) -> list[np.ndarray]:
    """The 8 neighbours of every pixel of a 1-padded image, clockwise from north (P2..P9)."""
    return [image[:-2, 1:-1], image[:-2, 2:], image[1:-1, 2:], image[2:, 2:],
            image[2:, 1:-1], image[2:, :-2], image[1:-1, :-2], image[:-2, :-2]]


def _transitions(neighbours: list[np.ndarray]) -> np.ndarray:
    """Number of paper->ink steps walking once round the neighbours (the crossing number)."""
    ring = neighbours + neighbours[:1]
    return sum(((a == 0) & (b == 1)).astype(np.uint8) for a, b in zip(ring[:-1], ring[1:]))


def _thinning_tables() -> tuple[np.ndarray, np.ndarray]:
    """Zhang-Suen's delete rule for both sub-passes, for each of the 256 neighbourhoods (bit k of
    the code = neighbour P(k+2), clockwise from north, as `_neighbours` orders them)."""
    codes = np.arange(256)
    p = [(codes >> k) & 1 for k in range(8)]
    count = sum(p)
    ring = p + p[:1]
    crossings = sum((a == 0) & (b == 1) for a, b in zip(ring[:-1], ring[1:]))
    p2, p4, p6, p8 = p[0], p[2], p[4], p[6]
    common = (count >= 2) & (count <= 6) & (crossings == 1)
    first = common & (p2 * p4 * p6 == 0) & (p4 * p6 * p8 == 0)
    second = common & (p2 * p4 * p8 == 0) & (p2 * p6 * p8 == 0)
    return first.astype(np.uint8), second.astype(np.uint8)


_DELETE_FIRST, _DELETE_SECOND = _thinning_tables()


def _neighbour_codes(image: np.ndarray) -> np.ndarray:
    """Every inner pixel's 8-neighbour code (uint8; bit k = `_neighbours(image)[k]`) of a
    1-padded 0/1 uint8 image."""
    planes = _neighbours(image)
    codes = planes[0].copy()
    for bit, plane in enumerate(planes[1:], start=1):
        codes |= plane << bit
    return codes


def skeleton(ink: np.ndarray) -> np.ndarray:
    """One-pixel-wide centre lines of the ink (Zhang-Suen thinning).

    Stroke ends are only well defined on a skeleton: a thick stroke has no single end pixel.
    Each sub-pass packs every pixel's 8 neighbours into one code and looks the delete rule up
    in a 256-entry table, over the ink's bounding box only: the same pixels as testing the
    rule's conditions plane by plane, several times cheaper (every served drawing is thinned).
    """
    out = np.zeros(ink.shape, bool)
    if not ink.any():
        return out
    x, y, w, h = cv2.boundingRect(ink.astype(np.uint8))
    image = np.pad(ink[y:y + h, x:x + w].astype(np.uint8), 1)
    while True:
        removed = 0
        for table in (_DELETE_FIRST, _DELETE_SECOND):
            delete = cv2.LUT(_neighbour_codes(image), table) & image[1:-1, 1:-1]
            removed += cv2.countNonZero(delete)
            image[1:-1, 1:-1][delete > 0] = 0
        if removed == 0:
            out[y:y + h, x:x + w] = image[1:-1, 1:-1] > 0
            return out


def stroke_ends(ink: np.ndarray) -> np.ndarray:
    """(N, 2) array of (x, y) stroke end points: skeleton pixels with one run of neighbours."""
    return _ends_of(skeleton(ink))


def _close_pairs(points: np.ndarray, max_distance: float) -> list[tuple[float, int, int]]:
    """(distance, i, j) for point pairs closer than max_distance, nearest first (chunked O(N^2))."""
    pairs: list[tuple[float, int, int]] = []
    pts = points.astype(np.float32)
    for start in range(0, len(pts), 1024):
        block = pts[start:start + 1024]
        dist = np.sqrt(((block[:, None, :] - pts[None, :, :]) ** 2).sum(axis=2))
        rows, cols = np.nonzero(dist < max_distance)
        keep = cols > rows + start
        pairs += [(float(dist[r, c]), int(r + start), int(c))
                  for r, c in zip(rows[keep], cols[keep])]
    return sorted(pairs)


def _window(ink: np.ndarray, points: list[Point], margin: int) -> tuple[np.ndarray, int, int]:
    """8-connected component labels of the ink in a window around `points`, and its origin."""
    h, w = ink.shape
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    x0, x1 = max(0, min(xs) - margin), min(w, max(xs) + margin + 1)
    y0, y1 = max(0, min(ys) - margin), min(h, max(ys) + margin + 1)
    _, labels = cv2.connectedComponents(ink[y0:y1, x0:x1].astype(np.uint8), connectivity=8)
    return labels, x0, y0


def _tip(labels: np.ndarray, x0: int, y0: int, end: Point, reach: float) -> np.ndarray:
    """(N, 2) window coordinates (x, y) of the stroke's own ink within `reach` of its end."""
    ex, ey = end[0] - x0, end[1] - y0
    ys, xs = np.nonzero(labels == labels[ey, ex])
    near = np.hypot(xs - ex, ys - ey) <= reach
    return np.stack([xs[near], ys[near]], axis=1)


def _nearest(a: np.ndarray, b: np.ndarray) -> tuple[float, int]:
    """Paper pixels between the closest pixels of two sets, and the index of b's closest one."""
    dist = np.sqrt(((a[:, None, :] - b[None, :, :]).astype(np.float32) ** 2).sum(axis=2))
    flat = int(np.argmin(dist))
    return float(dist.flat[flat]) - 1.0, flat % dist.shape[1]


def _end_to_end_gap(ink: np.ndarray, a: Point, b: Point, margin: int,
                    reach: float) -> float | None:
    """Paper between two stroke tips, or None when the ends are joined a short way round."""
    labels, x0, y0 = _window(ink, [a, b], margin)
    if labels[a[1] - y0, a[0] - x0] == labels[b[1] - y0, b[0] - x0]:
        return None
    gap, _ = _nearest(_tip(labels, x0, y0, a, reach), _tip(labels, x0, y0, b, reach))
    return gap


def _end_to_stroke_gap(ink: np.ndarray, end: Point, margin: int,
                       reach: float) -> tuple[float, Point] | None:
    """Paper between a stroke tip and the nearest other stroke in its window, and that point."""
    labels, x0, y0 = _window(ink, [end], margin)
    own = labels[end[1] - y0, end[0] - x0]
    ys, xs = np.nonzero((labels != 0) & (labels != own))
    if len(xs) == 0:
        return None
    others = np.stack([xs, ys], axis=1)
    gap, index = _nearest(_tip(labels, x0, y0, end, reach), others)
    return gap, (int(others[index, 0] + x0), int(others[index, 1] + y0))


def find_gaps(edges: np.ndarray, max_gap: float, *, to_strokes: bool = True) -> list[Gap]:
    """Gaps in the drawing: ((x1, y1), (x2, y2)) pairs with less than `max_gap` paper between.

    First pairs of stroke ends that are not already joined a short way round the ink (so the
    two ends of one short dash, or a bend, are not "gaps"); each end is used once, nearest
    pairs first. Then, with `to_strokes`, ends left over are joined to the nearest other
    stroke (a line that stops just short of another: a "T" gap). The points are skeleton
    points (stroke centre lines), so a line between them joins the strokes; the gap itself is
    measured between the strokes' ink tips.
    """
    ink = ink_of(edges)
    ends = stroke_ends(ink)
    if len(ends) == 0:
        return []
    reach = stroke_width(ink) + 1.0  # a skeleton end sits up to about a pen width inside its tip
    margin = int(np.ceil(max_gap + 2 * reach))
    used = np.zeros(len(ends), dtype=bool)
    gaps: list[Gap] = []
    for _, i, j in _close_pairs(ends, max_gap + 2 * reach + 1):
        if used[i] or used[j]:
            continue
        a, b = (int(ends[i, 0]), int(ends[i, 1])), (int(ends[j, 0]), int(ends[j, 1]))
        gap = _end_to_end_gap(ink, a, b, margin, reach)
        if gap is not None and gap < max_gap:
            used[i] = used[j] = True
            gaps.append((a, b))
    if to_strokes:
        for i in np.nonzero(~used)[0]:
            end = (int(ends[i, 0]), int(ends[i, 1]))
            found = _end_to_stroke_gap(ink, end, margin, reach)
            if found is not None and found[0] < max_gap:
                gaps.append((end, found[1]))
    return gaps


def stroke_width(ink: np.ndarray) -> int:
    """Typical pen width of the drawing: twice the median distance from centre line to paper."""
    if not ink.any():
        return 1
    return _width_along(ink, skeleton(ink))


def _width_along(ink: np.ndarray, skel: np.ndarray) -> int:
    distance = cv2.distanceTransform(ink.astype(np.uint8), cv2.DIST_L2, 3)
    return max(1, int(round(2 * float(np.median(distance[skel])) - 1)))


def close_gaps(edges: np.ndarray, max_gap: float, *, to_strokes: bool = True) -> np.ndarray:
    """A copy of `edges` with a line of the drawing's own pen width across every gap found."""
    out = edges.copy()
    gaps = find_gaps(edges, max_gap, to_strokes=to_strokes)
    if gaps:
        width = stroke_width(ink_of(edges))
        for a, b in gaps:
            cv2.line(out, a, b, color=0, thickness=width, lineType=cv2.LINE_8)
    return out


# --- doodles: wide openings and where they remain -------------------------------------------

OPEN_GAP = 0.45
"""A doodle's opening (a hem, a waistband left out) up to this share of the drawing's size is closed."""
T_GAP = 0.1
"""A stroke stopping this close (share of the drawing's size) to another stroke is joined to it."""
ROUND_TRIP = 3.0
"""Two stroke ends are an opening only when the way round along the ink is this many times longer."""


@dataclass(frozen=True)
class ClosedOutline:
    """A drawing with its openings drawn shut (`edges`), the stroke ends nothing was joined to
    (`open_ends`, N x 2 x y) and the drawing's pen width in pixels (`pen`)."""

    edges: np.ndarray
    open_ends: np.ndarray
    pen: int


def ink_extent(ink: np.ndarray) -> float:
    """The drawing's size: its ink's bounding box's longer side (pixels), 0 without ink."""
    ys, xs = np.nonzero(ink)
    if len(xs) == 0:
        return 0.0
    return float(max(xs.max() - xs.min(), ys.max() - ys.min()) + 1)


def _along_ink(skel: np.ndarray, sources: np.ndarray, limit: float) -> tuple[np.ndarray, np.ndarray]:
    """Distances along the skeleton (8-connected, diagonal steps sqrt 2) from each source pixel
    ((x, y) rows) to every skeleton pixel, inf beyond `limit`; and the skeleton's (x, y) pixels."""
    ys, xs = np.nonzero(skel)
    index = np.full(skel.shape, -1, np.int64)
    index[ys, xs] = np.arange(len(xs))
    padded = np.pad(index, 1, constant_values=-1)
    rows, cols, weights = [], [], []
    for dy, dx, cost in ((0, 1, 1.0), (1, 0, 1.0), (1, 1, np.sqrt(2.0)), (1, -1, np.sqrt(2.0))):
        other = padded[ys + 1 + dy, xs + 1 + dx]
        linked = other >= 0
        rows.append(np.arange(len(xs))[linked])
        cols.append(other[linked])
        weights.append(np.full(int(linked.sum()), cost))
    graph = csr_matrix((np.concatenate(weights), (np.concatenate(rows), np.concatenate(cols))),
                       shape=(len(xs), len(xs)))
    distances = dijkstra(graph, directed=False, indices=index[sources[:, 1], sources[:, 0]], limit=limit)
    return np.atleast_2d(distances), np.stack([xs, ys], axis=1)


def doodle_gaps(edges: np.ndarray, *, open_gap: float = OPEN_GAP, t_gap: float = T_GAP,
                skel: np.ndarray | None = None) -> tuple[list[Gap], np.ndarray]:
    """Openings of a quick drawing, and the stroke ends left open after joining them.

    Returns (joins, open_ends): `joins` are ((x1, y1), (x2, y2)) lines that close the outline;
    `open_ends` (N x 2, x y) are stroke ends nothing was joined to. Two stroke ends are an
    opening when they are closer than `open_gap` x the drawing's size while the way round
    along the ink is much longer (ROUND_TRIP x): the two sides of an undrawn hem, however
    wide, but not the ends of a short dash or a tight "C". Ends left over are joined to the
    nearest other stroke within `t_gap` x the size (a line stopping short of another).
    """
    ink = ink_of(edges)
    extent = ink_extent(ink)
    if extent == 0:
        return [], np.zeros((0, 2), np.int64)
    skel = skeleton(ink) if skel is None else skel
    ends = _ends_of(skel)
    if len(ends) == 0:
        return [], ends
    max_gap, max_t = open_gap * extent, t_gap * extent
    along, points = _along_ink(skel, ends, ROUND_TRIP * max(max_gap, max_t))
    end_nodes = np.array([int(np.flatnonzero((points[:, 0] == x) & (points[:, 1] == y))[0]) for x, y in ends])
    used = np.zeros(len(ends), dtype=bool)
    joins: list[Gap] = []
    for distance, i, j in _close_pairs(ends, max_gap):
        if used[i] or used[j] or distance < 2.0:
            continue
        if along[i, end_nodes[j]] > ROUND_TRIP * distance:  # inf when not connected at all
            used[i] = used[j] = True
            joins.append(((int(ends[i, 0]), int(ends[i, 1])), (int(ends[j, 0]), int(ends[j, 1]))))
    for i in np.nonzero(~used)[0]:
        dist = np.hypot(points[:, 0] - ends[i, 0], points[:, 1] - ends[i, 1])
        others = (along[i] > ROUND_TRIP * np.maximum(dist, 1.0)) & (dist < max_t)
        if others.any():
            k = int(np.flatnonzero(others)[np.argmin(dist[others])])
            used[i] = True
            joins.append(((int(ends[i, 0]), int(ends[i, 1])), (int(points[k, 0]), int(points[k, 1]))))
    return joins, ends[~used]


def _ends_of(skel: np.ndarray) -> np.ndarray:
    """(N, 2) (x, y) ends of a skeleton: pixels with one run of neighbours."""
    p = _neighbours(np.pad(skel.astype(np.uint8), 1))
    count = sum(p)
    ends = skel & (_transitions(p) == 1) & (count >= 1) & (count <= 2)
    ys, xs = np.nonzero(ends)
    return np.stack([xs, ys], axis=1)


def close_outline(edges: np.ndarray, *, open_gap: float = OPEN_GAP, t_gap: float = T_GAP) -> ClosedOutline:
    """The drawing with its openings drawn shut in its own pen width (see `doodle_gaps`).

    The one preprocessing step training and serving both apply before the hint fill, so a
    shopper's open hem is closed for the model exactly as it was in training.
    """
    ink = ink_of(edges)
    if not ink.any():
        return ClosedOutline(edges, np.zeros((0, 2), np.int64), 1)
    skel = skeleton(ink)
    width = _width_along(ink, skel)
    joins, open_ends = doodle_gaps(edges, open_gap=open_gap, t_gap=t_gap, skel=skel)
    if not joins:
        return ClosedOutline(edges, open_ends, width)
    out = edges.copy()
    for a, b in joins:
        cv2.line(out, a, b, color=0, thickness=width, lineType=cv2.LINE_8)
    return ClosedOutline(out, open_ends, width)
