"""A wheel built from the project installs into a clean environment and renders a report."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# What the build reads; the rest of the checkout (tests, .venv, instance data) stays out.
BUILD_INPUTS = ("pyproject.toml", "README.md", "enablement", "integrations", "templates")
SKIP = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "build", "dist")


@dataclass(frozen=True)
class Installed:
    """A fresh virtual environment holding the wheel (and seeing the test venv's dependencies)."""

    source: Path
    wheel: Path
    python: Path
    bin: Path
    site_packages: Path
    env: dict[str, str]
    work: Path


def run(args: list, **kwargs) -> subprocess.CompletedProcess:
    """Run a command; a failure fails the test with the command's output."""
    result = subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, timeout=300, **kwargs
    )
    assert result.returncode == 0, (
        f"{args} exited {result.returncode}\n{result.stdout}\n{result.stderr}"
    )
    return result


def build_wheel(work: Path) -> tuple[Path, Path]:
    """Copy the build inputs and build the wheel offline, with this venv's setuptools."""
    source = work / "source"
    source.mkdir()
    for name in BUILD_INPUTS:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, source / name, ignore=SKIP)
        else:
            shutil.copy2(path, source / name)
    dist = work / "dist"
    # NOTE: built from a copy so the build's build/ and egg-info never land in the checkout.
    run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index"]
        + ["--disable-pip-version-check", "-q", "-w", dist, source],
        cwd=work,
    )
    (wheel,) = dist.glob("enablement-*.whl")
    return source, wheel


def make_venv(work: Path) -> tuple[Path, Path, Path]:
    """A venv without enablement that can import the dependencies installed in this one."""
    venv = work / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", venv])
    python = venv / "bin" / "python"
    purelib = run(
        [python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"]
    ).stdout.strip()
    # NOTE: a .pth line only adds the directory to sys.path; the .pth files inside it (the
    # editable enablement's finder among them) are not processed, so the checkout stays unseen.
    ours = dict.fromkeys([sysconfig.get_path("purelib"), sysconfig.get_path("platlib")])
    (Path(purelib) / "test-dependencies.pth").write_text("\n".join(ours) + "\n")
    return python, venv / "bin", Path(purelib)


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Installed:
    """Build the wheel, make the venv, prove it cannot see the checkout, install the wheel."""
    work = tmp_path_factory.mktemp("packaging")
    started = time.perf_counter()
    source, wheel = build_wheel(work)
    python, bin_, site_packages = make_venv(work)
    env = {
        "PATH": f"{bin_}{os.pathsep}{os.environ.get('PATH', '')}",
        "LANG": "C.UTF-8",
        "HOME": str(work),
        "DATABASE_URL": f"sqlite:///{work / 'data' / 'enablement.db'}",
        "ENABLEMENT_INSTANCE_PATH": str(work / "instance"),
    }
    if "TMPDIR" in os.environ:
        env["TMPDIR"] = os.environ["TMPDIR"]
    # The cwd is the work folder: `python -c` would otherwise import the checkout's enablement.
    before = subprocess.run(
        [python, "-c", "import enablement"], capture_output=True, text=True, env=env, cwd=work
    )
    assert before.returncode != 0 and "No module named 'enablement'" in before.stderr
    run([python, "-c", "import flask, sqlalchemy, alembic, numpy, pandas"], env=env, cwd=work)
    run(
        [python, "-m", "pip", "install", "--no-deps", "--no-index", "--ignore-installed"]
        + ["--disable-pip-version-check", "-q", wheel],
        env=env,
        cwd=work,
    )
    print(f"wheel built and installed in {time.perf_counter() - started:.1f} s")
    return Installed(source, wheel, python, bin_, site_packages, env, work)


def enablement(installed: Installed, *args) -> subprocess.CompletedProcess:
    """Run the installed console script."""
    return run([installed.bin / "enablement", *args], env=installed.env, cwd=installed.work)


def test_the_wheel_holds_every_module_template_and_migration(installed):
    app = installed.source / "integrations" / "hubspot" / "app"
    names = set(zipfile.ZipFile(installed.wheel).namelist())
    expected = {
        path.relative_to(installed.source).as_posix()
        for package in ("enablement", "integrations")
        for path in (installed.source / package).rglob("*")
        # NOTE: the HubSpot app (card, webhooks) is a HubSpot project uploaded with HubSpot's CLI from the source
        # tree; the service never reads it, so it is not part of the wheel.
        if path.is_file() and app not in path.parents
    }
    expected |= {
        f"enablement/templates/{path.relative_to(installed.source / 'templates').as_posix()}"
        for path in (installed.source / "templates").rglob("*")
        if path.is_file()
    }
    assert "enablement/templates/report_coverage.html" in expected
    assert "enablement/db/migrations/env.py" in expected
    assert "enablement/db/migrations/script.py.mako" in expected
    assert any(n.startswith("enablement/db/migrations/versions/") for n in expected)
    assert sorted(expected - names) == []


def test_the_installed_copy_is_the_wheel_with_its_templates_and_migrations(installed):
    code = (
        "import enablement, enablement.db as db; "
        "print(enablement.__file__); print(enablement.TEMPLATES); print(db.MIGRATIONS); "
        "print(db.head_revision())"
    )
    module, templates, migrations, head = run(
        [installed.python, "-c", code], env=installed.env, cwd=installed.work
    ).stdout.split()
    package = installed.site_packages / "enablement"
    assert Path(module) == package / "__init__.py"
    assert Path(templates) == package / "templates"
    assert (Path(templates) / "report_coverage.html").is_file()
    assert Path(migrations) == package / "db" / "migrations"
    assert head


def test_the_installed_console_script_answers_help(installed):
    result = enablement(installed, "--help")
    assert "Usage: enablement" in result.stdout
    assert "report" in result.stdout


def test_the_installed_copy_migrates_loads_demo_data_and_renders_the_coverage_html(installed):
    assert "schema upgraded from empty" in enablement(installed, "init").stdout
    loaded = enablement(installed, "demo", "--deals", "50", "--assets", "25")
    assert "demo data loaded" in loaded.stdout
    output = installed.work / "coverage.html"
    enablement(installed, "report", "coverage", "--format", "html", "--output", output)
    html = output.read_text(encoding="utf-8")
    assert html.startswith("<!doctype html>")
    assert "<h1>Content coverage</h1>" in html
    assert "<h2>By buying stage</h2>" in html
    assert html.count("<tr>") > 5
    assert html.rstrip().endswith("</html>")
