"""An S3 API on 127.0.0.1 (moto's server mode) and the environment that points s3fs at it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pytest

#: What s3fs/botocore read to reach an S3-compatible store (the README's Deployment section).
TEST_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "moto-test", "AWS_SECRET_ACCESS_KEY": "moto-test",
                    "AWS_DEFAULT_REGION": "us-east-1"}


@dataclass(frozen=True)
class LocalS3:
    endpoint_url: str
    bucket: str

    def env(self) -> dict[str, str]:
        return {"AWS_ENDPOINT_URL": self.endpoint_url, **TEST_CREDENTIALS}

    def client(self):
        """A boto3 S3 client: lists what the pipeline stored, through the S3 API itself."""
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint_url,
                            aws_access_key_id=TEST_CREDENTIALS["AWS_ACCESS_KEY_ID"],
                            aws_secret_access_key=TEST_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
                            region_name=TEST_CREDENTIALS["AWS_DEFAULT_REGION"])

    def keys(self, prefix: str = "") -> list[str]:
        paginator = self.client().get_paginator("list_objects_v2")
        return sorted(item["Key"] for page in paginator.paginate(Bucket=self.bucket,
                                                                 Prefix=prefix)
                      for item in page.get("Contents", []))


@contextmanager
def local_s3(monkeypatch: pytest.MonkeyPatch, bucket: str = "sipipeline") -> Iterator[LocalS3]:
    """moto's S3 server on a free 127.0.0.1 port, one bucket, and the AWS env set for s3fs."""
    moto_server = pytest.importorskip(
        "moto.moto_server.threaded_moto_server",
        reason="moto[server] is not installed (pip install -e '.[deploy]')")
    pytest.importorskip("s3fs", reason="s3fs is not installed (pip install -e '.[deploy]')")
    import s3fs

    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    s3 = LocalS3(endpoint_url=f"http://{host}:{port}", bucket=bucket)
    for name, value in s3.env().items():
        monkeypatch.setenv(name, value)
    # s3fs caches filesystem objects (and their endpoint) per process: start from a clean cache.
    s3fs.S3FileSystem.clear_instance_cache()
    s3.client().create_bucket(Bucket=bucket)
    try:
        yield s3
    finally:
        s3fs.S3FileSystem.clear_instance_cache()
        server.stop()
