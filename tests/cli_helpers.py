"""Helpers for the CLI tests: run a command in-process, and check that a refusal wrote nothing."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner, Result

from pdedit.cli import cli


def run(*args) -> Result:
    """Invoke the pdedit CLI in-process with ``args`` (stdout and stderr kept apart)."""
    return CliRunner().invoke(cli, [str(a) for a in args], obj={})


def snapshot(folder: Path) -> dict:
    """Every path under ``folder`` with its size and modification time: to prove nothing was written."""
    return {p: (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(folder.rglob("*"))}


def assert_refused(result: Result, before: dict, folder: Path, *words: str) -> None:
    """Exit 2, exactly one `error:` line on stderr naming ``words``, no traceback, nothing written."""
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert all(w in lines[0] for w in words), lines[0]
    assert result.stdout == ""
    assert snapshot(folder) == before
