"""``python -m finetune --config FILE [--output-dir DIR] [--max-steps N] [--resume latest] [key=value ...]``."""

from __future__ import annotations

import logging
import sys

import click

from pdedit.errors import PdeditError


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config_path", required=True, help="YAML config: a file or a name in finetune/configs (tiny, sketch, full).")
@click.option("--output-dir", default=None, help="Run folder (overrides train.output_dir).")
@click.option("--max-steps", type=int, default=None, help="Optimizer steps (overrides train.max_steps).")
@click.option("--resume", default=None, help="'latest' (newest checkpoint in the run folder, if any) or a checkpoint folder.")
@click.option("-v", "--verbose", is_flag=True, help="Log progress (to stderr).")
@click.argument("overrides", nargs=-1)
def main(config_path: str, output_dir: str | None, max_steps: int | None, resume: str | None, verbose: bool,
         overrides: tuple[str, ...]) -> None:
    """Train a PixelDance model with the paper's recipe. OVERRIDES are section.key=value.

    Example: python -m finetune --config tiny --output-dir runs/tiny --max-steps 200 train.lr=1e-3
    """
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(name)s: %(message)s")
    from finetune.config import load_config
    from finetune.train import train

    try:
        extra = list(overrides)
        if output_dir is not None:
            extra.append(f"train.output_dir={output_dir}")
        if max_steps is not None:
            extra.append(f"train.max_steps={max_steps}")
        config = load_config(config_path, extra)
        final = train(config, resume=resume)
    except PdeditError as err:
        click.echo(f"error: {err}", err=True)
        sys.exit(err.exit_code)
    from accelerate import PartialState

    if PartialState().is_main_process:  # one line per run, not per process
        click.echo(str(final))


if __name__ == "__main__":
    main()
