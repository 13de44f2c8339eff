"""The HTML page in a real headless Chromium (Debian's `chromium`, installed by scripts/setup.sh).

Skipped only when no Chromium is installed (setup.sh could not install it), and says so.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from servicemap.render.style import STATUS_FILL
from tests.browser import Browser, chromium_path, png_pixels
from tests.conftest import DEMO, nodes_of

CHROMIUM = chromium_path()
pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="chromium is not installed and could not be (scripts/setup.sh installs it with "
    "apt-get install chromium); the HTML page was not tested in a browser",
)


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Browser]:
    assert CHROMIUM is not None
    profile = tmp_path / "profile"
    profile.mkdir()
    session = Browser(CHROMIUM, profile)
    try:
        yield session
    finally:
        session.close()


def _centre(browser: Browser, node_id: str) -> tuple[float, float]:
    box = browser.evaluate(
        f"""(function () {{
          var g = document.querySelector('#map g.node[data-id="{node_id}"]');
          g.scrollIntoView({{block: "center", inline: "center"}});
          var r = g.getBoundingClientRect();
          return [r.x + r.width / 2, r.y + r.height / 2];
        }})()"""
    )
    return float(box[0]), float(box[1])


def _details_visible(browser: Browser) -> bool:
    return bool(
        browser.evaluate(
            "(function () { var d = document.getElementById('details');"
            " return !d.hidden && d.getBoundingClientRect().width > 0; })()"
        )
    )


def _covers(browser: Browser, node_id: str) -> bool:
    """Whether the details panel lies over the node's box on screen."""
    return bool(
        browser.evaluate(
            f"""(function () {{
              var a = document.getElementById('details').getBoundingClientRect();
              var b = document.querySelector('#map g.node[data-id="{node_id}"]')
                .getBoundingClientRect();
              return a.left < b.right && b.left < a.right && a.top < b.bottom && b.top < a.bottom;
            }})()"""
        )
    )


def test_html_page_in_a_real_browser(run, browser: Browser, tmp_path: Path) -> None:
    graph = run("render", str(DEMO)).json()
    page = tmp_path / "map.html"
    assert run("render", str(DEMO), "--format", "html", "-o", str(page)).code == 0
    browser.open_page(page.as_uri())

    shown = browser.evaluate(
        "Array.from(document.querySelectorAll('#map g.node')).map(g => g.dataset.id)"
    )
    assert sorted(shown) == sorted(nodes_of(graph))  # every node of the graph is in the DOM
    rows = browser.evaluate("document.querySelectorAll('#nodes tbody tr').length")
    assert rows == len(graph["nodes"])

    # No details panel until something is hovered: it hides nothing of the page by itself.
    assert not _details_visible(browser)

    # Hovering a node shows its figures, status and reasons, beside the node, never on it.
    x, y = _centre(browser, "checkout")
    browser.mouse("mouseMoved", x, y)
    assert _details_visible(browser)
    details = browser.evaluate("document.getElementById('details').innerText")
    for expected in ("checkout", "CRITICAL", "75", "8.0%", "p95", "1.11 s", "error rate 8.0%"):
        assert expected in details, (expected, details)
    assert not _covers(browser, "checkout")
    browser.mouse("mouseMoved", 2, 2)
    assert not _details_visible(browser)  # gone with the pointer

    # A node at the right edge: the panel moves to the left rather than cover it.
    right = browser.evaluate(
        """Array.from(document.querySelectorAll('#map g.node')).map(g => [g.dataset.id,
             g.getBoundingClientRect().right]).sort((a, b) => b[1] - a[1])[0][0]"""
    )
    browser.mouse("mouseMoved", *_centre(browser, right))
    assert _details_visible(browser) and not _covers(browser, right)

    # Clicking pins it: moving away keeps it; the close button (or Escape) lets it go.
    x, y = _centre(browser, "checkout")
    browser.mouse("mousePressed", x, y)
    browser.mouse("mouseReleased", x, y)
    browser.mouse("mouseMoved", 2, 2)
    assert "checkout" in browser.evaluate("document.getElementById('details').innerText")
    assert browser.evaluate("document.querySelector('#map g.node.selected').dataset.id") == (
        "checkout"
    )
    browser.evaluate("document.getElementById('details-close').click()")
    assert not _details_visible(browser)
    assert browser.evaluate("document.querySelectorAll('.selected').length") == 0

    # Fitted to the width, the map's labels stay readable: edge labels of 9 pt, at least
    # 80 % of their natural size (9.6 px), not the ~8 px a plain fit gave.
    assert browser.evaluate("document.getElementById('fit').textContent") == "actual size"
    label_px = browser.evaluate(
        """(function () {
          var svg = document.querySelector('#map svg');
          var scale = svg.getBoundingClientRect().width / svg.viewBox.baseVal.width;
          var text = document.querySelector('#map g.edge text');
          return parseFloat(text.getAttribute('font-size')) * scale;
        })()"""
    )
    assert label_px >= 9.5, label_px

    # The filter box dims nodes that do not match and hides their table rows.
    browser.evaluate(
        "var s = document.getElementById('search'); s.value = 'pay';"
        "s.dispatchEvent(new Event('input'))"
    )
    visible = browser.evaluate(
        "Array.from(document.querySelectorAll('#nodes tbody tr:not(.hidden)'))"
        ".map(r => r.dataset.id)"
    )
    assert visible == ["payment"]
    assert browser.evaluate("document.querySelectorAll('#map g.node.dim').length") == (
        len(graph["nodes"]) - 1
    )

    # Sorting a column by clicking its header: calls, descending on the second click.
    browser.evaluate(
        "document.getElementById('search').value = '';"
        "document.getElementById('search').dispatchEvent(new Event('input'));"
        "var th = document.querySelectorAll('#edges th')[4]; th.click(); th.click();"
    )
    first = browser.evaluate("document.querySelector('#edges tbody tr').dataset.id")
    assert first == "user->web"  # 200 calls, the busiest edge

    assert browser.problems() == []
    assert browser.remote_requests() == []

    shot = browser.screenshot(scale=0.5)
    width, height, channels, pixels = png_pixels(shot)
    assert (width, height) == (700, 450)
    colours = {row[i : i + 3] for row in pixels[::2] for i in range(0, len(row), channels)}
    assert len(colours) > 20  # not blank: text, the map's fills, the table
    fills = {bytes.fromhex(STATUS_FILL[s][1:]) for s in ("ok", "critical", "warning")}
    assert fills & colours, "no status fill visible in the screenshot"
