"""Every command in the README's bash/sh/console blocks runs, in order, and makes the files it names.

The blocks run one after another in one temporary folder (later sections use the clip and the tiny model
that earlier ones make), each as a bash script with ``set -euo pipefail``. ``pip install`` lines are
skipped (the test runs inside the installed environment), ``python -m pytest`` lines are replaced by a check
that pytest is there (no recursion into the suite), and ``pdedit app`` is started on a free port, waited
for until it serves its page, then stopped.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shlex
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
FENCE = re.compile(r"^```(bash|sh|console)[ \t]*\n(.*?)^```", re.S | re.M)
TEST_COMMAND = 'pip install -e ".[dev]" && python -m pytest -q'
OUTPUT_FLAGS = ("-o", "--output", "--preview", "--out", "--sheet", "--output-dir")
BLOCK_TIMEOUT_S = 300

# Started in the background by the test: waits for the app's page, then stops it (exit 0 when it served).
SERVE_CHECK = """\
import subprocess, sys, time, urllib.request
port, cmd = sys.argv[1], sys.argv[2:]
app = subprocess.Popen(cmd)
try:
    for _ in range(240):
        if app.poll() is not None:
            sys.exit(f"{' '.join(cmd)} exited with {app.returncode} before serving")
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2).read(100)
            break
        except OSError:
            time.sleep(0.5)
    else:
        sys.exit(f"{' '.join(cmd)} did not serve http://127.0.0.1:{port}/ within 120 s")
finally:
    app.terminate()
    app.wait(20)
"""


def shell_blocks(text: str) -> list[tuple[str, str]]:
    """(language, body) of every fenced bash/sh/console block, in order."""
    return [(m.group(1), m.group(2)) for m in FENCE.finditer(text)]


def logical_lines(lang: str, body: str) -> list[str]:
    """Lines of a block with backslash continuations joined; console blocks keep only their `$ ` lines."""
    lines, current = [], ""
    for raw in body.splitlines():
        if lang == "console" and not current:
            if not raw.startswith("$ "):
                continue
            raw = raw[2:]
        current += raw[:-1] + " " if raw.endswith("\\") else raw
        if not raw.endswith("\\"):
            lines.append(current)
            current = ""
    return lines


def _free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def to_script(lines: list[str]) -> tuple[str, list[str]]:
    """The block as a bash script for the test, and the paths its commands name as outputs."""
    script, outputs, heredoc = ["set -euo pipefail"], [], None
    for line in lines:
        if heredoc is not None:  # inside a here-document: copy verbatim up to its terminator
            script.append(line)
            heredoc = None if line.strip() == heredoc else heredoc
            continue
        here = re.search(r"<<-?\s*['\"]?(\w+)['\"]?", line)
        if here:
            heredoc = here.group(1)
        command = line.split("  #")[0].strip()
        if not command or command.startswith("#"):
            continue
        if "python -m pytest" in command:
            script.append('python -c "import pytest"')  # the suite itself is what is running this
            continue
        if re.match(r"(python -m )?pip install", command):
            continue
        words = shlex.split(command.split("<<")[0])
        if words[:2] == ["pdedit", "app"] and importlib.util.find_spec("gradio") is None:
            continue  # the app is an optional extra; tests/test_app.py skips the same way
        if words[:2] == ["pdedit", "app"]:
            port = str(_free_port())  # the README's port may be taken here
            if "--port" in words:
                words[words.index("--port") + 1] = port
            else:
                words += ["--port", port]
            script.append(shlex.join(["python", "serve_check.py", port, *words]))
            continue
        script.append(line)
        outputs += named_outputs(words)
    return "\n".join(script) + "\n", outputs


def named_outputs(words: list[str]) -> list[str]:
    """Files and folders a command says it writes: -o/--output/--preview/--out/--sheet/--output-dir, the
    OUTPUT of `pdedit sample` and `pdedit model init`, and the target of `cat > FILE`."""
    found = [words[i + 1] for i, w in enumerate(words[:-1]) if w in OUTPUT_FLAGS]
    positional = [w for w in words[2:] if not w.startswith("-")]
    if words[:2] == ["pdedit", "sample"] and positional:
        found.append(positional[0])
    if words[:3] == ["pdedit", "model", "init"]:
        found.append(words[-1])
    if words[:1] == ["cat"] and ">" in words:
        found.append(words[words.index(">") + 1])
    return found


def test_readme_has_the_ci_test_command_verbatim():
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    blocks = [body for _, body in shell_blocks(README.read_text(encoding="utf-8"))]
    assert any(TEST_COMMAND in body.splitlines() for body in blocks), "README lost its test command"
    ci_line = next(line for line in ci.splitlines() if "python -m pytest" in line)
    assert ci_line.replace("pip install -q ", "pip install ") == TEST_COMMAND, "README and .ci/run test differently"


def test_readme_pictures_exist():
    text = README.read_text(encoding="utf-8")
    pictures = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert pictures, "the README shows no pictures"
    missing = [p for p in pictures if not (ROOT / p).is_file()]
    assert not missing, f"README pictures missing: {missing}"


def test_every_readme_command_runs_and_makes_its_outputs(tmp_path):
    blocks = shell_blocks(README.read_text(encoding="utf-8"))
    assert len(blocks) >= 5, "expected the README's set-up and task blocks"
    (tmp_path / "serve_check.py").write_text(SERVE_CHECK, encoding="utf-8")
    env = dict(os.environ)
    # `pdedit` and `python` are this environment's; nothing may reach a model hub.
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", OMP_NUM_THREADS="1")
    for k, (lang, body) in enumerate(blocks):
        script, outputs = to_script(logical_lines(lang, body))
        try:
            run = subprocess.run(["bash", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True,
                                 timeout=BLOCK_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            pytest.fail(f"README block {k + 1} ran over {BLOCK_TIMEOUT_S} s:\n{body}")
        assert run.returncode == 0, (f"README block {k + 1} failed (exit {run.returncode}):\n{body}\n"
                                     f"--- stderr ---\n{run.stderr[-3000:]}")
        missing = [p for p in outputs if not (tmp_path / p).exists()]
        assert not missing, f"README block {k + 1} did not make {missing}:\n{body}"
