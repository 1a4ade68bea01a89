"""The public API: every exported name resolves, and importing pdedit stays light."""

from __future__ import annotations

import importlib
import inspect
import subprocess
import sys

import pdedit


def test_every_public_name_resolves_to_its_defining_module():
    for name, module in pdedit._EXPORTS.items():
        value = getattr(pdedit, name)
        assert value is getattr(importlib.import_module(module), name), name
        if inspect.isfunction(value) or inspect.isclass(value):
            # defined there (or in a submodule of that package), not imported from somewhere else
            assert value.__module__ == module or value.__module__.startswith(module + "."), (
                f"{name} is defined in {value.__module__}, exported from {module}")


def test_unknown_name_is_an_attribute_error():
    try:
        pdedit.no_such_function  # noqa: B018
    except AttributeError as err:
        assert "no_such_function" in str(err)
    else:
        raise AssertionError("pdedit.no_such_function did not raise")


def test_importing_pdedit_and_the_cli_does_not_import_torch():
    code = "import sys, pdedit, pdedit.cli; print('torch' in sys.modules, 'diffusers' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
