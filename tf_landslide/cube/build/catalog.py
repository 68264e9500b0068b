"""Where the items come from: a STAC API (Planetary Computer by default) or a local static catalog.

Both give a list of ``pystac.Item`` for a collection, an area and a time range, and everything
after the search is the same code. pystac-client searches APIs only, so a static catalog is
searched here by walking it with pystac and keeping the items whose bbox meets the area and
whose time falls in the range, as the API does.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pystac

from tf_landslide.cube.schema import CubeError

Bbox = tuple[float, float, float, float]


def is_api(stac: str) -> bool:
    """A STAC API URL, as against a static catalog (a ``catalog.json``, local or remote, or its folder)."""
    return stac.startswith(("http://", "https://")) and not stac.endswith(".json")


def is_planetary_computer(stac: str) -> bool:
    return "planetarycomputer.microsoft.com" in stac


def signer(stac: str):
    """The item modifier a source needs: Planetary Computer's assets need SAS tokens to be read."""
    if is_planetary_computer(stac):
        import planetary_computer

        return planetary_computer.sign_inplace
    return None


def url_signer(stac: str):
    """For odc-stac's ``patch_url``: sign each asset URL as it is read (SAS tokens expire in an hour or so)."""
    if is_planetary_computer(stac):
        import planetary_computer

        return planetary_computer.sign
    return None


def describe_query(stac: str, collection: str, bbox: Bbox, times: tuple[pd.Timestamp, pd.Timestamp] | None) -> str:
    """The query in words, for messages: which catalogue, collection, area and time range."""
    area = ",".join(f"{v:.5f}" for v in bbox)
    when = f", datetime {_interval(times)}" if times else ""
    return f"collection {collection!r} in {stac}, bbox {area}{when}"


def search(stac: str, collection: str, bbox: Bbox, times: tuple[pd.Timestamp, pd.Timestamp] | None = None) -> list:
    """The items of ``collection`` meeting ``bbox`` (WGS 84) within ``times`` (UTC, inclusive)."""
    if is_api(stac):
        import pystac_client

        client = pystac_client.Client.open(stac, modifier=signer(stac))
        query = client.search(collections=[collection], bbox=bbox, datetime=_interval(times) if times else None)
        items = list(query.items())
    else:
        items = [item for item in _static_items(stac, collection) if _meets(item, bbox, times)]
    return sorted(items, key=lambda item: (item_time(item), item.id))


def _interval(times: tuple[pd.Timestamp, pd.Timestamp]) -> str:
    return "/".join(t.strftime("%Y-%m-%dT%H:%M:%SZ") for t in times)


def _static_items(stac: str, collection: str) -> list[pystac.Item]:
    location = stac
    if "://" not in stac:
        path = Path(stac)
        if path.is_dir():
            path = path / "catalog.json"
        if not path.exists():
            raise CubeError(f"--stac={stac!r}: no STAC catalog there (give a catalog.json, its folder or an API URL)")
        location = str(path)
    root = pystac.Catalog.from_file(location)
    child = root.get_child(collection, recursive=True)
    if child is None:
        names = sorted(c.id for c in root.get_all_collections())
        raise CubeError(f"the catalog {stac!r} has no collection {collection!r}; it has: {', '.join(names) or 'none'}")
    return list(child.get_items(recursive=True))


def item_time(item: pystac.Item) -> pd.Timestamp:
    """An item's time (its ``datetime``, or the start of its range) in UTC, without a zone."""
    when = item.datetime or item.common_metadata.start_datetime
    return pd.Timestamp(when).tz_convert("UTC").tz_localize(None)


def _meets(item: pystac.Item, bbox: Bbox, times: tuple[pd.Timestamp, pd.Timestamp] | None) -> bool:
    if item.bbox is None:
        return False
    box = item.bbox
    west, south, east, north = (box[0], box[1], box[3], box[4]) if len(box) == 6 else box  # 3-D: z in 2 and 5
    if east < bbox[0] or west > bbox[2] or north < bbox[1] or south > bbox[3]:
        return False
    return times is None or times[0] <= item_time(item) <= times[1]
