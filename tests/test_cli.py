import pathlib
import subprocess
import sys

import pytest

from eva_coralbay import cli


def test_help_lists_usage(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--help"])
    assert exit_info.value.code == 0
    assert "usage: coralbay" in capsys.readouterr().out


def test_help_imports_neither_torch_nor_eva() -> None:
    code = (
        "import sys, contextlib, io\n"
        "from eva_coralbay import cli\n"
        "with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
        "    cli.main(['--help'])\n"
        "heavy = sorted(m for m in ('torch', 'eva', 'monai', 'lightning') if m in sys.modules)\n"
        "print(','.join(heavy))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == ""


def test_console_script_runs() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "eva_coralbay.cli", "--version"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.startswith("eva-coralbay ")


SUBCOMMANDS = ("demo", "pretrain", "export", "embed", "preprocess", "leaderboard")


@pytest.mark.parametrize("subcommand", SUBCOMMANDS)
def test_every_subcommand_answers_its_own_help(
    subcommand: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main([subcommand, "--help"])
    assert exit_info.value.code == 0
    assert f"usage: coralbay {subcommand}" in capsys.readouterr().out


def test_an_unknown_subcommand_lists_the_known_ones(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["frobnicate"])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert "invalid choice: 'frobnicate'" in error
    assert all(f"'{name}'" in error for name in SUBCOMMANDS)


def test_preprocess_names_the_missing_dataset_and_how_to_get_it(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from eva_coralbay.data import adapters

    missing = tmp_path / "btcv"
    assert cli.main(["preprocess", "--dataset", "BTCV", "--root", str(missing)]) == 2
    output = capsys.readouterr()
    text = output.out + output.err
    assert f"was not found at {missing}" in text
    assert adapters.BTCV.manual_download.strip().splitlines()[0] in text  # the way to get it
    assert not missing.exists() and not (tmp_path / "cache").exists()

    assert cli.main(["preprocess", "--dataset", "Nope", "--root", str(missing)]) == 2
    assert "unknown dataset 'Nope'; known: BTCV (btcv)" in capsys.readouterr().err


def test_export_of_a_missing_checkpoint_writes_nothing(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "last.ckpt"
    assert cli.main(["export", str(missing), "--output", str(tmp_path / "out")]) == 2
    assert f"checkpoint not found: {missing}" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_leaderboard_build_of_an_empty_root_says_so_and_writes_nothing(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "board"
    assert cli.main(["leaderboard", "build", "--root", str(root)]) != 0
    assert f"{root / 'submissions'}: no submissions to build from" in capsys.readouterr().err
    assert not (root / "README.md").exists() and not (root / "leaderboard.parquet").exists()
