"""Blob storage: content-addressed blobs per tenant in S3 (MinIO) or a local folder."""

from pipeline.storage.base import BlobRef, BlobStore, blob_key, parse_key
from pipeline.storage.factory import BlobUrl, blob_store_from_url, parse_blob_url
from pipeline.storage.local import LocalBlobStore

__all__ = ["BlobRef", "BlobStore", "BlobUrl", "LocalBlobStore", "blob_key", "blob_store_from_url", "parse_blob_url",
           "parse_key"]
