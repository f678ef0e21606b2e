"""A virtualenv with Open Baton's python-vnfm-sdk 6.0.0 from PyPI, for the tests that run a third-party
VNFM on it (the real peer of the local NFVO).

The SDK needs pika 0.13 (it calls ``basic_consume(callback, queue=...)`` and passes
``heartbeat_interval``), and pika 0.13 uses the ``collections`` ABC aliases that Python 3.10 removed:
the venv gets a ``sitecustomize`` that restores them. Its declared dependency ``futures`` is a Python 2
backport, so the packages are installed without dependency resolution: the SDK, pika 0.13.1, six.

The venv is built once under the project (``.venv-sdk``, git-ignored) and reused; a marker file holds
what was installed, so a changed list rebuilds it. Building needs PyPI (as CI's ``pip install`` does).
"""

from __future__ import annotations

import fcntl
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
VENV = ROOT / ".venv-sdk"
PACKAGES = ("python-vnfm-sdk==6.0.0", "pika==0.13.1", "six")
SITECUSTOMIZE = '''"""pika 0.13 on Python >= 3.10: the collections ABC aliases it still imports."""
import collections
import collections.abc

for _name in ("Callable", "Mapping", "MutableMapping", "Sequence", "Iterable", "Set", "MutableSet"):
    if not hasattr(collections, _name):
        setattr(collections, _name, getattr(collections.abc, _name))
'''


def _marker() -> str:
    return "\n".join((sys.version.split()[0], *PACKAGES, SITECUSTOMIZE)) + "\n"


def sdk_python() -> Path:
    """The Python of the SDK venv, building the venv first when needed (a lock keeps parallel test
    processes from building it twice)."""
    python = VENV / "bin" / "python"
    ready = VENV / ".gvnfm-ready"
    VENV.parent.mkdir(parents=True, exist_ok=True)
    with open(ROOT / ".venv-sdk.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if ready.exists() and ready.read_text() == _marker() and python.exists():
            return python
        shutil.rmtree(VENV, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True, capture_output=True, timeout=300)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", "--no-deps",
                        *PACKAGES], check=True, capture_output=True, timeout=600)
        site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                              check=True, capture_output=True, text=True, timeout=60).stdout.strip()
        (Path(site) / "sitecustomize.py").write_text(SITECUSTOMIZE)
        subprocess.run([str(python), "-c", "import pika, openbaton.vnfm"], check=True, capture_output=True,
                       timeout=60)
        ready.write_text(_marker())
    return python
