"""Fixtures of the voice tests: prompts rendered by the real espeak-ng, a card that is a FIFO."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.voice.sink import FifoSink
from voice.speech import render_all


@pytest.fixture(scope="session")
def english_prompts(tmp_path_factory) -> dict[str, Path]:
    """Every prompt in English, rendered once for the session by espeak-ng (no audio played)."""
    assert shutil.which("espeak-ng"), "espeak-ng is missing: bash .ci/system-packages installs it"
    return render_all("en", 140, 100, tmp_path_factory.mktemp("prompts-en"))


@pytest.fixture
def sink(tmp_path):
    """A sound card at the lowest seam (tests/voice/sink.py); closed after the test."""
    assert shutil.which("aplay"), "aplay is missing: bash .ci/system-packages installs alsa-utils"
    card = FifoSink(tmp_path / "card")
    try:
        yield card
    finally:
        card.close()
