"""The public API: every exported name resolves, and importing pdedit stays light."""

from __future__ import annotations

import subprocess
import sys

import pdedit


def test_every_public_name_resolves_to_its_defining_module():
    for name in pdedit.__all__:
        value = getattr(pdedit, name)
        assert value is not None, name


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
