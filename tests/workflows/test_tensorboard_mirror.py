"""TensorBoard's mirror of remote logs against a real S3 endpoint: event files arrive, hostile keys stay out."""

from __future__ import annotations

from pathlib import Path

import boto3

from trainflow.workflows.tensorboard import local_logdir


def test_mirror_fetches_events_and_never_writes_outside_for_dotdot_keys(
    s3_bucket: str, aws_env: str, tmp_path: Path
) -> None:
    bucket = s3_bucket.removeprefix("s3://")
    s3 = boto3.client("s3", endpoint_url=aws_env, region_name="us-east-1")
    s3.put_object(Bucket=bucket, Key="run/logs/events.out.tfevents.1", Body=b"event")
    s3.put_object(Bucket=bucket, Key="run/logs/../../../../escape.txt", Body=b"x")
    cache = tmp_path / "deep" / "er" / "cache"
    local, mirror = local_logdir(f"{s3_bucket}/run/logs/", cache)
    assert mirror is not None
    assert mirror.sync_once() == 1
    assert (local / "events.out.tfevents.1").read_bytes() == b"event"
    assert [p.name for p in tmp_path.rglob("escape.txt")] == []
    assert mirror.sync_once() == 0  # the refused key is not retried on every refresh


def test_mirror_skips_a_key_that_is_also_a_folder_and_keeps_mirroring_the_rest(
    s3_bucket: str, aws_env: str, tmp_path: Path
) -> None:
    bucket = s3_bucket.removeprefix("s3://")
    s3 = boto3.client("s3", endpoint_url=aws_env, region_name="us-east-1")
    s3.put_object(Bucket=bucket, Key="run/logs/eval", Body=b"a file")
    s3.put_object(Bucket=bucket, Key="run/logs/eval/events.out.tfevents.2", Body=b"eval event")
    s3.put_object(Bucket=bucket, Key="run/logs/events.out.tfevents.1", Body=b"event")
    local, mirror = local_logdir(f"{s3_bucket}/run/logs/", tmp_path / "cache")
    assert mirror is not None
    assert mirror.sync_once() == 2  # before: a raw FileExistsError ended the mirror's thread
    assert (local / "events.out.tfevents.1").read_bytes() == b"event"
    assert mirror.sync_once() == 0
