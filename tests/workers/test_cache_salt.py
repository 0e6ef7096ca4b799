"""The per-tenant cache_salt: HMAC-SHA256(secret, tenant id), so salts differ per tenant and per deployment and
cannot be derived from a tenant id without the secret; an empty secret sends none."""

import hashlib
import hmac

from workers.settings import DEV_CACHE_SALT_SECRET, WorkerSettings


def worker_settings(secret: str) -> WorkerSettings:
    return WorkerSettings(database_url="sqlite://", blob_url="file:///tmp", inference_url="http://127.0.0.1:1/v1",
                          cache_salt_secret=secret)


def test_salt_is_the_hmac_of_the_tenant_under_the_secret():
    s = worker_settings("s3cret")
    salt = s.cache_salt("tenant-a")
    assert salt == hmac.new(b"s3cret", b"tenant-a", hashlib.sha256).hexdigest() and len(salt) == 64
    assert salt == s.cache_salt("tenant-a") != s.cache_salt("tenant-b")
    assert salt != worker_settings("other").cache_salt("tenant-a")  # another deployment, other salts
    assert salt != hashlib.sha256(b"tenant-a").hexdigest() and "tenant-a" not in salt  # not guessable from the id


def test_the_dev_default_salts_and_an_empty_secret_sends_none():
    assert WorkerSettings().cache_salt_secret.get_secret_value() == DEV_CACHE_SALT_SECRET
    assert worker_settings(DEV_CACHE_SALT_SECRET).cache_salt("t") is not None
    assert worker_settings("").cache_salt("t") is None
