"""Shared fixtures of the adapter tests: native layouts written once per session."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import pytest

from eva_coralbay.data import adapters
from eva_coralbay.data.profile import PreprocessingProfile
from eva_coralbay.data.synthetic import layouts

FAST_PROFILE = PreprocessingProfile(spacing=(4.0, 4.0, 4.0))
"""CoralBay's orientation and window on a coarse grid, to keep the tests quick."""


class NativeRoots:
    """Writes each adapter's native fixture layout on first use, once per session."""

    def __init__(self, base: Path) -> None:
        self._base = base
        self._roots: dict[str, Path] = {}

    def __call__(self, adapter: type[adapters.SegmentationAdapter]) -> Path:
        name = adapter.__name__
        if name not in self._roots:
            self._roots[name] = layouts.writer_for(adapter)(self._base / name)
        return self._roots[name]


@pytest.fixture(scope="session")
def native_roots(tmp_path_factory: pytest.TempPathFactory) -> NativeRoots:
    """Callable: adapter class -> root of its (read-only by convention) native fixture."""
    return NativeRoots(tmp_path_factory.mktemp("native"))


def fresh_layout(adapter: type[adapters.SegmentationAdapter], root: Path) -> Path:
    """Writes a private copy of an adapter's fixture layout (for tests that modify it)."""
    return layouts.writer_for(adapter)(root)


def load_nifti(path: Path) -> nib.Nifti1Image:
    """nibabel.load, typed: the fixtures and the test data are all NIfTI-1."""
    image = nib.load(path)
    assert isinstance(image, nib.Nifti1Image), path
    return image


@pytest.fixture(autouse=True)
def isolated_cache(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """Points the default preprocess cache at a temporary folder, never the user's."""
    folder = tmp_path_factory.mktemp("coralbay-cache")
    monkeypatch.setenv("CORALBAY_CACHE", str(folder))
    return folder
