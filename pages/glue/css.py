"""Every style the app adds to Streamlit's, in one place.

``BASE`` is always on; ``PRESENTING`` is added in presentation mode. The picture rows'
classes (``cae-rows``, ``cae-row``, ``cae-pic``, ...) are emitted by
:func:`convae.figures.html.picture_rows_html` and the legend's (``cae-legend``,
``cae-swatch``) by :func:`convae.figures.maps.legend_html`; they are styled here only.

Picture rows size themselves in CSS, not in Python, so a row built once and cached (Layers'
maps, the path strip) still follows presentation mode and the width of a phone:

- On a wide screen a row has exactly ``--cae-n`` columns, so the pictures of an input row
  and its reconstructions line up.
- Where that would make a picture narrower than 64 px (a phone at 390 px, a tablet at
  768 px, a narrow column), the row wraps instead of shrinking: ``auto-fill`` tracks of at
  least 64 px. Every row of a block has the same width, so rows still line up.
- When the block is narrow, row labels go above their row instead of beside it, so the
  pictures keep the whole width and labels do not print over each other.
"""

from __future__ import annotations

# Text colours are chosen for WCAG AA contrast on white (>= 4.5:1): Streamlit draws
# captions at 60 % opacity, which makes them #93959d on white, 3.0:1 (axe, color-contrast).
BASE = """
[data-testid="stMainBlockContainer"] {padding-top: 2.5rem;}
.stApp [data-testid="stCaptionContainer"], .stApp [data-testid="stCaptionContainer"] p,
.stApp [data-testid="stWidgetLabel"] p, .stApp [data-testid="stImageCaption"]
  {color: #4b4f5c; opacity: 1;}
.stApp .cae-nav-group p {font-weight: 600; color: #31333f; margin: 0.6rem 0 0 0;}
.cae-takeaway {font-size: 1.15rem; line-height: 1.45; margin: 0 0 0.5rem 0; color: #1f2330;}
.cae-note {font-size: 0.9rem; color: #4b4f5c; margin: 0.1rem 0 0.4rem 0;}
.cae-legend {display: flex; flex-wrap: wrap; gap: 0.3rem 1.2rem; font-size: 0.9rem;
             color: #31333f; margin: 0.2rem 0 0.4rem 0;}
.cae-swatch {display: inline-block; width: 4.5rem; height: 0.8rem; vertical-align: middle;
             margin-right: 0.35rem; border: 1px solid #8a8d99;}

/* Picture rows (convae/figures/html.py). Pictures are tiny PNGs enlarged by the browser. */
.cae-rows {display: grid; gap: 0.35rem 0; margin: 0.25rem 0 0.75rem 0;
           container-type: inline-size;
           /* n columns that share the width, but none under 64 px: then fewer, and the
              row wraps (0.1 px slack so rounding never drops the n-th column). */
           --cae-track: max(64px, calc((100% - (var(--cae-n) - 1) * 0.5rem)
                                       / var(--cae-n) - 0.1px));}
.cae-row {display: grid; align-items: start; gap: 0.5rem;
          grid-template-columns: repeat(auto-fill, minmax(var(--cae-track), 1fr));}
.cae-rows.cae-labelled .cae-row {
          grid-template-columns: var(--cae-label)
            repeat(var(--cae-n), minmax(0, 1fr));}
.cae-row-label {align-self: center; font-weight: 600; line-height: 1.2;
                overflow-wrap: normal; word-break: normal;}
.cae-pic {margin: 0; min-width: 0; max-width: var(--cae-max, none);}
.cae-pic img {width: 100%; height: auto; display: block; image-rendering: pixelated;
              border-radius: 2px;}
.cae-pic figcaption {font-size: 0.85rem; line-height: 1.2; margin-top: 0.15rem;
                     text-align: center; color: #31333f; overflow-wrap: normal;
                     word-break: keep-all; hyphens: none;}
.cae-pic.cae-marked img {outline: 3px solid #1d4ed8; outline-offset: 1px;}
/* A labelled block narrower than its label plus --cae-n pictures of 64 px: the label goes
   above its row and the row wraps, as an unlabelled one does. 44rem: a 9rem label and 8
   pictures of 64 px with their gaps. */
@container (max-width: 44rem) {
  .cae-rows.cae-labelled .cae-row {
    grid-template-columns: repeat(auto-fill, minmax(var(--cae-track), 1fr));}
  .cae-rows.cae-labelled .cae-row-label {grid-column: 1 / -1; margin-top: 0.3rem;}
}

/* A live class (pages/live_class.py). The join card: the code large enough to read from
   the back of a room, the QR code at least 440 px (28rem) wide where the page allows. */
.cae-join {display: flex; flex-wrap: wrap; gap: 1rem 2.5rem; align-items: center;
           margin: 0.5rem 0 1rem 0;}
.cae-join-text {flex: 1 1 18rem; min-width: 0;}
/* "p.cae-..." outranks presentation mode's rule for every paragraph of the page. */
.stApp [data-testid="stMain"] p.cae-join-label {margin: 0; color: #31333f;
                                                font-size: 1.1rem;}
.stApp [data-testid="stMain"] p.cae-code {
  font-family: ui-monospace, "DejaVu Sans Mono", monospace; font-weight: 700;
  font-size: 4.5rem; line-height: 1.1; letter-spacing: 0.08em; margin: 0.2rem 0;
  color: #1f2330;}
.stApp [data-testid="stMain"] p.cae-join-link {
  font-family: ui-monospace, "DejaVu Sans Mono", monospace; font-size: 1.2rem;
  overflow-wrap: anywhere; margin: 0.2rem 0 0 0; color: #1f2330;}
.stApp [data-testid="stMain"] p.cae-join-line {font-size: 1.2rem; margin: 0 0 0.5rem 0;
                                               color: #1f2330;}
.cae-code-inline {font-family: ui-monospace, "DejaVu Sans Mono", monospace; font-weight: 700;
                  font-size: 1.6em; letter-spacing: 0.06em;}
.cae-qr {width: min(100%, 28rem); height: auto; image-rendering: pixelated;
         flex: 0 0 auto;}
/* A question's pictures: cards that share the row up to 14rem each and wrap (never
   narrower than 6.5rem, so three fit across a phone), each picture enlarged with nearest
   neighbour and once more at its true size. */
.cae-cards {display: grid; gap: 0.75rem 1.25rem; margin: 0.25rem 0 0.75rem 0;
            grid-template-columns: repeat(auto-fit, minmax(6.5rem, 1fr));
            max-width: calc(var(--cae-n, 4) * 14rem + (var(--cae-n, 4) - 1) * 1.25rem);}
.cae-card {margin: 0; min-width: 0;}
.cae-card-letter {font-weight: 700; font-size: 1.5rem; margin: 0 0 0.2rem 0; color: #1f2330;}
.cae-card-big {width: 100%; height: auto; display: block; image-rendering: pixelated;
               border-radius: 2px;}
.cae-card-true {display: flex; align-items: center; gap: 0.4rem; margin-top: 0.3rem;
                font-size: 0.85rem; color: #4b4f5c;}
.cae-card-true img {image-rendering: pixelated; flex: 0 0 auto;}
.cae-card figcaption {font-size: 0.9rem; line-height: 1.3; margin-top: 0.3rem;
                      color: #31333f;}
/* Answer buttons: large targets for a finger (at least 3.5rem high). */
.st-key-class_answers button {min-height: 3.5rem;}
.st-key-class_answers button p {font-size: 1.35rem; font-weight: 600;}
"""

# Presentation mode: everything measured in rem grows with the root font size (Streamlit
# sizes text, widgets and spacing in rem), so one rule scales the page for a projector;
# body text is then 22 px, and captions, labels and notes 20 px.
PRESENTING = """
html {font-size: 22px;}
[data-testid="stMainBlockContainer"] {max-width: 100%; padding-left: 2.5rem;
                                      padding-right: 2.5rem;}
.cae-takeaway {font-size: 1.3rem;}
/* Row labels go above their row, so the pictures get the whole width; pictures with a
   largest size may be 1.6 times larger. */
.cae-rows.cae-labelled .cae-row {
  grid-template-columns: repeat(auto-fill, minmax(var(--cae-track), 1fr));}
.cae-rows.cae-labelled .cae-row-label {grid-column: 1 / -1; margin-top: 0.3rem;}
.cae-pic {max-width: calc(var(--cae-max, 100000px) * 1.6);}
/* Small print is still 20 px on a projector: captions, labels, notes, legends. */
.cae-pic figcaption, .cae-note, .cae-legend,
.stApp [data-testid="stMain"] [data-testid="stCaptionContainer"],
.stApp [data-testid="stMain"] [data-testid="stCaptionContainer"] p,
.stApp [data-testid="stMain"] [data-testid="stWidgetLabel"] p,
.stApp [data-testid="stMain"] [data-testid="stMetricLabel"] p {font-size: 0.92rem;}
/* Any other text that Streamlit draws smaller (0.875rem = 19.25 px: notices, help text)
   comes up to the same 20 px; larger text keeps its size. */
.stApp [data-testid="stMain"] :is(p, li):not(.cae-takeaway) {
  font-size: max(0.92rem, 1em);}
/* The projected part is the page, not the sidebar: keep the sidebar at its usual size, so
   it does not grow past the screen and scroll (axe: scrollable-region-focusable). */
[data-testid="stSidebarContent"] {zoom: 0.66;}
"""


def stylesheet(presenting: bool) -> str:
    """The app's CSS for one run: the base, plus the projector's when presenting."""
    return BASE + (PRESENTING if presenting else "")
