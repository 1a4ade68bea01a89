"""`pdedit batch`: jobs from a manifest, a report of each, resume, bad input, worker processes, accelerate."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from cli_helpers import assert_refused, run, snapshot
from pdedit.video import iter_frames, probe

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}

pytestmark = pytest.mark.usefixtures("single_thread_torch")


@pytest.fixture
def folder(tmp_path, sample_clip) -> Path:
    """A job folder: the 12-frame sample clip as clip.mp4."""
    (tmp_path / "jobs").mkdir()
    (tmp_path / "jobs" / "clip.mp4").write_bytes(sample_clip.read_bytes())
    return tmp_path / "jobs"


def _edit(output: str, spec: str = "auto:sepia", **more) -> dict:
    return {"command": "edit", "video": "clip.mp4", "first_edit": spec, "output": output, **more}


def _manifest(folder: Path, rows: list, name: str = "jobs.jsonl") -> Path:
    path = folder / name
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def _report(out: Path) -> list[dict]:
    return [json.loads(t) for t in (out / "report.jsonl").read_text().splitlines()]


def _frames(path: Path) -> np.ndarray:
    return np.stack(list(iter_frames(path)))


# ---- one process: results, a report line per job, bad jobs recorded and the batch going on -------


def test_good_jobs_run_and_each_bad_line_is_one_failed_record(folder, tmp_path):
    (tmp_path / "secret.mp4").write_bytes((folder / "clip.mp4").read_bytes())
    manifest = _manifest(folder, [
        _edit("a.mp4", "auto:hue:degrees=40", last_edit="auto:night"),
        _edit("sub/b.mp4", "auto:cartoon", preview="sub/b.png", frames=6),
        "{not json",
        _edit("c.mp4", frist_edit="auto:sepia"),
        {**_edit("d.mp4"), "video": "../secret.mp4"},
        _edit("e.mp4", tau=3),
        {"command": "paint", "output": "f.mp4"},
        _edit("a.mp4", "auto:night"),  # the same output as line 1
        _edit("../g.mp4"),
        _edit("h.mp4", force=True),
    ])
    out = tmp_path / "out"
    result = run("batch", manifest, "-o", out)
    assert result.exit_code == 2, result.output
    assert result.stdout.strip() == f"2 done, 0 skipped, 8 failed: {out / 'report.jsonl'}"
    assert result.stderr.strip().splitlines()[-1].startswith("error: 8 job(s) failed, e.g. line 3: not JSON")
    report = _report(out)
    assert [r["line"] for r in report] == list(range(1, 11))
    assert [r["status"] for r in report] == ["done", "done"] + ["failed"] * 8
    errors = [r["error"] or "" for r in report]
    for line, words in ((3, "not JSON"), (4, "unknown key 'frist_edit' for edit (did you mean 'first_edit'?)"),
                        (5, "outside the manifest's folder"), (6, "'--tau': 3"), (7, "command 'paint' is unknown"),
                        (8, "also written by the job on line 1"), (9, "stay inside it"), (10, "pass --force to pdedit batch")):
        assert words in errors[line - 1], (line, errors[line - 1])
    assert all("\n" not in e for e in errors)
    assert report[0]["engine"] == "propagate" and report[0]["timings"]["render"] > 0 and report[0]["seconds"] > 0
    # The outputs of the good jobs, as the edit command makes them; nothing for the others.
    assert probe(out / "a.mp4").frame_count == 12 and probe(out / "sub" / "b.mp4").frame_count == 6
    assert (out / "sub" / "b.png").is_file()
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file() and ".batch" not in p.parts)
    assert written == ["a.mp4", "report.jsonl", "sub/b.mp4", "sub/b.png"]
    assert not (tmp_path / "g.mp4").exists()
    # A job is the edit command itself: the same frames as running it by hand.
    direct = run("edit", folder / "clip.mp4", "--first-edit", "auto:hue:degrees=40", "--last-edit", "auto:night",
                 "-o", tmp_path / "direct.mp4")
    assert direct.exit_code == 0, direct.output
    assert np.array_equal(_frames(out / "a.mp4"), _frames(tmp_path / "direct.mp4"))


def test_csv_manifest_inputs_outside_the_folder_with_allow_outside_and_force(folder, tmp_path):
    (tmp_path / "elsewhere.mp4").write_bytes((folder / "clip.mp4").read_bytes())
    manifest = folder / "jobs.csv"
    manifest.write_text("command,video,first_edit,frames,no_audio,output\n"
                        "edit,clip.mp4,auto:sepia,4,true,a.mp4\n"
                        f"edit,{tmp_path / 'elsewhere.mp4'},auto:night,3,,b.mp4\n")
    refused = run("batch", manifest, "-o", tmp_path / "out")
    assert refused.exit_code == 2
    assert [r["status"] for r in _report(tmp_path / "out")] == ["done", "failed"]
    assert "outside the manifest's folder" in _report(tmp_path / "out")[1]["error"]
    allowed = run("batch", manifest, "-o", tmp_path / "out", "--allow-outside")
    assert allowed.exit_code == 0, allowed.output
    assert [r["status"] for r in _report(tmp_path / "out")] == ["skipped", "done"]
    assert probe(tmp_path / "out" / "a.mp4").frame_count == 4 and probe(tmp_path / "out" / "b.mp4").frame_count == 3
    first = (tmp_path / "out" / "a.mp4").stat().st_mtime_ns
    again = run("batch", manifest, "-o", tmp_path / "out", "--allow-outside", "--force")
    assert again.exit_code == 0 and [r["status"] for r in _report(tmp_path / "out")] == ["done", "done"]
    assert (tmp_path / "out" / "a.mp4").stat().st_mtime_ns != first


def test_an_edit_jobs_comparison_video_is_an_output_inside_the_output_folder(folder, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a compare path taken as given would land here
    manifest = _manifest(folder, [_edit("a.mp4", frames=4, compare="cmp/a_vs_source.mp4")])
    out = tmp_path / "out"
    assert run("batch", manifest, "-o", out).exit_code == 0
    assert probe(out / "cmp" / "a_vs_source.mp4").frame_count == 4 and not (tmp_path / "cmp").exists()
    assert run("batch", manifest, "-o", out).exit_code == 0
    assert _report(out)[0]["status"] == "skipped"  # both outputs exist: the job is finished


@pytest.mark.parametrize("case", ["empty", "out is a file", "missing", "not jsonl or csv"])
def test_a_bad_manifest_or_output_folder_is_refused_before_any_job(folder, tmp_path, case):
    manifest = _manifest(folder, [_edit("a.mp4")])
    out = tmp_path / "out"
    words = {"empty": "lists no jobs", "out is a file": "is a file", "missing": "does not exist",
             "not jsonl or csv": "JSONL"}[case]
    if case == "empty":
        manifest.write_text("\n \n")
    elif case == "out is a file":
        out.write_text("x")
    elif case == "missing":
        manifest = folder / "nope.jsonl"
    else:
        manifest = manifest.rename(folder / "jobs.txt")
    before = snapshot(tmp_path)
    assert_refused(run("batch", manifest, "-o", out), before, tmp_path, words)


# ---- resume ------------------------------------------------------------------------------------


def test_rerun_after_kill_9_skips_finished_jobs_and_finishes_the_rest(folder, tmp_path):
    manifest = _manifest(folder, [_edit(f"{i}.mp4", spec, frames=4) for i, spec in
                                  enumerate(["auto:sepia", "auto:night", "auto:cartoon"])])
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "pdedit", "batch", str(manifest), "-o", str(out)], env=ENV,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while not (out / "0.mp4").exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert (out / "0.mp4").exists() and not (out / "report.jsonl").exists()  # killed before the end
    first = (out / "0.mp4").stat().st_mtime_ns

    result = run("batch", manifest, "-o", out)
    assert result.exit_code == 0, result.output
    report = _report(out)
    assert report[0]["status"] == "skipped" and all(r["status"] in ("done", "skipped") for r in report)
    assert (out / "0.mp4").stat().st_mtime_ns == first  # a finished output is never redone
    assert all(probe(out / f"{i}.mp4").frame_count == 4 for i in range(3))
    assert not list(out.glob(".*.partial*"))  # no half-written file of the killed job is left


# ---- models: loaded once per process, same result as the command ---------------------------------


def test_generate_and_model_edit_jobs_load_the_model_once_and_match_the_cli(folder, tmp_path, tiny_model_dir,
                                                                             monkeypatch):
    from pdedit.pipeline import PixelDancePipeline
    from pdedit.video import save_image

    import shutil

    shutil.copytree(tiny_model_dir, folder / "model")  # a symlink would resolve outside the job folder
    first = np.tile(np.linspace(0, 255, 64, dtype=np.uint8)[None, :, None], (64, 1, 3))
    save_image(folder / "first.png", first)
    common = {"command": "generate", "model": "model", "prompt": "a pan", "first": "first.png", "steps": 2,
              "frames": 4}
    manifest = _manifest(folder, [
        {**common, "scheduler": "euler", "output": "g1.mp4"},
        {**common, "output": "g2.mp4", "seed": 3},  # must not inherit job 1's scheduler
        {"command": "edit", "video": "clip.mp4", "model": "model", "first_edit": "auto:sepia", "steps": 2,
         "frames": 4, "size": "64x48", "output": "e.mp4"},
    ])
    loads = []
    real = PixelDancePipeline.from_pretrained.__func__
    monkeypatch.setattr(PixelDancePipeline, "from_pretrained",
                        classmethod(lambda cls, *a, **k: loads.append(a) or real(cls, *a, **k)))
    result = run("batch", manifest, "-o", tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert [r["engine"] for r in _report(tmp_path / "out")] == ["pixeldance"] * 3
    assert len(loads) == 1
    direct = run("generate", "--model", tiny_model_dir, "--prompt", "a pan", "--first", folder / "first.png",
                 "--steps", 2, "--frames", 4, "--seed", 3, "-o", tmp_path / "g2.mp4")
    assert direct.exit_code == 0, direct.output
    assert np.array_equal(_frames(tmp_path / "out" / "g2.mp4"), _frames(tmp_path / "g2.mp4"))


# ---- several processes ---------------------------------------------------------------------------


def test_workers_run_jobs_in_two_processes_with_the_same_results(folder, tmp_path):
    specs = ["auto:sepia", "auto:night", "auto:cartoon", "auto:pencil"]
    manifest = _manifest(folder, [_edit(f"{i}.mp4", s, frames=4) for i, s in enumerate(specs)])
    result = run("batch", manifest, "-o", tmp_path / "pool", "--workers", 2)
    assert result.exit_code == 0, result.output
    report = _report(tmp_path / "pool")
    assert [r["status"] for r in report] == ["done"] * 4
    assert len({r["pid"] for r in report}) == 2 and os.getpid() not in {r["pid"] for r in report}
    one = _manifest(folder, [_edit("0.mp4", specs[0], frames=4)], "one.jsonl")
    assert run("batch", one, "-o", tmp_path / "single").exit_code == 0
    assert np.array_equal(_frames(tmp_path / "pool" / "0.mp4"), _frames(tmp_path / "single" / "0.mp4"))


def test_two_accelerate_processes_split_the_jobs_and_merge_one_report(folder, tmp_path):
    manifest = _manifest(folder, [_edit(f"{i}.mp4", s, frames=4) for i, s in
                                  enumerate(["auto:sepia", "auto:night", "auto:cartoon"])] + ["oops"])
    out = tmp_path / "out"
    # --multi_gpu with ACCELERATE_USE_CPU: several CPU processes over gloo, the code path of several GPUs.
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
           "--main_process_port", str(29700 + os.getpid() % 200), "-m", "pdedit", "batch", str(manifest), "-o", str(out)]
    proc = subprocess.run(cmd, env={**ENV, "ACCELERATE_USE_CPU": "true"}, capture_output=True, text=True, timeout=240)
    assert proc.returncode != 0  # the bad line fails its job, and so the launch
    assert "1 failed" in proc.stdout + proc.stderr, proc.stderr[-2000:]
    report = _report(out)
    assert [r["status"] for r in report] == ["done", "done", "done", "failed"]
    assert [r["rank"] for r in report] == [0, 0, 1, 1]  # split_between_processes: contiguous halves
    assert len({r["pid"] for r in report}) == 2
    assert sorted(p.name for p in (out / ".batch").iterdir()) == [
        "rank-0-of-2.done", "rank-0-of-2.jsonl", "rank-1-of-2.done", "rank-1-of-2.jsonl"]
    assert all(probe(out / f"{i}.mp4").frame_count == 4 for i in range(3))


def test_help_ends_with_an_example_that_works(folder, monkeypatch):
    text = run("batch", "--help").stdout.rstrip().splitlines()
    assert text[-2].strip() == "Example:" and text[-1].strip().startswith("pdedit batch")
    monkeypatch.chdir(folder)
    _manifest(folder, [_edit("sepia.mp4")])
    result = run(*shlex.split(text[-1])[1:])
    assert result.exit_code == 0, result.output
    assert (folder / "edits" / "sepia.mp4").is_file()
