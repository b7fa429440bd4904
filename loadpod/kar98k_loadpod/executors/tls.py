"""Client TLS contexts shared by the executors, built once per executor (never per request)."""

from __future__ import annotations

import logging
import os
import ssl

import certifi

_CERTIFI = certifi.where()  # containers without a system CA store still verify

log = logging.getLogger(__name__)


def client_context(*, verify: bool, alpn: list[str] | None = None) -> ssl.SSLContext:
    """A client context that verifies against the system store, certifi and `SSL_CERT_FILE`.

    `verify=False` (tlsInsecureSkipVerify) accepts any certificate and host name.
    """
    if verify:
        ctx = ssl.create_default_context()  # honours SSL_CERT_FILE / SSL_CERT_DIR
        ctx.load_verify_locations(cafile=_CERTIFI)
        extra = os.environ.get("SSL_CERT_FILE")
        if extra and os.path.isfile(extra):
            try:
                ctx.load_verify_locations(cafile=extra)
            except (OSError, ssl.SSLError) as exc:
                log.warning("SSL_CERT_FILE %s not loaded: %s", extra, exc)
    else:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if alpn:
        ctx.set_alpn_protocols(alpn)
    return ctx


def grpc_root_certificates() -> bytes | None:
    """Roots for grpcs: None (grpcio's bundled roots) unless `SSL_CERT_FILE` adds some.

    grpcio takes one PEM bundle, so an extra file is appended to certifi's public roots.
    """
    path = os.environ.get("SSL_CERT_FILE")
    if not path or not os.path.isfile(path):
        return None
    pems = []
    for name in (_CERTIFI, path):
        if name:
            with open(name, "rb") as fh:
                pems.append(fh.read())
    return b"\n".join(pems)
