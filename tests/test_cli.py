"""The command line (tf_landslide/cli): one ``tf-landslide`` command with subcommands, flagfiles
by name, and the package built as a wheel, installed into a fresh environment and running the
quick start and the map from an empty folder with nothing of the repository in sight."""

import ast
import dataclasses
import importlib.util
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from tf_landslide import cli
from tf_landslide.cube import synthetic

REPO = Path(__file__).resolve().parents[1]
# What building the wheel reads; the copy keeps the build's own folders (build/, *.egg-info) out of
# the repository and leaves out whatever else a checkout holds (.venv, cubes, runs).
BUILD_INPUTS = ("setup.py", "setup.cfg", "pyproject.toml", "README.md", "LICENSE", "tf_landslide", "configs")


def run(command, cwd=REPO, env=None):
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)


def checkout_env() -> dict:
    """This checkout's package in a subprocess started in any folder."""
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path, "TF_CPP_MIN_LOG_LEVEL": "2"}


def test_help_lists_every_command_without_importing_tensorflow():
    listing = "import sys\nfrom tf_landslide import cli\ntry:\n    cli.main(['tf-landslide', '--help'])\n"
    listing += "except SystemExit as stop:\n    print('exit', stop.code, 'tensorflow' in sys.modules)"
    done = run([sys.executable, "-c", listing], env=checkout_env())
    assert done.stdout.rstrip().endswith("exit 0 False"), done.stderr[-2000:]
    for name in cli.COMMANDS:
        assert f"\n  {name} " in done.stdout
    assert "quickstart" in done.stdout  # the packaged flagfiles' names


def test_every_command_runs_a_function_of_the_package():
    for name, (target, _) in cli.COMMANDS.items():
        module, _, function = target.partition(":")
        spec = importlib.util.find_spec(module)  # imports the parent packages, not the command's module
        tree = ast.parse(Path(spec.origin).read_text())
        assert function in {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}, name


def test_an_unknown_command_or_flagfile_name_is_a_usage_error(tmp_path):
    unknown = run([sys.executable, "-m", "tf_landslide", "trian"], cwd=tmp_path, env=checkout_env())
    assert unknown.returncode == 1 and "unknown command 'trian'" in unknown.stderr and "  train " in unknown.stderr
    misspelt = run([sys.executable, "-m", "tf_landslide", "check", "--flagfile=quickstrat"], tmp_path, checkout_env())
    assert misspelt.returncode == 1 and "Traceback" not in misspelt.stderr
    assert "--flagfile=quickstrat: no such file" in misspelt.stderr and "quickstart, smoke" in misspelt.stderr


def test_a_command_finds_a_flagfile_by_name_from_any_folder(tiny_cube, tmp_path):
    done = run([sys.executable, "-m", "tf_landslide", "check", tiny_cube, "--flagfile=smoke"], tmp_path, checkout_env())
    assert done.returncode == 0, done.stdout + done.stderr[-2000:]
    assert "configurations (" in done.stdout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """``pip wheel .`` of this checkout, without build isolation (nothing downloaded)."""
    root = tmp_path_factory.mktemp("wheel")
    source = root / "source"
    source.mkdir()
    for name in BUILD_INPUTS:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(REPO / name, source / name)
    built = run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q"]
        + [str(source), "-w", str(root / "dist")]
    )
    assert built.returncode == 0, built.stdout[-2000:] + built.stderr[-3000:]
    (found,) = (root / "dist").glob("tf_landslide-*.whl")
    return found


def test_the_wheel_holds_the_package_and_its_flagfiles_and_no_export_package(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    assert {n.split("/")[0] for n in names} == {"tf_landslide", wheel.name.split("-py3")[0] + ".dist-info"}
    flagfile_names = sorted(n.removeprefix("tf_landslide/configs/") for n in names if n.endswith(".flags"))
    assert flagfile_names == sorted(p.name for p in (REPO / "configs").glob("*.flags"))
    assert all(n.startswith("tf_landslide/configs/") for n in names if n.endswith(".flags"))
    assert "tf_landslide/cli/__init__.py" in names and "tf_landslide/maps/static/README.md" in names
    (entry_points,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
    scripts = zipfile.ZipFile(wheel).read(entry_points).decode()
    for line in (
        "tf-landslide = tf_landslide.cli:main",
        "tf-landslide-export = tf_landslide.cli.export:run",
        "tf-landslide-build-cube = tf_landslide.cube.build.__main__:run",
    ):
        assert line in scripts


@pytest.mark.slow
def test_installed_commands_run_the_quick_start_and_the_map_from_an_empty_folder(wheel, tmp_path):
    venv = tmp_path / "venv"
    assert run([sys.executable, "-m", "venv", str(venv)]).returncode == 0
    bin_dir = venv / ("Scripts" if os.name == "nt" else "bin")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env.update(PATH=os.pathsep.join([str(bin_dir), env.get("PATH", "")]), TF_CPP_MIN_LOG_LEVEL="2")
    installed = run([str(bin_dir / "pip"), "install", "--no-deps", "--no-index", "-q", str(wheel)], tmp_path, env)
    assert installed.returncode == 0, installed.stderr[-3000:]
    # TensorFlow and the rest from this environment rather than downloaded again: a path line in a
    # .pth adds a folder without reading the .pth files in it, so this checkout's editable install
    # (a finder those files start) stays out. Written after the install, so pip sees none of it.
    where = run([str(bin_dir / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"])
    ours = {sysconfig.get_paths()[kind] for kind in ("purelib", "platlib")}
    (Path(where.stdout.strip()) / "_tf_landslide_test_dependencies.pth").write_text("\n".join(sorted(ours)) + "\n")

    empty = tmp_path / "empty"
    empty.mkdir()
    probe = "import importlib.util, tf_landslide; print(tf_landslide.__file__, importlib.util.find_spec('export'))"
    located = run([str(bin_dir / "python"), "-c", probe], empty, env)
    assert located.returncode == 0, located.stderr[-2000:]
    package_file, export_spec = located.stdout.split()
    assert Path(package_file).is_relative_to(venv) and export_spec == "None"
    for script in ("tf-landslide", "tf-landslide-export", "tf-landslide-build-cube"):
        assert (bin_dir / script).exists()

    # The quick start's flagfile by name, on a tiny cube with enough acquisitions for its four each
    # side, 32 px chips, ResNet-18 and one epoch; its folders (records/, runs/) land in the empty folder.
    spec = dataclasses.replace(synthetic.SIZES["tiny"], timesteps_per_orbit=8)
    cube = synthetic.write_cube(spec, tmp_path / "cube.zarr")
    common = ["--flagfile=quickstart", f"--cube={cube}", "--chip_size=32", "--backbone=resnet18", "--progress=false"]
    trained = run(["tf-landslide", "train", *common, "--epochs=1"], empty, env)
    assert trained.returncode == 0, trained.stderr[-3000:]
    assert "running the export first" in trained.stderr
    evaluated = run(["tf-landslide", "eval", *common], empty, env)
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    mapped = run(["tf-landslide", "predict", *common, "--map_window=128", "--map_overlap=32"], empty, env)
    assert mapped.returncode == 0, mapped.stderr[-3000:]
    assert (empty / "records" / "vv_vh_dem_t4" / "manifest.json").exists()
    assert (empty / "runs" / "quickstart" / "eval" / "metrics.json").exists()
    assert (empty / "runs" / "quickstart" / "map" / "index.html").exists()
    assert "whole scene: PR-AUC" in mapped.stdout
