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
