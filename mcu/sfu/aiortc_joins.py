"""Part of the aiortc adapter: what a join costs in aiortc, made cheaper for a server.

Measured in a join storm (``benchmarks/janus_compare.py --profile``, the ``-joins-`` profile):
every new peer connection made itself an EC key and a self-signed certificate, and every DTLS
transport built an OpenSSL context from it (the key serialised and parsed again, the cipher
list set) and hashed the certificate three ways for its fingerprints; every video transceiver
built a receive-side bitrate estimator of a thousand one-millisecond buckets, even on a
subscriber's connection, which receives no video. With :func:`install`:

- the process has one DTLS certificate (a new one after a day, well within the month aiortc's
  certificates are valid), as Janus and mediasoup do. Each handshake still agrees on its own
  ephemeral (ECDHE) keys: sharing the certificate shares the identity, not the session keys.
  Its fingerprints and OpenSSL context (per SRTP profile list) are made once;
- a receiver's bitrate estimator is made at its first video packet, so only receivers that
  get video (publishers') pay for one.

Like :mod:`mcu.sfu.aiortc_adapter` this reaches into aiortc's internals
(``tests/unit/test_aiortc_adapter.py`` guards them).
"""

from __future__ import annotations

import time
from typing import Any

import aiortc.rtcrtpreceiver
from aiortc.rtcdtlstransport import RTCCertificate

CERTIFICATE_LIFETIME = 24 * 3600.0
"Seconds one process-wide certificate is handed to new connections before the next is made."

_generate = RTCCertificate.generateCertificate  # aiortc's own, for the shared one
_estimator = aiortc.rtcrtpreceiver.RemoteBitrateEstimator  # type: ignore[attr-defined]
_installed = False


class SharedCertificate(RTCCertificate):
    """aiortc's certificate, with its fingerprints and OpenSSL contexts made once."""

    _fingerprints: Any = None
    _contexts: dict[tuple[Any, ...], Any]

    def getFingerprints(self) -> Any:
        if self._fingerprints is None:
            self._fingerprints = super().getFingerprints()
        return list(self._fingerprints)

    def _create_ssl_context(self, srtp_profiles: list[Any]) -> Any:
        # An OpenSSL context is configuration only (each handshake has its own connection
        # object), so one per SRTP profile list serves every transport.
        contexts = self.__dict__.setdefault("_contexts", {})
        key = tuple(profile.openssl_profile for profile in srtp_profiles)
        context = contexts.get(key)
        if context is None:
            context = contexts[key] = super()._create_ssl_context(srtp_profiles)
        return context


class _Current:
    certificate: SharedCertificate | None = None
    made_at = 0.0


def shared_certificate() -> SharedCertificate:
    """The process's DTLS certificate (a fresh one once the current is a day old)."""
    now = time.monotonic()
    current = _Current.certificate
    if current is None or now - _Current.made_at > CERTIFICATE_LIFETIME:
        made = _generate()
        current = SharedCertificate(key=made._key, cert=made._cert)
        _Current.certificate, _Current.made_at = current, now
    return current


class LazyBitrateEstimator:
    """aiortc's receive-side bitrate estimator, made at the first packet it is given."""

    __slots__ = ("_real",)

    def __init__(self) -> None:
        self._real: Any = None

    def add(self, *args: Any, **kwargs: Any) -> Any:
        real = self._real
        if real is None:
            real = self._real = _estimator()
        return real.add(*args, **kwargs)


def install() -> None:
    """Every peer connection made from now on in this process uses the shared certificate and
    lazy estimators."""
    global _installed
    if _installed:
        return
    _installed = True
    RTCCertificate.generateCertificate = classmethod(  # type: ignore[method-assign,assignment]
        lambda cls: shared_certificate()
    )
    aiortc.rtcrtpreceiver.RemoteBitrateEstimator = LazyBitrateEstimator  # type: ignore[attr-defined,assignment]
