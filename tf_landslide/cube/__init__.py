"""The datacube layer: open and validate cubes, choose acquisitions, build channels.

Only numpy/xarray/zarr live here: nothing in this package imports TensorFlow.
"""
