"""How the builder asks odc-stac for VV and VH: read blocks of whole written chunks."""

import pytest

from tf_landslide.cube.build.backscatter import READ_BLOCK_PIXELS, read_chunk


@pytest.mark.parametrize("chunk", [32, 64, 500, 512, 1000, 2048, 3000])
def test_read_blocks_are_whole_written_chunks_of_about_the_read_block(chunk):
    block = read_chunk(chunk)
    assert block % chunk == 0  # each dask chunk writes whole zarr chunks
    assert block == chunk or READ_BLOCK_PIXELS // 2 < block <= READ_BLOCK_PIXELS
