"""Export one channel configuration of a cube to sharded TFRecords and a manifest.

The work runs in three stages:

1. *plan* (this process): open and validate the cube, choose acquisitions, count landslide
   pixels per chip from the labels (read in bands), assign splits per location, pick the
   chips worth reading (positives, and seeded negative candidates when asked), and, for
   positive chips only, cut each split's chips (row order) into shards;
2. *scan* (Dask, one task per band of rows, in row order): read only the planes the channels
   need, over the columns the band's candidate chips span (every column for whole-scene
   statistics), build the channels, drop mostly-empty chips, compute the normalisation
   moments the statistics use, and hand over the kept chips (in the record dtype): in memory
   when the workers are threads of this process, else spooled to ``.work/``;
3. *write*: planned shards are written by this process while the scan goes on, each as soon
   as the bands holding its next chips are done (``shards.ShardStream``); with negatives, the
   shards are cut after the scan and written by one Dask task each. Each shard is written to
   a temporary name and renamed, so a shard file is complete or absent; its writer hashes it.

The manifest is written last, atomically, and only after every shard is finished; a run
that stops early leaves no manifest, and a re-run reuses finished shards (and spooled bands);
their bytes are a pure function of the plan, so re-running gives identical files.

Where each part lives (imports point down this list, never up):

- ``run``: ``export`` from start to end (choosing the chips and their statistics after the
  scan), and the export to a URL (staged locally, then uploaded);
- ``manifest``: what the manifest holds (``describe_export``), and its summary;
- ``output``: reusing, resuming or clearing what earlier runs left in the output folder;
- ``executors``: where tasks run (this process, a Dask cluster or scheduler), glibc's malloc settings;
- ``write``: the shards, streamed during the scan or cut and written after it;
- ``scan``: the scan's tasks (``scan_band``), the loop that feeds the shard streams, its totals;
- ``chip_stage``: the compiled pass that keeps, lays out and measures a window's chips;
- ``plan``: the job, the candidate chips, the scan's windows and the shards;
- ``settings``, ``files``, ``progress``: checks and fingerprint, atomic files, progress bars.
"""

from tf_landslide.export.executors import WORKER_MALLOC_ENV, executor, malloc_advice
from tf_landslide.export.manifest import summary
from tf_landslide.export.plan import BandTask
from tf_landslide.export.run import export
from tf_landslide.export.scan import BandBuffers, SharedCube, scan_band
from tf_landslide.export.settings import MANIFEST_NAME, SHARD_LAYOUT, WORK_DIR, ExportError, comparable_settings

__all__ = [
    "MANIFEST_NAME",
    "SHARD_LAYOUT",
    "WORKER_MALLOC_ENV",
    "WORK_DIR",
    "BandBuffers",
    "BandTask",
    "ExportError",
    "SharedCube",
    "comparable_settings",
    "executor",
    "export",
    "malloc_advice",
    "scan_band",
    "summary",
]
