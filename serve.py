"""Start the app: ``streamlit run app.py`` plus one fix for a Streamlit 1.67 quirk.

Streamlit decides once per server process whether the app is an old-style multipage app
("a pages/ folder beside the main script"). It is, by name, so the very first browser
session of a fresh server runs the pages/ folder's files as pages (v1) before app.py's
st.navigation takes over. When that first visit is a shared deep link such as
``/layer-by-layer?...``, a "Page not found" dialog covers the right page (streamlit issue
#9624). Our pages/ holds st.navigation's page scripts, so the v1 treatment never applies:
saying so before the server starts makes the first session behave like every later one.
``tests/e2e`` opens a deep link as a fresh server's first request to check this.

Usage: ``python serve.py [streamlit run options]`` (``./dev app`` does this).
"""

from __future__ import annotations

import sys
from pathlib import Path

from streamlit.runtime.pages_manager import PagesManager
from streamlit.web import cli

if __name__ == "__main__":
    PagesManager.uses_pages_directory = False  # app.py uses st.navigation (v2) only
    app = str(Path(__file__).resolve().parent / "app.py")
    sys.argv = ["streamlit", "run", app, *sys.argv[1:]]
    sys.exit(cli.main())
