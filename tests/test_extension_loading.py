"""Importing bdb_ext without a usable _C fails loudly with rebuild instructions (no Python fallback)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import bdb_ext


# An editable install puts a finder ahead of sys.path; drop it so the copy in cwd is what imports.
_IMPORT_COPY = (
    "import sys\n"
    "sys.meta_path[:] = [f for f in sys.meta_path if not getattr(f, '__module__', '').startswith('__editable__')]\n"
    "import bdb_ext\n"
)


def _import_copy(cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(cwd))
    return subprocess.run(
        [sys.executable, "-c", _IMPORT_COPY], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


def test_build_info_reports_what_was_built():
    import torch

    info = bdb_ext.build_info()
    assert info["torch_version"] == torch.__version__
    assert isinstance(info["cuda"], bool)
    if info["cuda"]:
        assert info["cuda_version"] and info["cuda_archs"]
    else:
        assert info["cuda_version"] is None and info["cuda_archs"] == ""


def test_missing_extension_fails_with_rebuild_hint(tmp_path):
    package = Path(bdb_ext.__file__).parent
    shutil.copytree(package, tmp_path / "bdb_ext", ignore=shutil.ignore_patterns("*.so", "__pycache__"))
    result = _import_copy(tmp_path)
    assert result.returncode != 0
    assert "bdb_ext._C could not be loaded" in result.stderr
    assert "pip install --no-build-isolation --force-reinstall" in result.stderr


def test_extension_built_for_another_torch_is_refused(tmp_path):
    package = Path(bdb_ext.__file__).parent
    shutil.copytree(package, tmp_path / "bdb_ext", ignore=shutil.ignore_patterns("*.so", "__pycache__"))
    (tmp_path / "bdb_ext" / "_C.py").write_text(
        "def build_info():\n    return {'torch_version': '1.0.0', 'cuda': False, 'cuda_version': None, 'cuda_archs': '', 'debug': False}\n"
    )
    result = _import_copy(tmp_path)
    assert result.returncode != 0
    assert "was built against torch 1.0.0" in result.stderr
    assert "Rebuild bdb_ext against the installed torch" in result.stderr
