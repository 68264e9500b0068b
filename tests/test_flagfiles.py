"""Flagfiles by name (tf_landslide/flagfiles.py): every spelling absl reads, paths left alone."""

from pathlib import Path

import pytest

from tf_landslide import flagfiles

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def test_a_checkout_finds_the_repository_configs_folder():
    # A wheel has them in tf_landslide/configs/ (tests/test_cli.py installs one).
    assert flagfiles.directory() == CONFIGS
    assert flagfiles.names() == sorted(p.stem for p in CONFIGS.glob("*.flags"))
    assert {"quickstart", "smoke", "vv_vh_dem_t1", "dem"} <= set(flagfiles.names())


def test_names_resolve_with_or_without_the_suffix_in_every_spelling():
    quickstart, smoke = str(CONFIGS / "quickstart.flags"), str(CONFIGS / "smoke.flags")
    argv = ["prog", "--flagfile=quickstart", "-flagfile=smoke.flags", "--flagfile", "quickstart", "--epochs=1"]
    assert flagfiles.expand_argv(argv) == [
        "prog",
        f"--flagfile={quickstart}",
        f"-flagfile={smoke}",
        "--flagfile",
        quickstart,
        "--epochs=1",
    ]


def test_paths_and_what_follows_double_dash_are_left_as_given(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "quickstart").write_text("--epochs=1\n")  # a file in the folder wins over the name
    argv = ["prog", "--flagfile=quickstart", "--flagfile=configs/quickstart.flags", "--", "--flagfile=nothing"]
    assert flagfiles.expand_argv(argv) == argv
    assert flagfiles.expand_argv(["prog", "--flagfile"]) == ["prog", "--flagfile"]  # absl reports it


def test_an_unknown_name_lists_the_names():
    with pytest.raises(flagfiles.FlagfileError, match=r"--flagfile=quickstrat: no such file.*quickstart, smoke"):
        flagfiles.expand_argv(["prog", "--flagfile=quickstrat"])
    with pytest.raises(flagfiles.FlagfileError):
        flagfiles.path("")
