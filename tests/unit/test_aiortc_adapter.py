"""Fails loudly if an aiortc/aioice upgrade moves the private internals the adapter enters.

mcu/sfu/aiortc_adapter.py (with its parts mcu/sfu/aiortc_send.py and mcu/sfu/aiortc_joins.py)
and mcu/sfu/ice.py are the only modules that touch these names.
"""

from __future__ import annotations

import inspect
import time

import aioice
import aioice.ice
import aiortc
import aiortc.rtcicetransport
import aiortc.rtcrtpreceiver
from aiortc import RTCPeerConnection
from aiortc.clock import current_ms
from aiortc.rtcdtlstransport import SRTP_PROFILES, RTCDtlsTransport
from aiortc.rtcrtpreceiver import RTCRtpReceiver
from aiortc.rtcrtpsender import RTCRtpSender

from mcu.sfu.aiortc_adapter import NTP_UNIX_OFFSET


def test_pinned_versions() -> None:
    assert aiortc.__version__ == "1.16.0"


def test_what_aiortc_joins_replaces() -> None:
    # mcu/sfu/aiortc_joins.py: the certificate a connection makes, the context a transport
    # builds from it, the estimator a receiver makes (and only calls add on)
    import aiortc.rtcpeerconnection

    pc_init = inspect.getsource(aiortc.rtcpeerconnection.RTCPeerConnection.__init__)
    assert "RTCCertificate.generateCertificate()" in pc_init
    assert "_create_ssl_context(" in inspect.getsource(RTCDtlsTransport.start)
    receiver = inspect.getsource(RTCRtpReceiver)
    assert "RemoteBitrateEstimator()" in receiver
    assert receiver.count("__remote_bitrate_estimator.") == 1
    assert "__remote_bitrate_estimator.add(" in receiver


def test_pylibsrtp_binding_the_transmitter_calls() -> None:
    # aiortc_send calls libsrtp's srtp_protect on the session's own srtp_t (Session._srtp[0])
    import pylibsrtp
    from pylibsrtp._binding import lib

    assert callable(lib.srtp_protect)
    assert pylibsrtp.SRTP_MAX_TRAILER_LEN == 144
    assert "self._srtp = ffi.gc(srtp" in inspect.getsource(pylibsrtp.Session.__init__)


def test_dtls_transport_entry_points() -> None:
    params = list(inspect.signature(RTCDtlsTransport._handle_rtp_data).parameters)
    assert params == ["self", "data", "arrival_time_ms"]
    source = inspect.getsource(RTCDtlsTransport)
    for name in ("self._tx_srtp", "self._rtp_router", "self._rtp_header_extensions_map"):
        assert name in source, name
    assert "self._handle_rtp_data(data" in inspect.getsource(RTCDtlsTransport._recv_next)
    assert all(hasattr(p, "openssl_profile") for p in SRTP_PROFILES)


async def test_receiver_and_sender_internals() -> None:
    pc = RTCPeerConnection()
    try:
        transceiver = pc.addTransceiver("video", direction="sendrecv")
        receiver, sender = transceiver.receiver, transceiver.sender
        assert hasattr(receiver, "_RTCRtpReceiver__jitter_buffer")
        assert "self.__jitter_buffer.add(packet)" in inspect.getsource(RTCRtpReceiver)
        for name in (
            "_handle_rtp_packet",
            "_handle_rtcp_packet",
            "_send_rtcp_pli",
            "_send_rtcp_nack",
        ):
            assert callable(getattr(receiver, name)), name
        # Our NACK requester replaces the generator receive() creates (the adapter clears it).
        handle = inspect.getsource(RTCRtpReceiver._handle_rtp_packet)
        assert "if self.__nack_generator is not None" in handle
        for name in ("ntp_timestamp", "rtp_timestamp", "packet_count", "octet_count"):
            assert hasattr(sender, f"_RTCRtpSender__{name}"), name
        assert isinstance(sender._ssrc, int) and isinstance(sender._rtx_ssrc, int)
        assert callable(sender._handle_rtcp_packet)
        # aiortc_reports: a quiet stand-in for the RTCP task, started by send(), stopped by stop()
        for name in ("started", "rtcp_started", "rtcp_exited", "cname"):
            assert hasattr(sender, f"_RTCRtpSender__{name}"), name
        assert "asyncio.ensure_future(self._run_rtcp())" in inspect.getsource(RTCRtpSender.send)
        assert "self.__rtcp_exited.wait()" in inspect.getsource(RTCRtpSender.stop)
        assert callable(sender._send_rtcp)
        assert "self.__track.recv()" in inspect.getsource(RTCRtpSender._next_encoded_frame)
        for name in ("_codecs", "_headerExtensions", "_offerDirection"):
            assert hasattr(transceiver, name), name
    finally:
        await pc.close()


def test_decoder_and_ice_hooks_exist() -> None:
    assert "get_decoder(codec)" in inspect.getsource(aiortc.rtcrtpreceiver.decoder_worker)
    assert aiortc.rtcicetransport.Connection is not None
    params = list(inspect.signature(aioice.Connection.get_component_candidates).parameters)
    assert params[:3] == ["self", "component", "addresses"]
    source = inspect.getsource(aioice.Connection)
    assert "self._nominated" in source and "self._protocols" in source
    assert "self._transport_policy = transport_policy" in source  # relay-only clients (ice.py)
    assert "remote_addr" in inspect.getsource(aioice.ice.CandidatePair)
    # ServerIceConnection.gather_candidates does aioice's bookkeeping itself.
    gather = inspect.getsource(aioice.Connection.gather_candidates)
    for name in ("_local_candidates_start", "_local_candidates_end", "_components"):
        assert f"self.{name}" in gather, name
    assert "self._local_candidates +=" in gather
    assert "server_reflexive_candidate(protocol, self.stun_server)" in source


def test_arrival_times_share_aiortcs_clock() -> None:
    # The REMB estimator is fed the kernel's receive stamps (Unix time) converted to aiortc's
    # arrival-time clock (milliseconds since 1900): an aiortc that changed its clock would make
    # every packet look minutes late or early.
    assert abs(current_ms() - int((time.time() + NTP_UNIX_OFFSET) * 1000)) < 1000


def test_configure_opus_sets_what_is_answered_and_offered() -> None:
    from mcu.sfu.aiortc_adapter import OPUS, configure_opus

    def opus_fmtp() -> dict[str, str]:
        codecs = RTCRtpSender.getCapabilities("audio").codecs
        opus = next(c for c in codecs if c.mimeType.lower() == "audio/opus")
        return {k: str(v) for k, v in opus.parameters.items()}

    try:
        configure_opus(fec=True, dtx=True)
        assert opus_fmtp() == {"useinbandfec": "1", "usedtx": "1"} and OPUS.red
        configure_opus(fec=False, dtx=True)
        assert opus_fmtp() == {"usedtx": "1"} and not OPUS.red
        configure_opus(fec=False, dtx=False)
        assert opus_fmtp() == {}
    finally:
        configure_opus(fec=False, dtx=False)
        OPUS.red = False
