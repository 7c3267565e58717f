# Copyright (c) mmvan contributors. All rights reserved.
"""What the zoo and cache tests share."""
import pytest


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A fresh torch hub cache for each test (no local mirror)."""
    home = tmp_path / 'torch_home'
    monkeypatch.setenv('TORCH_HOME', str(home))
    monkeypatch.delenv('MMVAN_ZOO_MIRROR', raising=False)
    return home
