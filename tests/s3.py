"""S3 for tests: moto's server mode on a free loopback port, reached through boto3 over HTTP.

Reusable by any app's tests (the fixtures ``moto_s3`` and ``s3_storage`` in
tests/conftest.py wrap it):

    def test_something(s3_storage):           # default storage is now S3 (a fresh bucket)
        ...                                   # upload through the API as usual
        assert s3_storage.keys() == [...]     # what the bucket holds
        s3_storage.client.get_object(Bucket=s3_storage.bucket, Key=...)
        url = default_storage.url(key)        # a presigned URL, fetchable with requests

Nothing is mocked inside the process: django-storages and boto3 talk HTTP to
a real (moto) S3 endpoint, so signing, presigned URLs, missing buckets and
connection failures behave as they do against AWS or MinIO.
"""

from __future__ import annotations

import itertools
import socket
from dataclasses import dataclass, field

ACCESS_KEY = "testing-access-key"
SECRET_KEY = "testing-secret-key"
REGION = "us-east-1"
_bucket_seq = itertools.count(1)


def free_port() -> int:
    """A loopback port nothing listens on (for 'server down' tests)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MotoS3Server:
    """One moto server in a thread, on 127.0.0.1 and a port the OS picked."""

    def __init__(self):
        from moto.server import ThreadedMotoServer

        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.endpoint_url = f"http://{host}:{port}"

    def client(self):
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint_url, region_name=REGION,
                            aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY)

    def create_bucket(self, name: str | None = None) -> str:
        name = name or f"crowdlens-test-{next(_bucket_seq)}"
        self.client().create_bucket(Bucket=name)
        return name

    def stop(self) -> None:
        self._server.stop()


def storage_settings(*, bucket: str, endpoint_url: str, **overrides) -> dict:
    """The STORAGES["default"] entry config/settings.py builds when S3_BUCKET is set, aimed at the test endpoint."""
    options = {
        "bucket_name": bucket,
        "endpoint_url": endpoint_url,
        "region_name": REGION,
        "access_key": ACCESS_KEY,
        "secret_key": SECRET_KEY,
        "default_acl": None,
        "querystring_auth": True,
        "querystring_expire": 3600,
        "file_overwrite": True,
        "addressing_style": "path",
    }
    options.update(overrides)
    return {"BACKEND": "storages.backends.s3.S3Storage", "OPTIONS": options}


@dataclass
class S3Bucket:
    """A bucket the default storage now points to."""

    server: MotoS3Server
    bucket: str
    client: object = field(repr=False)

    @property
    def endpoint_url(self) -> str:
        return self.server.endpoint_url

    def keys(self) -> list[str]:
        keys = []
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket):
            keys += [obj["Key"] for obj in page.get("Contents", [])]
        return sorted(keys)

    def read(self, key: str) -> bytes:
        return self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()

    def delete_bucket(self) -> None:
        for key in self.keys():
            self.client.delete_object(Bucket=self.bucket, Key=key)
        self.client.delete_bucket(Bucket=self.bucket)
