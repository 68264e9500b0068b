"""Request sizes per chip and encoding, against Vertex AI's online prediction limit, measured on a chip
the export computed; the README's figures must be what the functions measure."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import tiny_export_config
from tf_landslide import export, records
from tf_landslide.serving import payloads

REPO = Path(__file__).resolve().parents[1]
LIMIT = payloads.VERTEX_ONLINE_LIMIT_BYTES


@pytest.fixture(scope="module")
def chip(tiny_cube, tmp_path_factory):
    """A 128 x 128 chip of the README's 8 channels (VV and VH before and after, DEM, slope, aspect,
    curvature) as the export computes them, from float32 records so that no value is rounded: the
    digits a client's own float32 channels have, and NaN where the cube has no data."""
    cfg = tiny_export_config(
        tiny_cube,
        tmp_path_factory.mktemp("chip128"),
        chip_size=128,
        stride=32,
        band_rows=160,
        record_dtype="float32",
    )
    manifest = export.export(cfg)
    shard = Path(cfg.records_dir) / manifest["config"]["name"] / manifest["splits"]["train"]["shards"][0]["file"]
    image, _ = records.decode_raw_batch([next(records.read_tfrecord(shard))], 128, 128, 8, "float32")
    return image.numpy()[0], tuple(manifest["channels"])


def test_the_chip_holds_what_records_hold(chip):
    image, names = chip
    assert image.shape == (128, 128, 8) and names[:4] == ("vv_before", "vv_after", "vh_before", "vh_after")
    sar, dem = image[..., :4], image[..., names.index("dem")]
    assert 0 < np.isnan(sar).mean() < 0.05 and not np.isnan(dem).any()
    assert -8 < np.nanmin(sar) and np.nanmax(sar) < 2  # natural log of linear gamma0
    assert dem.min() > 0 and (image.astype(np.float16) != image).mean() > 0.9  # elevations; float32 digits


def test_one_chip_is_over_the_limit_as_json_numbers_and_under_it_as_float16_examples(chip):
    image, names = chip
    assert LIMIT == 1_500_000  # Google's "1.5MB", read as the smaller 1,500,000 bytes
    numbers = payloads.rest_request_body(image[None]).encode()
    examples = payloads.rest_examples_body(payloads.chip_examples(image[None], names)).encode()
    assert len(numbers) == payloads.request_bytes("json_instances", image[None], names) > LIMIT
    assert len(examples) == payloads.request_bytes("json_examples_float16", image[None], names) < LIMIT
    # float16 bytes in base64 (4 characters per 3 bytes), a small header: not float32 records
    assert 4 / 3 * image.size * 2 < len(examples) < 1.01 * 4 / 3 * image.size * 2
    assert payloads.chips_per_request("json_instances", image, names) == 0


@pytest.mark.parametrize(
    "encoding", ["json_columnar", "json_examples_float16", "json_examples_float32", "grpc_examples_float16"]
)
def test_chips_per_request_is_the_most_that_fit(chip, encoding):
    image, names = chip
    count = payloads.chips_per_request(encoding, image, names)
    assert count == 0 if encoding == "json_columnar" else count > 0
    # Distinct chips (the image shifted by a pixel per chip): the count does not rest on repeats.
    chips = np.stack([np.roll(image, shift, axis=1) for shift in range(count + 1)])
    assert (
        payloads.request_bytes(encoding, chips[:count], names) <= LIMIT < payloads.request_bytes(encoding, chips, names)
    )
    one = payloads.request_bytes(encoding, image[None], names)
    assert payloads.chips_per_request(encoding, image, names, limit=one) == 1
    assert payloads.chips_per_request(encoding, image, names, limit=one - 1) == 0


def test_the_readme_states_what_the_functions_measure(chip):
    image, names = chip
    readme = " ".join((REPO / "README.md").read_text().split())
    table = payloads.size_table(image, names)
    assert " ".join(table.split()) in readme, f"README's request-size table is stale; it should read:\n{table}"
    tiles = []
    for size in (96, 64):
        tile = image[:size, :size]
        count = payloads.chips_per_request("json_instances", tile, names)
        tiles.append(f"{count} tile{'s' * (count > 1)} of {size} x {size}")
        tiles.append(f"{payloads.request_bytes('json_instances', tile[None], names):,} bytes")
    sentence = f"carry {tiles[0]} ({tiles[1]}) or {tiles[2]} ({tiles[3]} each)"
    assert sentence in readme, f"README's tile sizes are stale; it should say: {sentence}"


def test_a_client_builds_and_measures_rest_bodies_without_tensorflow(tmp_path):
    script = (
        "import sys; sys.modules['tensorflow'] = None  # any import of TensorFlow fails\n"
        "import numpy as np\n"
        "from tf_landslide.serving import payloads\n"
        "chips = np.random.default_rng(0).normal(size=(2, 32, 32, 8)).astype(np.float32)\n"
        "body = payloads.rest_examples_body(payloads.chip_examples(chips, tuple('abcdefgh')))\n"
        "assert len(body) == payloads.request_bytes('json_examples_float16', chips, tuple('abcdefgh'))\n"
        "print(payloads.chips_per_request('json_instances', chips[0], tuple('abcdefgh')))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert int(done.stdout) > 0
