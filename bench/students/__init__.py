"""Simulated students: browser sessions on the app without a browser, for load tests.

- ``protocol.py``: one session spoken in Streamlit's websocket protocol
  (``StreamlitSession``: connect, click, set a value, follow auto-reruns, time each run).
- ``view.py``: what the session shows, rebuilt from the server's deltas, and the widget
  states the browser would send back.
- ``follow.py``: timing how long one session's click takes to show in another's page.
- ``locustfile.py``: Locust users built on them (``LayersStudent``, ...).
- ``meter.py``: CPU and memory of the server and of the generator over a window.
- ``chromium.py``: real Chromium sessions doing the same clicks, to check the simulation.

``bench/capacity.py`` runs them against a server it starts and writes the results.
"""
