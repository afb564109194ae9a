"""Installed, not just editable: a wheel carries every shipped stream and config, and they run from it."""

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import lifelong

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def test_a_wheel_ships_every_stream_and_config_and_runs_them_from_any_folder(tmp_path):
    source = tmp_path / "source"  # a copy, so building leaves nothing in the checkout
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    for name in ("lifelong", "streams", "configs"):
        shutil.copytree(REPO / name, source / name, symlinks=True, ignore=shutil.ignore_patterns("__pycache__"))
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", tmp_path / "dist", source], check=True,
                   timeout=300)
    wheel, = (tmp_path / "dist").glob("*.whl")
    assert wheel.name.startswith(f"lifelong-{lifelong.__version__}-")
    names = set(zipfile.ZipFile(wheel).namelist())
    for kind in ("streams", "configs"):
        shipped = {f"lifelong/shipped/{kind}/{p.name}" for p in (REPO / kind).glob("*.yaml")}
        assert shipped and shipped <= names, sorted(shipped - names)

    site = tmp_path / "site"
    subprocess.run([*pip, "install", "--no-deps", "--target", site, wheel], check=True, timeout=300)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    check = """\
import sys
from pathlib import Path
from typer.testing import CliRunner
import lifelong
from lifelong.cli import app
from lifelong.specfiles import config_files, stream_files
assert Path(lifelong.__file__).is_relative_to(sys.argv[1]), lifelong.__file__
listed = CliRunner().invoke(app, ["list", "streams"]).output
assert "INVALID" not in listed and all(name in listed for name in stream_files()), listed
for name in sorted(config_files()):
    if "fmnist" in config_files()[name].read_text() and not Path("/usr/share/datasets/fashion-mnist").is_dir():
        continue
    result = CliRunner().invoke(app, ["validate", f"configs/{name}.yaml"])
    assert result.exit_code == 0, (name, result.output)
print(len(stream_files()), len(config_files()), CliRunner().invoke(app, ["--version"]).output.strip())
"""
    done = subprocess.run([sys.executable, "-P", "-c", check, str(site)], cwd=elsewhere, capture_output=True,
                          text=True, timeout=600, env={**os.environ, "PYTHONPATH": str(site)})
    assert done.returncode == 0, done.stderr
    n_streams, n_configs, version = done.stdout.split(maxsplit=2)
    assert (int(n_streams), int(n_configs)) == (len(list((REPO / "streams").glob("*.yaml"))),
                                                len(list((REPO / "configs").glob("*.yaml"))))
    assert version.strip() == f"lifelong {lifelong.__version__}"
