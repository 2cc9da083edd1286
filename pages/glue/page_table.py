"""The app's pages as plain data: which script, its title, icon, address and group.

app.py builds its navigation from this table; docs/screenshots.py and the browser tests
read it too (no parsing of app.py). It imports nothing from Streamlit, so anything can
import it.

Every ``url_path`` differs from its script's file name on purpose: Streamlit's AppTest
(1.67) also indexes pages/ the old automatic way, and a page whose address matches its
file name is then rerun without app.py, so the shared sidebar vanishes from the second run
on.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

PAGES_DIR = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class PageSpec:
    """One page of the app.

    Attributes:
        script: the page's file under pages/, e.g. "overview.py".
        title: its name in the sidebar and the tab title.
        icon: a Material icon, ":material/home:".
        url_path: its address ("start" for the first page, which is also served at "/").
        group: the sidebar heading it sits under.
        default: the page the app opens on.
    """

    script: str
    title: str
    icon: str
    url_path: str
    group: str
    default: bool = False

    @property
    def path(self) -> Path:
        return PAGES_DIR / self.script

    @property
    def address(self) -> str:
        """Where a browser opens it: "" (the app's root) for the default page."""
        return "" if self.default else self.url_path


PAGES: tuple[PageSpec, ...] = (
    PageSpec("overview.py", "Overview", ":material/home:", "start", "Explore", default=True),
    PageSpec("reconstructions.py", "Reconstructions", ":material/grid_view:", "recon", "Explore"),
    PageSpec("layers.py", "Layers", ":material/layers:", "layer-by-layer", "Explore"),
    PageSpec("compare.py", "Compare", ":material/compare:", "decoders", "Explore"),
    PageSpec("cells.py", "Code cells", ":material/grid_on:", "code-cells", "Explore"),
    PageSpec("codespace.py", "Code space", ":material/scatter_plot:", "code-space", "Explore"),
    PageSpec("train.py", "Train", ":material/model_training:", "training", "Build"),
    PageSpec("denoise.py", "Denoise", ":material/blur_off:", "denoising", "Uses"),
    PageSpec("repair.py", "Repair", ":material/healing:", "repairing", "Uses"),
    PageSpec("code.py", "Code", ":material/tune:", "the-code", "Uses"),
    PageSpec("style.py", "Style", ":material/palette:", "style-transfer", "Uses"),
    # A live class: join, lead, ask and answer (url path: convae.classroom's JOIN_PAGE).
    PageSpec("live_class.py", "Class", ":material/groups:", "class", "Teach"),
)


def groups() -> dict[str, list[PageSpec]]:
    """The pages under their sidebar headings, in the table's order."""
    out: dict[str, list[PageSpec]] = {}
    for p in PAGES:
        out.setdefault(p.group, []).append(p)
    return out


def page_paths() -> list[tuple[str, str]]:
    """(address, title) of every page ("" for the default page, which is served at the
    app's root): what the browser tests and docs/screenshots.py visit."""
    return [(p.address, p.title) for p in PAGES]


def url_paths() -> set[str]:
    """Every page's address, and "" for the root (lessons name pages by these)."""
    return {p.url_path for p in PAGES} | {""}
