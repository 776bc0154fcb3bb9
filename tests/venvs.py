"""Virtual environments layered on the test environment: they reach its packages (torch, pytest, ...)
through a .pth file, so making one costs a second, not an install of torch."""

from __future__ import annotations

import site
import subprocess
import sys
from pathlib import Path


def layered_python(venv: Path, patch: str | None = None) -> Path:
    """The interpreter of a new venv that sees this one's site-packages; with ``patch``, a module every
    interpreter start imports (a .pth line), as a patched build of torch would be."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    purelib = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], capture_output=True, text=True
    ).stdout.strip()
    Path(purelib, "_lenet_tests_base.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    if patch is not None:
        Path(purelib, "_lenet_tests_patch.py").write_text(patch)
        Path(purelib, "_lenet_tests_patch.pth").write_text("import _lenet_tests_patch\n")
    return python
