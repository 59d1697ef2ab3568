import pathlib

import pytest

import eva_coralbay
from eva_coralbay.leaderboard import paths


@pytest.fixture(autouse=True)
def _no_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(paths.ENVIRONMENT_VARIABLE, raising=False)


def _fake_install(monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path) -> pathlib.Path:
    package = tmp_path / "site-packages" / "eva_coralbay" / "__init__.py"
    package.parent.mkdir(parents=True)
    monkeypatch.setattr(eva_coralbay, "__file__", str(package))
    return package


def test_environment_variable_wins(monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path) -> None:
    monkeypatch.setenv(paths.ENVIRONMENT_VARIABLE, str(tmp_path / "mine"))
    assert paths.default_root(tmp_path) == tmp_path / "mine"


def test_checkout_found_from_a_subfolder(
    monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path
) -> None:
    _fake_install(monkeypatch, tmp_path)
    (tmp_path / "repo" / "leaderboard" / "submissions").mkdir(parents=True)
    (tmp_path / "repo" / "logs" / "btcv").mkdir(parents=True)
    assert paths.default_root(tmp_path / "repo" / "logs" / "btcv") == (
        tmp_path / "repo" / "leaderboard"
    )


def test_editable_checkout_of_the_package(
    monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path
) -> None:
    package = tmp_path / "checkout" / "eva_coralbay" / "__init__.py"
    package.parent.mkdir(parents=True)
    (tmp_path / "checkout" / "pyproject.toml").write_text("")
    (tmp_path / "checkout" / "leaderboard" / "submissions").mkdir(parents=True)
    monkeypatch.setattr(eva_coralbay, "__file__", str(package))
    (tmp_path / "elsewhere").mkdir()
    assert paths.default_root(tmp_path / "elsewhere") == tmp_path / "checkout" / "leaderboard"


def test_pip_install_outside_a_checkout_uses_the_current_folder(
    monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path
) -> None:
    _fake_install(monkeypatch, tmp_path)
    (tmp_path / "work").mkdir()
    assert paths.default_root(tmp_path / "work") == tmp_path / "work" / "leaderboard"
