"""The manifest an export writes last, and its human summary."""

from __future__ import annotations


def summary(manifest: dict) -> str:
    """Human summary of an export: chips per split, positive fractions, skips, time."""
    lines = [
        f"export {manifest['config']['name']}: {manifest['totals']['chips']} chips "
        f"({manifest['totals']['skipped_nodata_chips']} skipped as mostly no-data) in "
        f"{manifest.get('export_seconds', float('nan')):.1f} s"
    ]
    for split, info in manifest["splits"].items():
        lines.append(
            f"  {split:5s} {info['chips']:6d} chips  positive fraction {info['positive_fraction']:.3f}  "
            f"{len(info['shards'])} shard(s)"
        )
    return "\n".join(lines)
