"""Not code to import: this file makes pytest load ``notebooks/conftest.py`` as
``notebooks.conftest``, so it cannot shadow ``tests/conftest.py``, which tests import as
``conftest``."""
