"""docs/install.md's wheel path: build the wheel, install it with an extra into a new venv.

Offline: the wheel is built without build isolation (hatchling comes with the dev group),
and the new venv sees this environment's packages through a .pth file, so pip resolves
the dependencies and the extra from what is installed here and downloads nothing.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run(*args: str | Path, cwd: Path = ROOT) -> str:
    # Without PYTHONPATH, which would put a source tree before the installed package.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run(
        [str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, f"{args} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def test_wheel_installs_with_an_extra_into_a_new_venv(tmp_path):
    """The built wheel installs as `mistral-workflows[gateway] @ file://...` in a fresh venv:
    the package, its live page, py.typed and the command come from the wheel."""
    dist = tmp_path / "dist"
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", dist, ".")
    (wheel,) = dist.glob("mistral_workflows-*.whl")

    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    site = run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])")
    here = sysconfig.get_paths()["purelib"]
    # After the venv's own site-packages, so that the wheel's package is the one imported.
    (Path(site.strip()) / "zz_outer_env.pth").write_text(here + "\n")

    requirement = f"mistral-workflows[gateway] @ {wheel.as_uri()}"
    run(sys.executable, "-m", "pip", "--python", python, "install", "-q", "--no-index", requirement)

    check = (
        "import importlib.resources as r, mistral_workflows as m, mistral_workflows.gateway as g;"
        "g.create_app; p = r.files('mistral_workflows');"
        "print(m.__file__);"
        "print((p / 'py.typed').is_file(), (p / 'gateway' / 'static' / 'live.html').is_file())"
    )
    location, resources = run(python, "-c", check, cwd=tmp_path).splitlines()
    assert Path(location).is_relative_to(env_dir)
    assert resources == "True True"
    assert "usage: mistral-workflows" in run(env_dir / "bin" / "mistral-workflows", "--help")
