"""The ``llmcache`` command (needs the ``cli`` extra: click and rich).

``main.py`` is the entry point and stays import-light, so a missing extra is one clear line;
``app.py`` holds the click group; ``demo.py`` runs the workload and ``render.py`` shows it.
"""
