"""Many edit/generate jobs from one manifest: ``pdedit batch jobs.jsonl -o OUT_DIR``.

A manifest is JSONL (one object a line) or CSV (a header of keys). Each job names its ``command``
(``edit`` or ``generate``) and sets the options of that command under their CLI names, dashes as
underscores: ``{"command": "edit", "video": "a.mp4", "first_edit": "auto:sepia", "output": "a.mp4"}``.
A job runs through the click command itself, so its keys, checks and defaults are the command's own and
cannot drift from it. This module sits at the CLI's level (it runs CLI commands), so it imports
``pdedit.cli``; nothing below the CLI imports it.

Paths: inputs (videos, edit images, models) resolve against the manifest's folder and may not leave it
unless ``allow_outside``; outputs (``output``, ``preview``, edit's ``compare``) are relative to OUT_DIR and always
stay in it.

Resume: a job whose outputs exist is skipped (outputs are written atomically, so an existing one is
complete), so a batch killed halfway is rerun with the same command. Every job gets one line in
``OUT_DIR/report.jsonl``: ``status`` done | skipped | failed, the one-line ``error``, the ``engine``,
``seconds`` and the editor's step ``timings``. While running, each process appends to its own
``OUT_DIR/.batch/rank-R-of-W.jsonl``; the last process to finish merges them into report.jsonl.

Distribution: under ``accelerate launch`` the jobs are split with
``PartialState().split_between_processes`` (one GPU per process); with ``workers > 1`` (a CPU machine)
they run in a pool of processes. Either way a process loads each model folder once and reuses it.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import difflib
import functools
import io
import json
import logging
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pdedit.errors import BadInput, PdeditError

logger = logging.getLogger(__name__)

__all__ = ["Job", "BatchSummary", "read_jobs", "run_batch", "REPORT_NAME"]

REPORT_NAME = "report.jsonl"
STATE_DIR = ".batch"  # per-rank partial reports of the run in progress
MANIFEST_SUFFIXES = (".jsonl", ".json", ".csv")
# Options each command reads as input paths (resolved against the manifest's folder) and as outputs.
INPUT_KEYS = {
    "edit": ("video", "first_edit", "last_edit", "keyframe", "edit_model", "model"),
    "generate": ("first", "last", "model"),
}
SPEC_KEYS = ("first_edit", "last_edit", "keyframe")  # may hold an edit spec (auto:...) instead of a path
OUTPUT_KEYS = ("output", "preview", "compare")
# Keys a job may not set, and why: the batch owns them.
RESERVED = {
    "json": "the batch reads each job's result itself",
    "force": "pass --force to pdedit batch to redo every job",
}


@dataclass
class Job:
    """One manifest line: its command, the argv for that command, its outputs, or why it cannot run."""

    index: int
    line: int
    command: str | None = None
    argv: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)  # absolute output paths (output, preview, compare)
    output: str | None = None  # as written in the manifest (relative to OUT_DIR)
    engine: tuple[str, str | None] | None = None  # (engine option, model path) for the report's "engine"
    error: str | None = None


@dataclass
class BatchSummary:
    """What a batch (or this process's share of it) did."""

    done: int = 0
    skipped: int = 0
    failed: int = 0
    report: Path | None = None  # report.jsonl, when this process merged the ranks' reports
    records: list[dict] = field(default_factory=list)

    def __str__(self) -> str:
        return f"{self.done} done, {self.skipped} skipped, {self.failed} failed"


# ---------------------------------------------------------------------------------------------
# Manifest: rows -> jobs (all checks before any job runs)
# ---------------------------------------------------------------------------------------------


def _read_rows(manifest: Path) -> list[tuple[int, Any]]:
    """(line number, row) of every non-blank manifest line; a row that is not JSON is kept as its error."""
    if manifest.suffix.lower() == ".csv":
        with manifest.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            # Empty cells are options left at their defaults; line 1 is the header.
            return [(n, {k: v for k, v in row.items() if k is not None and v not in (None, "")})
                    for n, row in enumerate(reader, start=2) if any(row.values())]
    rows: list[tuple[int, Any]] = []
    for n, text in enumerate(manifest.read_text(encoding="utf-8").splitlines(), start=1):
        if not text.strip():
            continue
        try:
            rows.append((n, json.loads(text)))
        except json.JSONDecodeError as err:
            rows.append((n, BadInput(f"not JSON ({err.msg}): write one object a line, "
                                     "e.g. {\"command\": \"edit\", \"video\": \"a.mp4\", ...}")))
    return rows


@functools.lru_cache(maxsize=None)
def _option_table(command: str) -> dict[str, tuple[Any, str | None]]:
    """Job key -> (click parameter, its --option or None for an argument) of a CLI command."""
    import click

    from pdedit.cli import cli

    table: dict[str, tuple[Any, str | None]] = {}
    for param in cli.commands[command].params:
        if isinstance(param, click.Argument):
            table[param.name] = (param, None)
            continue
        for opt in param.opts:
            if opt.startswith("--"):
                table[opt[2:].replace("-", "_")] = (param, opt)
    return table


def _flag(value: Any) -> bool:
    """A flag's value from JSON (bool) or CSV text."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"expected true or false, got {value!r}")


def _resolve_input(text: str, key: str, base: Path, allow_outside: bool) -> str:
    """An input path resolved against the manifest's folder; BadInput when it leaves it (unless allowed)."""
    from pdedit.instructions import is_edit_spec

    if key in SPEC_KEYS and is_edit_spec(text) and not (base / text).exists():
        return text
    path = (base / Path(text).expanduser()).resolve()
    if not allow_outside and not path.is_relative_to(base):
        raise BadInput(f"{key} {text} is outside the manifest's folder {base}: move it there, "
                       "or pass --allow-outside to pdedit batch")
    return str(path)


def _resolve_output(text: str, key: str, out_dir: Path) -> str:
    """An output path inside OUT_DIR; BadInput when it is absolute or leaves it."""
    path = (out_dir / text).resolve()
    if Path(text).is_absolute() or not path.is_relative_to(out_dir) or path == out_dir:
        raise BadInput(f"{key} {text} must be a file name relative to the output folder {out_dir} and stay inside it")
    if path == out_dir / REPORT_NAME or STATE_DIR in path.relative_to(out_dir).parts:
        raise BadInput(f"{key} {text} is where pdedit batch keeps its report: choose another name")
    return str(path)


def _job(index: int, line: int, row: Any, base: Path, out_dir: Path, allow_outside: bool) -> Job:
    """Check one row and build its argv; a problem is kept as the job's error, never raised."""
    job = Job(index=index, line=line)
    try:
        if isinstance(row, BadInput):
            raise row
        if not isinstance(row, dict):
            raise BadInput("is not a JSON object: write {\"command\": \"edit\", \"video\": ..., \"output\": ...}")
        options = dict(row)
        job.command = command = options.pop("command", None)
        if command not in INPUT_KEYS:
            raise BadInput(f"command {command!r} is unknown: use \"command\": \"edit\" or \"generate\"")
        job.output = str(options.get("output")) if options.get("output") is not None else None
        table = _option_table(command)
        args: list[str] = []
        positional: list[str] = []
        for key, value in options.items():
            if key in RESERVED:
                raise BadInput(f"key {key!r} cannot be set in a job: {RESERVED[key]}")
            if key not in table:
                close = difflib.get_close_matches(key, list(table), n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise BadInput(f"unknown key {key!r} for {command}{hint}; keys are the options of "
                               f"`pdedit {command}`, dashes as underscores")
            if value is None:
                continue
            param, opt = table[key]
            values = value if isinstance(value, list) else [value]
            if param.multiple and isinstance(value, dict):  # {"12": "k.png"} for --keyframe 12=k.png
                values = [f"{k}={v}" for k, v in value.items()]
            elif param.multiple and isinstance(value, str):
                values = [v for v in value.split(";") if v]  # CSV: several values in one cell
            if len(values) > 1 and not param.multiple:
                raise BadInput(f"{key} takes one value, not a list")
            for item in values:
                text = str(item)
                if key in INPUT_KEYS[command]:
                    if key == "keyframe":
                        idx, sep, img = text.partition("=")
                        text = f"{idx}={_resolve_input(img, key, base, allow_outside)}" if sep else text
                    else:
                        text = _resolve_input(text, key, base, allow_outside)
                elif key in OUTPUT_KEYS:
                    text = _resolve_output(text, key, out_dir)
                    job.outputs.append(text)
                if opt is None:
                    positional.append(text)
                elif getattr(param, "is_flag", False):
                    try:
                        if _flag(item):
                            args.append(opt)
                    except ValueError as err:
                        raise BadInput(f"{key}: {err}") from None
                else:
                    args += [opt, text]
        if job.output is None:
            raise BadInput(f"no \"output\": give each job an output file name (relative to {out_dir})")
        model = next((args[i + 1] for i, a in enumerate(args[:-1]) if a == "--model"), None)
        engine = next((args[i + 1] for i, a in enumerate(args[:-1]) if a == "--engine"), "auto")
        job.engine = (engine, model)
        job.argv = [*args, "--", *positional] if positional else args
    except BadInput as err:
        job.error = str(err)
    return job


def read_jobs(manifest: str | os.PathLike, out_dir: str | os.PathLike, allow_outside: bool = False) -> list[Job]:
    """Read and check every job of a manifest; BadInput only for the manifest as a whole.

    A bad line (not JSON, unknown command or key, a path outside the manifest's folder, an output used
    twice) becomes a job with ``error`` set: it is reported as failed and the others still run.
    """
    path = Path(manifest)
    if not path.is_file():
        raise BadInput(f"manifest {manifest} does not exist or is not a file: give a .jsonl or .csv of jobs")
    if path.suffix.lower() not in MANIFEST_SUFFIXES:
        raise BadInput(f"manifest {manifest} must be JSONL (.jsonl) or CSV (.csv), one job a line")
    try:
        rows = _read_rows(path)
    except (UnicodeDecodeError, csv.Error) as err:
        raise BadInput(f"manifest {manifest} cannot be read ({err}): write UTF-8 JSONL or CSV") from None
    if not rows:
        raise BadInput(f"manifest {manifest} lists no jobs: write one job a line, e.g. "
                       "{\"command\": \"edit\", \"video\": \"a.mp4\", \"first_edit\": \"auto:sepia\", \"output\": \"a.mp4\"}")
    base, out = path.resolve().parent, Path(out_dir).resolve()
    jobs = [_job(i, n, row, base, out, allow_outside) for i, (n, row) in enumerate(rows)]
    owner: dict[str, int] = {}
    for job in jobs:
        for target in job.outputs if job.error is None else ():
            if target in owner:
                job.error = (f"output {Path(target).relative_to(out)} is also written by the job on line "
                             f"{owner[target]}: give each job its own output")
                break
        else:
            owner.update({t: job.line for t in job.outputs if job.error is None})
    return jobs


def _make_out_dir(out_dir: Path) -> None:
    """Create OUT_DIR if missing; BadInput when its parent does not exist."""
    if not out_dir.exists():
        if not out_dir.parent.is_dir():
            raise BadInput(f"cannot create output folder {out_dir}: {out_dir.parent} does not exist")
        out_dir.mkdir(exist_ok=True)


# ---------------------------------------------------------------------------------------------
# Running one job (in this process, a pool worker or an accelerate rank)
# ---------------------------------------------------------------------------------------------


class _ModelCache:
    """Loads each PixelDance model folder once per process, for all the jobs that run in it.

    A job's command builds its engine itself (``pdedit generate`` through ``pdedit.generation``, ``pdedit edit``
    through the editor), and the pixeldance engine loads its folder with
    ``pdedit.engines.pixeldance.load_pipeline``; while the cache is installed that name returns the pipeline
    already loaded, with the scheduler it was loaded with (a job's --scheduler swaps it, and the next job
    must not inherit that).
    """

    def __init__(self):
        self.pipes: dict[tuple, tuple[Any, Any]] = {}
        self.loads = 0

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        import pdedit.engines.pixeldance as pixeldance

        original = pixeldance.load_pipeline

        def load_once(model_dir, device="auto", dtype=None):
            key = (str(Path(model_dir).expanduser().resolve()), str(device), str(dtype))
            if key not in self.pipes:
                pipe = original(model_dir, device=device, dtype=dtype)
                self.pipes[key] = (pipe, pipe.scheduler)
                self.loads += 1
            pipe, scheduler = self.pipes[key]
            pipe.scheduler = scheduler
            return pipe

        pixeldance.load_pipeline = load_once
        try:
            yield
        finally:
            pixeldance.load_pipeline = original


def _engine_name(job: Job) -> str | None:
    """The engine a job runs (its --engine, resolved against its --model), or None when that fails."""
    from pdedit.engines import choose_engine

    try:
        return choose_engine(*job.engine)[0]
    except PdeditError:
        return None


def _partials(target: Path) -> list[Path]:
    """Temporary files a killed write of ``target`` left behind (pdedit.video.atomic_path's names)."""
    return list(target.parent.glob(f".{target.stem}.*.partial{target.suffix}*"))


def run_job(job: Job, force: bool = False, *, quiet: bool = True) -> dict:
    """Run one job through its CLI command; returns its report record (never raises for a job's error).

    ``quiet`` captures the command's stderr too (its engine line, its progress bars), for pool workers
    and for runs not on a terminal.
    """
    import click

    from pdedit.cli import cli

    record = {"job": job.index, "line": job.line, "command": job.command, "output": job.output, "status": "failed",
              "error": job.error, "engine": None, "seconds": 0.0, "timings": None, "rank": None, "pid": os.getpid()}
    if job.error is not None:
        return record
    if not force and job.outputs and all(Path(t).is_file() for t in job.outputs):
        record.update(status="skipped", error=None, engine=_engine_name(job))
        return record
    for target in map(Path, job.outputs):
        target.parent.mkdir(parents=True, exist_ok=True)  # subfolders of OUT_DIR, which is checked
        for stale in _partials(target):  # a write killed with -9 in an earlier run
            stale.unlink(missing_ok=True)
    argv = ["--force", *job.argv] if force else list(job.argv)  # options before the "--" of the arguments
    if job.command == "edit":
        argv = ["--json", *argv]  # the EditResult, for the report's engine and timings
    command = cli.commands[job.command]
    out, err = io.StringIO(), io.StringIO()
    t0 = time.perf_counter()
    try:
        with contextlib.redirect_stdout(out), (contextlib.redirect_stderr(err) if quiet else contextlib.nullcontext()):
            with command.make_context(f"pdedit {job.command}", argv) as ctx:
                command.invoke(ctx)
        record.update(status="done", error=None)
        if job.command == "edit":
            result = json.loads(out.getvalue().strip().splitlines()[-1])
            record.update(engine=result["engine"], timings=result["timings"])
        else:
            record["engine"] = _engine_name(job)
    except PdeditError as error:
        record["error"] = str(error)
    except click.ClickException as error:  # a value click refuses (a type, a range, a missing option)
        record["error"] = error.format_message()
    except click.exceptions.Exit as error:
        record.update(status="done" if error.exit_code == 0 else "failed",
                      error=None if error.exit_code == 0 else f"exited with {error.exit_code}")
    except Exception as error:  # noqa: BLE001 - one job's crash must not stop the batch; the report says what
        logger.exception("job on line %d crashed", job.line)
        record["error"] = f"{type(error).__name__}: {error}".splitlines()[0]
    record["seconds"] = round(time.perf_counter() - t0, 3)
    return record


# Per pool-worker process: the models it has loaded, kept for the worker's life.
_WORKER_CACHE: _ModelCache | None = None


def _init_worker(threads: int) -> None:
    """Set up a pool worker: its share of the cores, and its model cache."""
    global _WORKER_CACHE
    import cv2

    cv2.setNumThreads(threads)
    os.environ["OMP_NUM_THREADS"] = str(threads)  # read by torch when a job first imports it
    _WORKER_CACHE = _ModelCache()


def _worker_job(job: Job, force: bool) -> dict:
    """A pool worker runs one job (quietly: its bars would garble the batch's), reusing its loaded models."""
    with _WORKER_CACHE.installed() if job.engine and job.engine[1] else contextlib.nullcontext():
        return run_job(job, force, quiet=True)


# ---------------------------------------------------------------------------------------------
# The batch
# ---------------------------------------------------------------------------------------------


def _distributed_state():
    """accelerate's PartialState under ``accelerate launch`` with several processes, else None."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return None
    from accelerate import PartialState
    from accelerate.utils import parse_flag_from_env

    # PartialState, unlike Accelerator, does not read the launcher's CPU flag itself: without it a CPU
    # launch comes up as separate single processes that would each run every job.
    state = PartialState(cpu=parse_flag_from_env("ACCELERATE_USE_CPU"))
    if state.device.type == "cuda":
        import torch

        torch.cuda.set_device(state.device)  # "cuda" in load_pipeline then means this rank's GPU
    return state


def _append(path: Path, record: dict) -> None:
    """Append one record to a rank's report and flush it, so a kill keeps what finished."""
    with path.open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(record) + "\n")


def _merge(out_dir: Path, world: int) -> Path | None:
    """When every rank has finished, merge their reports into report.jsonl (by job); else None."""
    from pdedit.video import atomic_path

    state = out_dir / STATE_DIR
    parts = [state / f"rank-{r}-of-{world}.jsonl" for r in range(world)]
    if not all(p.with_suffix(".done").is_file() for p in parts):
        return None  # another rank is still running; the last one to finish merges
    records = [json.loads(t) for p in parts for t in p.read_text(encoding="utf-8").splitlines() if t.strip()]
    records.sort(key=lambda r: r["job"])
    report = out_dir / REPORT_NAME
    with atomic_path(report) as tmp:
        tmp.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return report


def run_batch(
    manifest: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    workers: int = 1,
    allow_outside: bool = False,
    force: bool = False,
    progress: bool = False,
) -> BatchSummary:
    """Run every job of ``manifest``, writing outputs under ``out_dir`` and a report of every job.

    Args:
        manifest: a JSONL or CSV file of jobs (see the module docstring).
        out_dir: the output folder (created when missing; its parent must exist).
        workers: processes on this machine (CPU batches); under ``accelerate launch`` keep 1.
        allow_outside: let input paths leave the manifest's folder.
        force: redo every job, replacing existing outputs (default: skip jobs whose outputs exist).
        progress: a bar over the jobs (and, in one process, each job's own bar) on stderr.

    Returns:
        The summary of this process's jobs; ``report`` is set on the process that merged the report.

    Raises:
        BadInput: for the manifest or the output folder as a whole, before any job runs.
    """
    from tqdm.auto import tqdm

    # 1. Check the manifest and the output folder; plan every job.
    if workers < 1:
        raise BadInput(f"--workers {workers} must be 1 or more")
    out = Path(out_dir).resolve()
    if out.exists() and not out.is_dir():
        raise BadInput(f"output folder {out_dir} is a file: give a folder (it is created if missing)")
    jobs = read_jobs(manifest, out, allow_outside)
    _make_out_dir(out)  # only once the manifest is known to be good
    state = _distributed_state()
    if state is not None and workers > 1:
        raise BadInput("--workers runs processes on one machine; under accelerate launch each process is a worker: "
                       "drop --workers")
    rank, world = (state.process_index, state.num_processes) if state is not None else (0, 1)

    # 2. This process's share of the jobs, and a fresh partial report for it.
    mine = jobs
    if state is not None:
        with state.split_between_processes(jobs) as share:
            mine = list(share)
    part = out / STATE_DIR / f"rank-{rank}-of-{world}.jsonl"
    part.parent.mkdir(exist_ok=True)
    part.unlink(missing_ok=True)
    part.with_suffix(".done").unlink(missing_ok=True)
    if state is not None:
        state.wait_for_everyone()  # no rank may see another's stale .done marker from an earlier run
    logger.info("rank %d of %d: %d of %d jobs", rank, world, len(mine), len(jobs))

    # 3. Run, appending each record as it finishes.
    summary = BatchSummary()
    bar = tqdm(total=len(mine), desc="jobs", unit="job", disable=not progress or rank != 0, file=sys.stderr)

    def finish(record: dict) -> None:
        record["rank"] = rank
        _append(part, record)
        summary.records.append(record)
        setattr(summary, record["status"], getattr(summary, record["status"]) + 1)
        bar.set_postfix_str(str(summary), refresh=False)
        bar.update()

    try:
        if workers > 1:
            _run_pool(mine, workers, force, finish)
        else:
            cache = _ModelCache()
            # Only a batch with a model pays for importing torch and diffusers (propagate needs neither).
            uses_models = any(job.engine and job.engine[1] for job in mine)
            with cache.installed() if uses_models else contextlib.nullcontext():
                for job in mine:
                    finish(run_job(job, force, quiet=not (progress and sys.stderr.isatty())))
    finally:
        bar.close()
    part.with_suffix(".done").touch()

    # 4. The last rank to finish merges the reports.
    summary.report = _merge(out, world)
    if summary.report is not None and world > 1:
        merged = [json.loads(t) for t in summary.report.read_text(encoding="utf-8").splitlines()]
        counts = {s: sum(r["status"] == s for r in merged) for s in ("done", "skipped", "failed")}
        summary = dataclasses.replace(summary, **counts, records=merged)
    return summary


def _run_pool(jobs: list[Job], workers: int, force: bool, finish) -> None:
    """Run jobs in ``workers`` spawned processes, each with its share of the cores and its own model cache."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    threads = max(1, (os.cpu_count() or 1) // workers)
    # spawn, not fork: forking a process that has torch's or OpenCV's threads running can deadlock.
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                             initializer=_init_worker, initargs=(threads,)) as pool:
        futures = [pool.submit(_worker_job, job, force) for job in jobs]
        try:
            for future in as_completed(futures):
                finish(future.result())
        except BaseException:
            for future in futures:
                future.cancel()
            raise
