"""The output folder before an export: reuse a finished export whose shards are intact, resume an
unfinished one made with the same settings, and clear what an earlier run left that cannot be
reused (other settings with --overwrite, shards cut another way, partial files of dead runs)."""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from pathlib import Path

from tf_landslide import storage
from tf_landslide.export.files import atomic_write_bytes
from tf_landslide.export.settings import MANIFEST_NAME, SHARD_LAYOUT, WORK_DIR, ExportError

log = logging.getLogger("tf_landslide.export")


def _existing_manifest(out_dir: Path) -> dict | None:
    path = out_dir / MANIFEST_NAME
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ExportError(f"{path} is not valid JSON ({error}); pass --overwrite to export again") from error


def _verify_shards(out_dir: Path, manifest: dict) -> list[str]:
    """Problems with the shards a manifest lists (missing, wrong count or checksum)."""
    problems = []
    for split in manifest["splits"].values():
        for shard in split["shards"]:
            path = out_dir / shard["file"]
            if not path.exists():
                problems.append(f"{path} is missing")
            elif path.stat().st_size != shard["bytes"] or storage.sha256(path) != shard["sha256"]:
                problems.append(f"{path} does not match its checksum")
    return problems


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # somebody else's process
        return True
    return True


def prepare_output(out_dir: Path, fingerprint: str, overwrite: bool) -> dict | None:
    """Return an up-to-date manifest to reuse, or make the folder ready for this export."""
    manifest = _existing_manifest(out_dir)
    work = out_dir / WORK_DIR
    plan_path = work / "plan.json"
    if manifest is not None and not overwrite:
        if manifest.get("fingerprint") != fingerprint:
            raise ExportError(
                f"{out_dir} holds an export made with other settings (see its {MANIFEST_NAME}); "
                "pass --overwrite to replace it or choose another --records_dir"
            )
        problems = _verify_shards(out_dir, manifest)
        if not problems:
            return manifest
        log.warning(
            "the finished export in %s is damaged (%s): rebuilding the bad shards", out_dir, "; ".join(problems)
        )
    plan = json.loads(plan_path.read_text()) if plan_path.exists() else None
    if plan is not None and not overwrite and plan.get("fingerprint") != fingerprint:
        raise ExportError(
            f"{out_dir} holds an unfinished export made with other settings; "
            "pass --overwrite to discard it or choose another --records_dir"
        )
    if plan is not None:
        layout = plan.get("shard_layout")
    else:
        layout = manifest["records"].get("shard_layout") if manifest is not None else None
    shards = list(out_dir.glob("*-of-?????"))
    if shards and layout != SHARD_LAYOUT and not overwrite:
        log.warning("%s holds shards of an earlier version, cut another way: writing them again", out_dir)
    if (overwrite or layout != SHARD_LAYOUT) and out_dir.exists():
        # The manifest goes first: from here on no manifest can vouch for these shards.
        (out_dir / MANIFEST_NAME).unlink(missing_ok=True)
        shutil.rmtree(work, ignore_errors=True)
        for shard in shards:
            shard.unlink()
    else:
        (out_dir / MANIFEST_NAME).unlink(missing_ok=True)
    for partial in out_dir.glob("*.partial-*"):  # unfinished files of killed runs
        owner = re.search(r"\.partial-(\d+)", partial.name)
        if owner and not _running(int(owner.group(1))):
            partial.unlink()
    work.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(plan_path, json.dumps({"fingerprint": fingerprint, "shard_layout": SHARD_LAYOUT}).encode())
    return None
