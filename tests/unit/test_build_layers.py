"""The layer build compiles bytecode with a Python 3.12, and says so when it cannot: an interpreter
that is there but broken (a pyenv shim of a version not selected) stops the build instead of
leaving every module without bytecode."""

from __future__ import annotations

import stat
import sys
from pathlib import Path

import pytest

from scripts.build_layers import BytecodeError, bytecode_compiler, compile_layer, pins


def layer(tmp_path: Path) -> Path:
    package = tmp_path / "layer" / "python" / "package"
    package.mkdir(parents=True)
    for name in ("a", "b", "c"):
        (package / f"{name}.py").write_text(f"{name} = 1\n")
    return tmp_path / "layer"


def broken_interpreter(tmp_path: Path) -> Path:
    """What `python3.12` is on a machine whose pyenv has 3.12 installed but not selected."""
    shim = tmp_path / "python3.12"
    shim.write_text("#!/bin/sh\necho 'pyenv: python3.12: command not found' >&2\nexit 127\n")
    shim.chmod(shim.stat().st_mode | stat.S_IEXEC)
    return shim


def test_a_broken_python312_stops_the_build_saying_why(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHON312", str(broken_interpreter(tmp_path)))
    with pytest.raises(BytecodeError) as refused:
        bytecode_compiler()
    assert "does not run as Python 3.12 (pyenv: python3.12: command not found)" in str(refused.value)
    assert "PYTHON312" in str(refused.value) and "--no-compile" in str(refused.value)


def test_a_pyenv_312_is_found_behind_a_broken_shim(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given no PYTHON312, a broken `python3.12` shim first on PATH, and a 3.12 that pyenv installed
    monkeypatch.delenv("PYTHON312", raising=False)
    monkeypatch.setenv("PATH", f"{broken_interpreter(tmp_path).parent}:/usr/bin:/bin")
    installed = tmp_path / "pyenv" / "versions" / "3.12.9" / "bin" / "python3.12"
    installed.parent.mkdir(parents=True)
    installed.write_text("#!/bin/sh\necho 3.12\n")
    installed.chmod(installed.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PYENV_ROOT", str(tmp_path / "pyenv"))
    # When the build looks for its compiler, Then it takes pyenv's 3.12 rather than stopping
    assert bytecode_compiler() == str(installed)
    # And with nothing installed behind the shim, it stops saying why, as before
    monkeypatch.setenv("PYENV_ROOT", str(tmp_path / "none"))
    with pytest.raises(BytecodeError, match=r"pyenv: python3\.12: command not found"):
        bytecode_compiler()


def test_another_python_is_not_taken_for_312(monkeypatch: pytest.MonkeyPatch) -> None:
    if sys.version_info[:2] == (3, 12):
        pytest.skip("this interpreter is 3.12")
    monkeypatch.setenv("PYTHON312", sys.executable)
    with pytest.raises(BytecodeError, match=r"does not run as Python 3\.12"):
        bytecode_compiler()


def test_a_layer_left_without_bytecode_stops_the_build(tmp_path: Path) -> None:
    # Given an interpreter that exits without compiling anything
    folder = layer(tmp_path)
    with pytest.raises(BytecodeError) as refused:
        compile_layer(str(broken_interpreter(tmp_path)), folder)
    assert "compiled 0 of the 3 modules" in str(refused.value) and "command not found" in str(refused.value)


def test_a_working_interpreter_compiles_every_module(tmp_path: Path) -> None:
    folder = layer(tmp_path)
    assert compile_layer(sys.executable, folder) == 3
    assert len(list(folder.rglob("__pycache__/*.pyc"))) == 3


def test_pins_drop_the_comments_pip_would_refuse(tmp_path: Path) -> None:
    # Given requirements with a comment line and a pin that explains itself in a trailing comment
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("# the library's pins\njoserfc==1.8.0  # the authorizer's tokens\nnumpy==2.3.4\n\n")
    # When the build reads its pins
    # Then each is the bare requirement, as pip takes it on its command line
    assert pins(requirements) == {"joserfc": "joserfc==1.8.0", "numpy": "numpy==2.3.4"}


def test_every_shipped_pin_is_a_bare_requirement() -> None:
    # The library's own file: what the layer build hands to pip, one requirement each
    assert all(" " not in line and "#" not in line for line in pins().values())
