"""The Code space map in a real browser (issue 23): a click on one point of the WebGL map
shows that picture with both models' reconstructions, and a lasso drawn with the mouse
(the toolbar's lasso tool) shows the pictures inside it. Which picture a point is, and
which points a lasso holds, is read from the plotly graph in the page (its own data and
axes), not assumed."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from .conftest import App

MAP = '[data-testid="stPlotlyChart"]'

# Every point of the first map: its picture index (customdata) and where it is drawn,
# in page pixels (plotly's axes: l2p is data -> pixels inside the plot area).
_POINTS = """
(el) => {
  const gd = el.querySelector('.js-plotly-plot');
  const fl = gd._fullLayout, xa = fl.xaxis, ya = fl.yaxis;
  const box = gd.getBoundingClientRect();
  const out = [];
  for (const tr of gd._fullData) {
    if (!tr.visible || !tr.customdata) continue;
    for (let i = 0; i < tr.x.length; i++) {
      out.push([Number(tr.customdata[i]), box.left + xa._offset + xa.l2p(tr.x[i]),
                box.top + ya._offset + ya.l2p(tr.y[i])]);
    }
  }
  return {points: out, left: box.left + xa._offset, top: box.top + ya._offset,
          width: xa._length, height: ya._length};
}
"""


def _alts(app: App) -> list[str]:
    imgs = app.main.locator(".cae-pic img")
    expect(imgs.first).to_be_visible()
    return imgs.evaluate_all("els => els.map(e => e.alt)")


def _chosen(alts: list[str]) -> list[int]:
    return [int(m[1]) for a in alts if (m := re.fullmatch(r"test picture (\d+): .+", a))]


def _loneliest(points: list) -> list:
    """A point far from every other (so a click there hits it and no other), chosen among
    a sample of candidates."""

    def gap(p):
        return min((p[1] - q[1]) ** 2 + (p[2] - q[2]) ** 2 for q in points if q is not p)

    return max(points[:: max(1, len(points) // 300)], key=gap)


@pytest.mark.e2e
def test_click_a_point_then_lasso_a_group(app: App):
    app.open("code-space")
    app.no_exception()
    chart = app.main.locator(MAP).first
    # plotly's bundle loads with the first chart: slow on a busy machine
    expect(chart.locator(".js-plotly-plot")).to_be_visible(timeout=60_000)
    geo = chart.evaluate(_POINTS)
    points = geo["points"]
    assert len(points) > 100, len(points)

    # A click on one point: that picture, then each model's copy of it with its PSNR.
    index, x, y = _loneliest(points)
    app.act(lambda: app.page.mouse.click(x, y))
    app.no_exception()
    alts = _alts(app)
    assert _chosen(alts) == [index], alts[:4]
    rebuilt = [a for a in alts if a.startswith(f"test picture {index} (")]
    assert len(rebuilt) == 2 and all(
        re.search(r"rebuilt by [AB]: .+, \d+\.\d dB$", a) for a in rebuilt
    )
    expect(app.main.get_by_text("1 picture selected on the code map")).to_be_visible()

    # A lasso: a square around the plot's centre, drawn with the mouse.
    cx, cy = geo["left"] + geo["width"] / 2, geo["top"] + geo["height"] / 2
    r = min(geo["width"], geo["height"]) / 8
    corners = [
        (cx - r, cy - r),
        (cx + r, cy - r),
        (cx + r, cy + r),
        (cx - r, cy + r),
        (cx - r, cy - r),
    ]
    inside = {i for i, px, py in points if abs(px - cx) < r and abs(py - cy) < r}
    assert len(inside) > 1, "the centre of the map holds points"

    def lasso():
        m = app.page.mouse
        m.move(*corners[0])
        m.down()
        for corner in corners[1:]:
            m.move(*corner, steps=8)
        m.up()

    # The lasso is a tool of the map's toolbar (a drag pans by default, so that a click
    # selects one point: Streamlit makes clicks select only outside the lasso and box).
    chart.hover()
    chart.get_by_role("button", name="Lasso Select").click()
    app.act(lasso)
    app.no_exception()
    said = app.main.get_by_text(re.compile(r"^[\d,]+ pictures selected on the code map"))
    expect(said).to_be_visible()
    count = int(said.inner_text().split()[0].replace(",", ""))
    assert abs(count - len(inside)) <= max(2, len(inside) // 50), (count, len(inside))
    shown = _chosen(_alts(app))
    assert shown and len(shown) == min(count, 24)
    assert set(shown) <= inside | {index}, set(shown) - inside
