"""A join's fixed costs are paid once per process: one DTLS certificate (renewed after a day)
with its fingerprints and OpenSSL context, and bitrate estimators only for receivers that get
video. (Every in-process server of the integration tests handshakes with it.)"""

from __future__ import annotations

from aiortc import RTCPeerConnection
from aiortc.rtcdtlstransport import SRTP_PROFILES

from mcu.sfu import aiortc_joins


async def test_connections_share_one_certificate_its_fingerprints_and_contexts() -> None:
    aiortc_joins.install()
    first, second = RTCPeerConnection(), RTCPeerConnection()
    try:
        a = first._RTCPeerConnection__certificates[0]  # type: ignore[attr-defined]
        b = second._RTCPeerConnection__certificates[0]  # type: ignore[attr-defined]
        assert a is b and isinstance(a, aiortc_joins.SharedCertificate)
        assert a.getFingerprints() == b.getFingerprints()
        assert {f.algorithm for f in a.getFingerprints()} >= {"sha-256"}
        assert a._create_ssl_context(SRTP_PROFILES) is b._create_ssl_context(list(SRTP_PROFILES))
        assert a._create_ssl_context(SRTP_PROFILES[:1]) is not a._create_ssl_context(SRTP_PROFILES)
    finally:
        await first.close()
        await second.close()


def test_a_day_old_certificate_is_replaced_for_new_connections() -> None:
    now = aiortc_joins.shared_certificate()
    assert aiortc_joins.shared_certificate() is now
    aiortc_joins._Current.made_at -= aiortc_joins.CERTIFICATE_LIFETIME + 1
    renewed = aiortc_joins.shared_certificate()
    assert renewed is not now and renewed.getFingerprints() != now.getFingerprints()


def test_the_bitrate_estimator_is_made_at_the_first_packet() -> None:
    lazy = aiortc_joins.LazyBitrateEstimator()
    assert lazy._real is None
    lazy.add(abs_send_time=0, arrival_time_ms=1000, payload_size=1200, ssrc=1)
    assert lazy._real is not None
