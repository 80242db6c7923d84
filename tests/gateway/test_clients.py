"""The S3 tools people use, unmodified, against a real gateway: the AWS CLI, s3cmd, rclone and the
MinIO SDK. Each moves real files through and compares them byte for byte."""

from __future__ import annotations

import filecmp
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.gateway.harness import S3World, fresh_bucket_name

MiB = 1 << 20
BIN = Path(sys.executable).parent


def make_tree(root: Path) -> dict[str, bytes]:
    """A small tree with a multipart-sized file, nested folders and awkward names."""
    files = {
        "readme.txt": b"hello gateway\n",
        "empty": b"",
        "photos/cat one.jpg": os.urandom(300_000),
        "photos/2024/dog+bone.png": os.urandom(70_000),
        "deep/a/b/c/d.bin": os.urandom(5000),
        "ünïcode/naïve.txt": "naïve".encode(),
        "big.bin": os.urandom(17 * MiB + 11),
    }
    for name, data in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return files


def same_tree(left: Path, right: Path) -> None:
    def listing(root: Path) -> dict[str, bytes]:
        return {
            str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
        }

    mine, theirs = listing(left), listing(right)
    assert sorted(mine) == sorted(theirs)
    for name in mine:
        assert mine[name] == theirs[name], name


def run(
    args: list[str], env: dict[str, str], timeout: float = 300, ok: tuple[int, ...] = (0,)
) -> str:
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode in ok, f"{args[:3]} failed ({done.returncode}):\n{done.stderr[-3000:]}"
    return done.stdout


# -- the AWS CLI --------------------------------------------------------------------------------


def aws_env(world: S3World, home: Path) -> dict[str, str]:
    return {
        **os.environ,
        "AWS_ACCESS_KEY_ID": world.full.access_key,
        "AWS_SECRET_ACCESS_KEY": world.full.secret_key,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": str(home / "aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(home / "aws-credentials"),
        "HOME": str(home),
    }


def test_aws_cli_cp_sync_ls_rm(world: S3World, tmp_path: Path) -> None:
    env = aws_env(world, tmp_path)
    aws = [sys.executable, "-m", "awscli", "--endpoint-url", world.url]
    source = tmp_path / "source"
    make_tree(source)
    bucket = fresh_bucket_name("aws")
    run([*aws, "s3", "mb", f"s3://{bucket}"], env)
    run([*aws, "s3", "cp", str(source / "readme.txt"), f"s3://{bucket}/single.txt"], env)
    run([*aws, "s3", "cp", "--recursive", str(source), f"s3://{bucket}/tree/"], env)
    listed = run([*aws, "s3", "ls", "--recursive", f"s3://{bucket}/tree/"], env)
    assert "tree/photos/cat one.jpg" in listed
    assert "tree/big.bin" in listed
    top = run([*aws, "s3", "ls", f"s3://{bucket}/tree/"], env)
    assert "PRE photos/" in top
    back = tmp_path / "back"
    run([*aws, "s3", "cp", "--recursive", f"s3://{bucket}/tree/", str(back)], env)
    same_tree(source, back)
    synced = run([*aws, "s3", "sync", str(source), f"s3://{bucket}/tree/"], env)
    assert synced.strip() == "", f"a second sync uploaded again: {synced}"
    (source / "new.txt").write_bytes(b"new")
    synced = run([*aws, "s3", "sync", str(source), f"s3://{bucket}/tree/"], env)
    assert "new.txt" in synced and "big.bin" not in synced
    down = tmp_path / "down"
    run([*aws, "s3", "sync", f"s3://{bucket}/tree/", str(down)], env)
    same_tree(source, down)
    run([*aws, "s3", "rm", "--recursive", f"s3://{bucket}/tree/"], env)
    # `aws s3 ls` exits 1 when it finds nothing.
    left = run([*aws, "s3", "ls", "--recursive", f"s3://{bucket}/tree/"], env, ok=(0, 1))
    assert left.strip() == ""


# -- s3cmd --------------------------------------------------------------------------------------


def test_s3cmd(world: S3World, tmp_path: Path) -> None:
    config = tmp_path / "s3cfg"
    config.write_text(
        "[default]\n"
        f"access_key = {world.full.access_key}\n"
        f"secret_key = {world.full.secret_key}\n"
        f"host_base = {world.host}\nhost_bucket = {world.host}\n"
        "use_https = False\nsignature_v2 = False\nbucket_location = us-east-1\n"
    )
    s3cmd = [sys.executable, str(BIN / "s3cmd"), "-c", str(config), "--no-progress"]
    env = {**os.environ, "HOME": str(tmp_path)}
    source = tmp_path / "source"
    make_tree(source)
    bucket = fresh_bucket_name("s3cmd")
    run([*s3cmd, "mb", f"s3://{bucket}"], env)
    run([*s3cmd, "put", str(source / "big.bin"), f"s3://{bucket}/big.bin"], env)  # multipart
    run([*s3cmd, "sync", f"{source}/", f"s3://{bucket}/tree/"], env)
    listed = run([*s3cmd, "ls", "--recursive", f"s3://{bucket}/"], env)
    assert f"s3://{bucket}/tree/photos/cat one.jpg" in listed
    got = tmp_path / "got.bin"
    run([*s3cmd, "get", f"s3://{bucket}/big.bin", str(got)], env)
    assert filecmp.cmp(source / "big.bin", got, shallow=False)
    down = tmp_path / "down"
    run([*s3cmd, "sync", f"s3://{bucket}/tree/", f"{down}/"], env)
    same_tree(source, down)
    info = run([*s3cmd, "info", f"s3://{bucket}/tree/readme.txt"], env)
    assert "MD5 sum" in info
    run([*s3cmd, "del", "--recursive", "--force", f"s3://{bucket}/"], env)
    run([*s3cmd, "rb", f"s3://{bucket}"], env)


# -- rclone -------------------------------------------------------------------------------------

RCLONE = shutil.which("rclone")


@pytest.mark.skipif(RCLONE is None, reason="rclone is not installed (Debian: apt install rclone)")
def test_rclone_copy_sync_check(world: S3World, tmp_path: Path) -> None:
    assert RCLONE is not None
    # rclone's AWS SDK cannot load a custom CA bundle on its transport, and the gateway speaks
    # plain HTTP on loopback: a machine-wide AWS_CA_BUNDLE only stops it from starting.
    inherited = {k: v for k, v in os.environ.items() if k != "AWS_CA_BUNDLE"}
    env = {
        **inherited,
        "RCLONE_CONFIG": str(tmp_path / "rclone.conf"),
        "RCLONE_CONFIG_MD_TYPE": "s3",
        "RCLONE_CONFIG_MD_PROVIDER": "Other",
        "RCLONE_CONFIG_MD_ACCESS_KEY_ID": world.full.access_key,
        "RCLONE_CONFIG_MD_SECRET_ACCESS_KEY": world.full.secret_key,
        "RCLONE_CONFIG_MD_ENDPOINT": world.url,
        "RCLONE_CONFIG_MD_REGION": "us-east-1",
        "RCLONE_CONFIG_MD_FORCE_PATH_STYLE": "true",
    }
    source = tmp_path / "source"
    make_tree(source)
    bucket = fresh_bucket_name("rclone")
    rclone = [RCLONE, "--s3-upload-cutoff", "8M", "--s3-chunk-size", "5M"]
    run([*rclone, "mkdir", f"md:{bucket}"], env)
    run([*rclone, "copy", str(source), f"md:{bucket}/tree"], env)
    run([*rclone, "check", str(source), f"md:{bucket}/tree"], env)
    (source / "photos" / "cat one.jpg").unlink()
    (source / "added.txt").write_bytes(b"added")
    run([*rclone, "sync", str(source), f"md:{bucket}/tree"], env)
    run([*rclone, "check", str(source), f"md:{bucket}/tree"], env)
    down = tmp_path / "down"
    run([*rclone, "copy", f"md:{bucket}/tree", str(down)], env)
    same_tree(source, down)
    listed = run([*rclone, "lsf", "-R", f"md:{bucket}/tree"], env)
    assert "photos/cat one.jpg" not in listed and "added.txt" in listed


# -- the MinIO SDK ------------------------------------------------------------------------------


def test_minio_sdk(world: S3World, tmp_path: Path) -> None:
    import io

    from minio import Minio
    from minio.commonconfig import CopySource
    from minio.deleteobjects import DeleteObject

    client = Minio(
        world.host,
        access_key=world.full.access_key,
        secret_key=world.full.secret_key,
        secure=False,
        region="us-east-1",
    )
    bucket = fresh_bucket_name("minio")
    client.make_bucket(bucket)
    assert client.bucket_exists(bucket)
    data = os.urandom(6 * MiB + 9)
    client.put_object(bucket, "known.bin", io.BytesIO(data), len(data))
    # Unknown length: the SDK switches to a multipart upload with 5 MiB parts.
    client.put_object(bucket, "stream.bin", io.BytesIO(data), -1, part_size=5 * MiB)
    for name in ("known.bin", "stream.bin"):
        answer: Any = client.get_object(bucket, name)
        try:
            assert answer.read() == data
        finally:
            answer.close()
            answer.release_conn()
    stat = client.stat_object(bucket, "stream.bin")
    assert stat.size == len(data)
    assert stat.etag.endswith("-2")
    client.copy_object(bucket, "copy.bin", CopySource(bucket, "known.bin"))
    path = tmp_path / "copy.bin"
    client.fget_object(bucket, "copy.bin", str(path))
    assert path.read_bytes() == data
    names = sorted(o.object_name for o in client.list_objects(bucket, recursive=True))
    assert names == ["copy.bin", "known.bin", "stream.bin"]
    url = client.presigned_get_object(bucket, "known.bin")
    import urllib.request

    with urllib.request.urlopen(url, timeout=30) as fetched:
        assert fetched.read() == data
    errors = list(client.remove_objects(bucket, [DeleteObject(n) for n in names]))
    assert not errors
    client.remove_bucket(bucket)
    assert not client.bucket_exists(bucket)
