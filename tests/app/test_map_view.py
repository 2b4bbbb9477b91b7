"""The map view on its own: rasterised points, picking, lasso and rectangle selection,
zoom into thumbnails."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QPoint, Qt

from photoatlas.app.map_view import MapView, disk_offsets, points_in_polygon
from photoatlas.app.thumbnails import ThumbnailStore


def make_view(qtbot, xy: np.ndarray, colors: np.ndarray | None = None) -> MapView:
    view = MapView(ThumbnailStore())
    qtbot.addWidget(view)
    view.resize(400, 300)
    view.show()
    qtbot.waitExposed(view)
    n = len(xy)
    colors = colors if colors is not None else np.full(n, 0xFFFF0000, np.uint32)
    view.set_points(xy, colors, np.arange(n), np.array([f"/p/{i}.jpg" for i in range(n)]), [])
    return view


def test_points_in_polygon_matches_the_even_odd_rule() -> None:
    square = np.array([[0, 0], [2, 0], [2, 2], [0, 2]], float)
    pts = np.array([[1, 1], [3, 1], [-0.5, 1], [1.9, 0.1], [1, 2.5]])
    assert points_in_polygon(pts, square).tolist() == [True, False, False, True, False]
    # A concave "U": its notch is outside.
    u = np.array([[0, 0], [3, 0], [3, 3], [2, 3], [2, 1], [1, 1], [1, 3], [0, 3]], float)
    assert points_in_polygon(np.array([[1.5, 2], [0.5, 2], [2.5, 2]]), u).tolist() == \
        [False, True, True]


def test_disk_offsets_are_symmetric_and_grow() -> None:
    small, big = disk_offsets(1), disk_offsets(3)
    assert len(small) < len(big)
    assert {tuple(o) for o in small} == {tuple(-o) for o in small}


def test_points_are_drawn_in_their_colour_where_they_are(qtbot) -> None:
    xy = np.array([[0, 0], [10, 10], [10, 0]], np.float32)
    colors = np.array([0xFFFF0000, 0xFF00FF00, 0xFF0000FF], np.uint32)
    view = make_view(qtbot, xy, colors)
    image = view.render_points()
    for (x, y), color in zip(view.to_screen(xy), colors, strict=True):
        assert image.pixel(int(x), int(y)) == int(color)
    corner = image.pixel(1, 1)
    assert corner not in {int(c) for c in colors}


def test_click_picks_the_nearest_point_and_empty_space_clears(qtbot) -> None:
    xy = np.random.default_rng(0).normal(size=(2000, 2)).astype(np.float32)
    view = make_view(qtbot, xy)
    picked: list[tuple[list[int], str]] = []
    view.selection_requested.connect(lambda rows, mode: picked.append((list(rows), mode)))
    x, y = view.to_screen(xy[123:124])[0]
    qtbot.mouseClick(view, Qt.MouseButton.LeftButton, pos=QPoint(round(x), round(y)))
    row = picked[-1][0][0]
    assert np.linalg.norm(view.to_screen(xy[row:row + 1])[0] - [x, y]) < 1.5
    qtbot.mouseClick(view, Qt.MouseButton.LeftButton, pos=QPoint(2, 2))
    assert picked[-1] == ([], "replace")


def test_rectangle_and_lasso_select_what_they_enclose(qtbot) -> None:
    grid = np.stack(np.meshgrid(np.arange(10), np.arange(10)), -1).reshape(-1, 2)
    view = make_view(qtbot, grid.astype(np.float32))
    chosen: list[np.ndarray] = []
    view.selection_requested.connect(lambda rows, mode: chosen.append(rows))
    # Rectangle around the data square [2.5, 5.5] x [2.5, 5.5]: 3 x 3 points.
    view.set_mode("rect")
    a, b = view.to_screen(np.array([[2.5, 5.5], [5.5, 2.5]]))
    qtbot.mousePress(view, Qt.MouseButton.LeftButton, pos=QPoint(*a.astype(int)))
    qtbot.mouseMove(view, QPoint(*((a + b) / 2).astype(int)))
    qtbot.mouseMove(view, QPoint(*b.astype(int)))
    qtbot.mouseRelease(view, Qt.MouseButton.LeftButton, pos=QPoint(*b.astype(int)))
    got = {tuple(grid[r]) for r in chosen[-1]}
    assert got == {(x, y) for x in (3, 4, 5) for y in (3, 4, 5)}
    # Lasso: a triangle around (0,0), (0,3), (3,0) takes the points under the diagonal.
    view.set_mode("lasso")
    corners = view.to_screen(np.array([[-0.5, -0.5], [-0.5, 3.6], [3.6, -0.5]]))
    path = [corners[0], corners[1], corners[2], corners[0]]
    qtbot.mousePress(view, Qt.MouseButton.LeftButton, pos=QPoint(*path[0].astype(int)))
    for start, end in zip(path, path[1:], strict=False):
        for t in np.linspace(0, 1, 12)[1:]:
            qtbot.mouseMove(view, QPoint(*(start + t * (end - start)).astype(int)))
    qtbot.mouseRelease(view, Qt.MouseButton.LeftButton, pos=QPoint(*path[-1].astype(int)))
    got = {tuple(grid[r]) for r in chosen[-1]}
    assert got == {(x, y) for x in range(4) for y in range(4) if x + y <= 3}


def test_zooming_in_turns_points_into_thumbnails(qtbot) -> None:
    xy = np.random.default_rng(1).uniform(0, 100, (5000, 2)).astype(np.float32)
    view = make_view(qtbot, xy)
    view.render_points()
    assert not view.thumbnail_mode()
    for _ in range(8):
        view.zoom(1.5)
    view.render_points()
    assert view.thumbnail_mode()
    assert 0 < len(view.visible_rows()) <= 250


def test_points_on_and_beyond_every_edge_draw_without_wrapping(qtbot) -> None:
    xy = np.array([[0, 0], [10, 10]], np.float32)
    view = make_view(qtbot, xy, np.array([0xFF00FF00, 0xFF00FF00], np.uint32))
    view.set_selection(np.array([0, 1]), 0)
    for dx, dy in ((0, 0), (2, 2), (-2, -2), (2, -2), (-2, 2), (1.5, 0), (0, 1.5)):
        view._center = np.array([5.0 + 5 * dx, 5.0 + 5 * dy])
        image = view.render_points()  # IndexError here if a footprint left the canvas
        assert (image.width(), image.height()) == (view.width(), view.height())


def _screen_box(view: MapView, xy: np.ndarray) -> np.ndarray:
    """(2, 2) lowest and highest screen position of ``xy``."""
    px = view.to_screen(xy)
    return np.array([px.min(0), px.max(0)])


def test_fit_shows_the_bulk_and_the_far_photos_stay_reachable(qtbot) -> None:
    rng = np.random.default_rng(1)
    bulk = rng.normal(size=(980, 2))
    far = rng.normal(size=(20, 2)) * 0.2 + [40.0, 25.0]  # a cluster UMAP set far apart
    view = make_view(qtbot, np.concatenate([bulk, far]).astype(np.float32))
    (x0, y0), (x1, y1) = _screen_box(view, bulk)
    # The bulk fills the view (within its margin) and is centred, not a quarter to one side.
    assert max((x1 - x0) / view.width(), (y1 - y0) / view.height()) > 0.85
    assert abs((x0 + x1) / 2 - view.width() / 2) < 0.05 * view.width()
    assert abs((y0 + y1) / 2 - view.height() / 2) < 0.05 * view.height()
    assert view.outside_view() == 20 and len(view.visible_rows()) == 980
    # Fit again: every photo, the far cluster included.
    view.fit_again()
    assert len(view.visible_rows()) == 1000 and view.outside_view() == 0
    view.fit_again()
    assert view.outside_view() == 20  # and back to the bulk
    # A map without far photos is fitted whole, as before.
    view.set_points(bulk, np.full(980, 0xFFFF0000, np.uint32), np.arange(980),
                    np.array([f"/p/{i}.jpg" for i in range(980)]), [])
    assert view.outside_view() == 0 and len(view.visible_rows()) == 980
    # A far cluster along the axis that does not limit the scale costs no room: it stays.
    wide = np.concatenate([rng.uniform([0, 0], [10, 1], (980, 2)),
                           rng.normal(size=(20, 2)) * 0.05 + [5.0, 3.0]])
    view.set_points(wide, np.full(1000, 0xFFFF0000, np.uint32), np.arange(1000),
                    np.array([f"/p/{i}.jpg" for i in range(1000)]), [])
    assert view.outside_view() == 0 and len(view.visible_rows()) == 1000


def test_a_new_map_keeps_the_users_zoom_on_the_same_photo(qtbot) -> None:
    xy = np.random.default_rng(2).normal(size=(500, 2)).astype(np.float32)
    view = make_view(qtbot, xy)
    fitted_scale = view._scale
    row = 123
    x, y = view.to_screen(xy[row:row + 1])[0]
    view.pan_pixels(view.width() / 2 - x, view.height() / 2 - y)
    view.zoom(6.0)
    # Training's new map: other positions for the same photos (ids), in another order.
    order = np.random.default_rng(3).permutation(500)
    moved = xy[order] * 3.0 + 7.0
    view.set_points(moved, np.full(500, 0xFFFF0000, np.uint32), order,
                    np.array([f"/p/{i}.jpg" for i in order]), [])
    new_row = int(np.flatnonzero(order == row)[0])
    centre = view.to_screen(moved[new_row:new_row + 1])[0]
    assert np.allclose(centre, [view.width() / 2, view.height() / 2], atol=1.0)
    assert view._scale == pytest.approx(6.0 * fitted_scale / 3.0, rel=0.05)
    # A map of other photos (another library) is fitted: there is nothing to keep.
    view.zoom(3.0)
    view.set_points(xy, np.full(500, 0xFFFF0000, np.uint32), np.arange(1000, 1500),
                    np.array([f"/q/{i}.jpg" for i in range(500)]), [])
    assert view._scale == pytest.approx(fitted_scale)
    # Once the user fits the map again, new maps are fitted again.
    view.fit_again()
    view.set_points(xy, np.full(500, 0xFFFF0000, np.uint32), np.arange(500),
                    np.array([f"/p/{i}.jpg" for i in range(500)]), [])
    assert view._scale == pytest.approx(fitted_scale)
