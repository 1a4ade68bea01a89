"""The recipes (recipes/*.ipynb) run top to bottom with SMOKE=True, show pictures, and are stored clean."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat", reason="the recipes need the dev extra: pip install -e '.[dev]'")
nbclient = pytest.importorskip("nbclient", reason="the recipes need the dev extra: pip install -e '.[dev]'")
pytest.importorskip("ipykernel", reason="the recipes need the dev extra: pip install -e '.[dev]'")

RECIPES = Path(__file__).resolve().parents[1] / "recipes"
NOTEBOOKS = sorted(RECIPES.glob("*.ipynb"))
EXPECTED = {"basic_and_magic_mode", "zero_shot_editing", "instructions", "long_video_story", "sketch_finetuning"}
CELL_TIMEOUT_S = 300


@pytest.fixture(scope="module")
def this_python_kernel(tmp_path_factory):
    """A kernelspec named python3 that runs THIS interpreter, found first on the Jupyter path.

    A user-wide python3 kernelspec (another Python, without pdedit) would otherwise win; JUPYTER_PATH
    comes first in jupyter_client's search. Kernels get one torch thread: on a shared 2-core machine
    two threads spin against the neighbours' work.
    """
    root = tmp_path_factory.mktemp("jupyter")
    spec = root / "kernels" / "python3"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (pdedit tests)",
        "language": "python",
        "env": {"OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"},
    }))
    saved = {k: os.environ.get(k) for k in ("JUPYTER_PATH", "MPLBACKEND")}
    os.environ["JUPYTER_PATH"] = str(root) + os.pathsep + os.environ.get("JUPYTER_PATH", "")
    os.environ.pop("MPLBACKEND", None)  # a non-inline backend would show no plots in the notebook
    yield "python3"
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def test_every_recipe_is_there():
    assert {nb.stem for nb in NOTEBOOKS} == EXPECTED


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_stored_recipe_has_no_outputs_and_a_parameters_cell(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    dirty = [i for i, c in enumerate(code) if c.outputs or c.execution_count is not None]
    assert not dirty, f"{path.name}: code cells {dirty} have outputs; clear them before committing"
    params = [c for c in code if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1 and params[0] is code[0], f"{path.name}: the first code cell must be tagged parameters"
    for name in ("MODEL_DIR = None", "DEVICE = ", "SMOKE = True"):
        assert name in params[0].source, f"{path.name}: parameters cell lacks {name!r}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_recipe_runs_with_smoke_and_shows_pictures(path, tmp_path, this_python_kernel):
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        nb, kernel_name=this_python_kernel, timeout=CELL_TIMEOUT_S, allow_errors=False,
        resources={"metadata": {"path": str(tmp_path)}},  # the kernel's working folder: outputs land here
    )
    t0 = time.perf_counter()
    try:
        client.execute()
    except nbclient.exceptions.CellExecutionError as err:
        pytest.fail(f"{path.name} failed:\n{str(err)[-3000:]}")
    seconds = time.perf_counter() - t0
    images = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if "image/png" in o.get("data", {})]
    assert images, f"{path.name} produced no image output"
    assert (tmp_path / "outputs" / path.stem).is_dir()
    print(f"{path.name}: {seconds:.1f} s, {len(images)} images")
