"""Phase products (cube/build/phase.py): HyP3-named pairs found and placed on timepair; errors."""

import pytest

from tf_landslide.cube.build.phase import find_pairs
from tf_landslide.cube.schema import CubeError

STEM = "S1AA_20180824T204012_20180905T204013_VVP012_INT80_G_ueF_1A2B"


def touch(folder, *names):
    for name in names:
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")


def test_pairs_are_found_in_subfolders_and_labelled_by_their_two_days(tmp_path):
    later = "S1AA_20180905T204013_20180917T204013_VVP012_INT80_G_ueF_9F9F"
    touch(tmp_path, f"{STEM}/{STEM}_corr.tif", f"{STEM}/{STEM}_wrapped_phase.tif", f"{STEM}/{STEM}_amp.tif")
    touch(tmp_path, f"{later}_corr.tif", f"{later}_wrapped_phase.tif", "readme.md.txt")
    pairs = find_pairs(str(tmp_path))
    assert [pair.label for pair in pairs] == ["20180824_20180905", "20180905_20180917"]
    assert pairs[0].coherence.name.endswith("_corr.tif") and pairs[0].interferogram.name.endswith("_wrapped_phase.tif")


def test_a_pair_missing_one_product_is_named(tmp_path):
    touch(tmp_path, f"{STEM}_corr.tif")
    with pytest.raises(CubeError, match=rf"{STEM}_corr.tif has no interferogram file beside it"):
        find_pairs(str(tmp_path))


def test_a_folder_without_products_or_no_folder_says_what_is_expected(tmp_path):
    with pytest.raises(CubeError, match="holds no \\*_corr.tif"):
        find_pairs(str(tmp_path))
    with pytest.raises(CubeError, match="is not a folder"):
        find_pairs(str(tmp_path / "missing"))
