"""Nox sessions: tests, lint, typecheck, bench."""

import nox

nox.options.sessions = ["lint", "typecheck", "tests"]
nox.options.reuse_existing_virtualenvs = True

PYTHON = "3.11"


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """Runs the test suite (`nox -s tests -- -k name` passes pytest options)."""
    session.install("-e", ".[dev]")
    session.run("pytest", "-n", "2", "--dist", "worksteal", *session.posargs)


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """Checks style and formatting with ruff."""
    session.install("ruff")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(python=PYTHON)
def typecheck(session: nox.Session) -> None:
    """Type-checks the package with pyright."""
    session.install("-e", ".[dev]")
    session.run("pyright", "--pythonpath", session.virtualenv.location + "/bin/python")


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """Runs the speed benchmarks (`nox -s bench -- encoder` runs one)."""
    session.install("-e", ".[dev]")
    session.run("python", "-m", "benchmarks", *session.posargs)
