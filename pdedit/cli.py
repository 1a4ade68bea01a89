"""The `pdedit` command line: a thin layer over the public functions.

Every command follows `pdedit VERB INPUT [options] -o OUTPUT`; progress goes to stderr, results to
stdout. A `PdeditError` becomes one line on stderr and exit code 2 (`--debug` shows the traceback).
"""

from __future__ import annotations

import logging
import sys

import click

from pdedit.errors import PdeditError

SIZE_HELP = "output size WxH (multiples of 8), e.g. 512x320"


class PdeditGroup(click.Group):
    """A click group that turns PdeditError into one clear line and exit code 2."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except PdeditError as err:
            if ctx.obj and ctx.obj.get("debug"):
                raise
            click.echo(f"error: {err}", err=True)
            ctx.exit(err.exit_code)


@click.group(cls=PdeditGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show full tracebacks instead of one-line errors.")
@click.option("-v", "--verbose", is_flag=True, help="Log what the library does (to stderr).")
@click.version_option(package_name="pdedit")
@click.pass_context
def cli(ctx: click.Context, debug: bool, verbose: bool) -> None:
    """pdedit: zero-shot video editing and sketch-conditioned generation with PixelDance."""
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(name)s: %(message)s")


# ---- commands are registered below, one section per step of the data flow ----


def main() -> None:
    """Console-script entry point."""
    cli(obj={}, prog_name="pdedit")


if __name__ == "__main__":
    main()
