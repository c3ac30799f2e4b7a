"""Build the configured ``ObjectStore`` from settings.

``storage_url`` unset → ``<data_dir>/files``; ``file:///path`` → that directory; ``memory://`` →
in-process (tests); ``s3://bucket/prefix`` → any S3-compatible service, configured by
``storage_options``: ``endpoint``, ``region``, ``access_key_id``, ``secret_access_key``,
``path_style`` (``true`` for MinIO/SeaweedFS), ``allow_http``. ``storage_url_mode`` chooses
between presigned S3 URLs and gateway-signed URLs.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from obstore.store import LocalStore, MemoryStore, S3Store

from imagegate.settings import Settings
from imagegate.storage.obstore_backend import ObstoreObjectStore
from imagegate.storage.signing import UrlSigner

__all__ = ["create_object_store"]

_TRUE = {"1", "true", "yes", "on"}


def create_object_store(
    settings: Settings, signer: UrlSigner, *, busy_puts_in_place: bool = False
) -> ObstoreObjectStore:
    """``busy_puts_in_place``: see ``ObstoreObjectStore`` (a local directory only)."""
    url = settings.storage_url or str(Path(settings.data_dir).resolve() / "files")
    parts = urlsplit(url)
    if parts.scheme in ("", "file"):
        root = Path(parts.path if parts.scheme else url)
        root.mkdir(parents=True, exist_ok=True)
        store = LocalStore(root, mkdir=True)
        return ObstoreObjectStore(
            store,
            signer,
            keeps_attributes=False,
            local_root=root.resolve(),
            busy_puts_in_place=busy_puts_in_place,
        )
    if parts.scheme == "memory":
        return ObstoreObjectStore(MemoryStore(), signer, keeps_attributes=True)
    if parts.scheme == "s3":
        return ObstoreObjectStore(
            _s3_store(parts.netloc, parts.path.strip("/"), settings.storage_options),
            signer,
            keeps_attributes=True,
            presign=settings.storage_url_mode == "presigned",
        )
    raise ValueError(f"storage_url: unsupported scheme {parts.scheme!r} (use file://, s3://)")


def _s3_store(bucket: str, prefix: str, options: dict[str, str]) -> S3Store:
    config: dict[str, str] = {}
    for name in ("endpoint", "region", "access_key_id", "secret_access_key", "session_token"):
        if options.get(name):
            config[name] = options[name]
    path_style = options.get("path_style", "").lower() in _TRUE
    allow_http = options.get("allow_http", "").lower() in _TRUE
    if not allow_http and config.get("endpoint", "").startswith("http://"):
        raise ValueError("storage_options.endpoint is http://; set allow_http=true to permit it")
    return S3Store(
        bucket,
        prefix=prefix or None,
        virtual_hosted_style_request=not path_style,
        client_options={"allow_http": allow_http},
        **config,  # type: ignore[arg-type]
    )
