"""Plain S3 calls of the team stack (boto3 with an endpoint URL): buckets, and a folder snapshot.

Nothing here is specific to the emulator: the same calls work against AWS S3 or MinIO. The
snapshot exists because moto's server keeps objects in memory only: ``lab team down`` copies the
buckets into ``DIR/s3/<bucket>/<key>`` and ``lab team up`` puts them back into a fresh emulator.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any


def client(endpoint: str, access_key: str, secret_key: str, region: str) -> Any:
    """A boto3 S3 client for ``endpoint`` (path-style addressing, which every emulator serves)."""
    import boto3
    from botocore.config import Config

    return boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=access_key,
                        aws_secret_access_key=secret_key, region_name=region,
                        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 3}))


def ensure_buckets(s3: Any, names: Iterable[str]) -> list[str]:
    """Create each bucket that does not exist yet; returns the ones created."""
    existing = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
    created = []
    for name in names:
        if name not in existing:
            s3.create_bucket(Bucket=name)
            created.append(name)
    return created


def keys(s3: Any, bucket: str) -> list[str]:
    """Every object key of ``bucket``."""
    out: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        out.extend(obj["Key"] for obj in page.get("Contents", []))
    return out


def save(s3: Any, buckets: Iterable[str], folder: Path) -> int:
    """Copy every object of ``buckets`` into ``folder/<bucket>/<key>``, replacing the previous copy
    only once the new one is complete; returns the number of objects saved."""
    staging = folder.with_name(folder.name + ".new")
    shutil.rmtree(staging, ignore_errors=True)
    count = 0
    for bucket in buckets:
        (staging / bucket).mkdir(parents=True, exist_ok=True)
        for key in keys(s3, bucket):
            target = staging / bucket / key
            target.parent.mkdir(parents=True, exist_ok=True)
            s3.download_file(bucket, key, str(target))
            count += 1
    old = folder.with_name(folder.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if folder.exists():
        folder.rename(old)
    staging.rename(folder)
    shutil.rmtree(old, ignore_errors=True)
    return count


def restore(s3: Any, folder: Path) -> int:
    """Upload ``folder/<bucket>/<key>`` into buckets that are still empty; returns objects uploaded."""
    if not folder.is_dir():
        return 0
    count = 0
    for bucket_dir in sorted(p for p in folder.iterdir() if p.is_dir()):
        ensure_buckets(s3, [bucket_dir.name])
        if keys(s3, bucket_dir.name):
            continue  # the store already holds data (a persistent S3): never overwrite it
        for path in sorted(p for p in bucket_dir.rglob("*") if p.is_file()):
            s3.upload_file(str(path), bucket_dir.name, path.relative_to(bucket_dir).as_posix())
            count += 1
    return count
