"""The send half of the aiortc adapter: SRTP-protect a forwarded packet and put it on the wire.

This runs once per packet per subscriber, the server's hottest line, so it skips the layers a
plain call would cross:

- ``pylibsrtp.Session.protect`` is three Python calls deep and allocates a C ``int`` per packet
  (about a quarter of its cost); the transmitter calls libsrtp's ``srtp_protect`` from the same
  binding directly, on the same session, with one buffer and length cell for the process;
- the packet is written into that buffer in pieces (header, then payload), so it is not first
  joined into a new ``bytes`` only to be copied again;
- the packet is written straight to the nominated ICE pair's UDP socket, connected to the
  remote address (:func:`direct_descriptor`), while the transport has nothing queued; the
  transport's ``sendto``, write-buffer size and state are bound once per pair;
- DTLS, the nominated pair and the transport's state are looked at every 32nd packet, not every
  one: with hundreds of subscribers each of those objects is cold in the CPU's cache by the
  time its subscriber's turn comes, and the fast path touches only the transmitter.

Like :mod:`mcu.sfu.aiortc_adapter` it reaches into aiortc's and pylibsrtp's private parts
(``RTCDtlsTransport._tx_srtp``, aioice's ``_nominated``, ``Session._srtp``, the cffi binding);
``tests/unit/test_aiortc_adapter.py`` fails if an upgrade moves them.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import socket
import weakref
from typing import Any, Final

from aioice.ice import StunProtocol
from aiortc.rtcdtlstransport import RTCDtlsTransport
from pylibsrtp import SRTP_MAX_TRAILER_LEN
from pylibsrtp._binding import ffi, lib

from mcu.infra import metrics, native

MAX_SEND_BUFFER_BYTES: Final = 512 * 1024
"""Beyond this many bytes queued in user space for one subscriber, packets are dropped (and the
subscriber's NACK/PLI recovers) instead of growing memory for a stalled peer."""
BUFFER_BYTES: Final = 1500
MAX_PLAIN_BYTES: Final = BUFFER_BYTES - SRTP_MAX_TRAILER_LEN
"The longest RTP packet protected (pylibsrtp's own limit for a 1,500-byte buffer)."

logger = logging.getLogger(__name__)

CHECK_EVERY: Final = 32
"Packets sent on the fast path between two full checks of DTLS, ICE and the transport."

_protect: Final = lib.srtp_protect
_write: Final = os.write
_UNBOUND: Final = object()
# One buffer and length cell for every transmitter of the process: each packet is protected and
# copied out before the next one is written, all on the event loop's thread, and one buffer stays
# in the CPU's cache where hundreds of per-subscriber ones would not.
_CDATA: Final = ffi.new("char[]", BUFFER_BYTES)
_BUFFER: Final = ffi.buffer(_CDATA)
_VIEW: Final = memoryview(_BUFFER)  # written out by os.write at once: a view, no copy
_LENGTH: Final = ffi.new("int *")


def _load_wire() -> Any:
    """The C helper (``_wire.c``): with the compiled build only, and bound to the same libsrtp."""
    if native.STATUS != native.COMPILED_STATUS:
        return None
    from mcu.sfu import _wire

    _wire.bind(int(ffi.cast("uintptr_t", ffi.addressof(lib, "srtp_protect"))), MAX_PLAIN_BYTES)
    return _wire


_wire: Final = _load_wire()
_wire_send: Final = None if _wire is None else _wire.send
"Copy, protect and write in one call; None where the source runs (then cffi does it here)."
_wire_pending: Final = None if _wire is None else _wire.pending
_WIRE_SENT: Final = 0  # _wire.c's results
_WIRE_BLOCKED: Final = 1
_WIRE_FAILED: Final = 2
_NOT_READY: Final = metrics.SEND_REFUSED.labels("not_ready")
_CLOSING: Final = metrics.SEND_REFUSED.labels("closing")
_QUEUE_FULL: Final = metrics.SEND_REFUSED.labels("queue_full")
_ERROR: Final = metrics.SEND_REFUSED.labels("error")


class SrtpTransmitter:
    """Protects and sends RTP on a subscriber's DTLS transport, bypassing aiortc's await chain."""

    __slots__ = (
        "_addr",
        "_budget",
        "_closing",
        "_connection",
        "_context",
        "_dtls",
        "_fd",
        "_pair",
        "_queued",
        "_sendto",
        "_session",
        "_srtp",
        "_transport",
    )

    def __init__(self, dtls: RTCDtlsTransport) -> None:
        self._dtls = dtls
        self._connection = dtls.transport._connection
        self._session: Any = None  # the pylibsrtp.Session self._srtp belongs to (kept alive)
        # Bound at the first send with a nominated pair (nothing else compares equal to it).
        self._srtp: Any = None
        self._context = 0  # self._srtp's address, for _wire.c
        self._pair: Any = _UNBOUND
        self._transport: Any = None
        self._sendto: Any = None
        self._queued: Any = None
        self._closing: Any = None
        self._fd = -1
        self._budget = 0  # packets the fast path may still send before the next full check
        self._addr: Any = None

    def ready(self) -> bool:
        return self._dtls._tx_srtp is not None and self._connection._nominated.get(1) is not None

    def send(self, header: bytes, payload: bytes | bytearray = b"") -> bool:
        """Protect and send the RTP packet ``header + payload``; False when it could not leave
        (not connected yet, closing, the subscriber's queue full, or SRTP refused it).

        The fast path touches this object only: every :data:`CHECK_EVERY` packets (and for
        every packet it cannot write straight to the socket) :meth:`_check` looks at DTLS, the
        nominated pair and the transport again. A transport closed meanwhile still gets up to
        that many packets on its socket, which the peer that closed it ignores; an ICE
        connection that closes stops the fast path first (:func:`release_direct`).
        """
        budget = self._budget
        if not budget:
            if not self._check():
                return False
            budget = self._budget  # CHECK_EVERY to write to the socket, 0 through the transport
        if budget and _wire_send is not None:  # the compiled build: one call into _wire.c
            status = _wire_send(self._fd, self._context, header, payload)
            if status == _WIRE_SENT:
                self._budget = budget - 1
                return True
            return self._wire_missed(status)
        head = len(header)
        size = head + len(payload)
        if size > MAX_PLAIN_BYTES:
            _ERROR.inc()
            return False
        _BUFFER[0:head] = header
        _BUFFER[head:size] = payload
        _LENGTH[0] = size
        if _protect(self._srtp, _CDATA, _LENGTH):
            _ERROR.inc()
            return False
        if budget:
            self._budget = budget - 1
            try:
                _write(self._fd, _VIEW[0 : _LENGTH[0]])
                return True
            except BlockingIOError:  # the socket's buffer is full: the transport queues it
                self._budget = 0
            except OSError:  # e.g. refused: the subscriber's port is gone (ICMP)
                self._budget = 0
                _ERROR.inc()
                return False
        try:
            self._sendto(_BUFFER[0 : _LENGTH[0]], self._addr)
        except (OSError, ValueError):
            _ERROR.inc()
            return False
        return True

    def _wire_missed(self, status: int) -> bool:
        # What send() does when _wire.c could not write the packet: the same as on its own path.
        if status == _WIRE_BLOCKED and _wire_pending is not None:  # socket full: the transport
            self._budget = 0  # queues it, and the next packets in order behind it
            try:
                self._sendto(_wire_pending(), self._addr)
            except (OSError, ValueError):
                _ERROR.inc()
                return False
            return True
        if status == _WIRE_FAILED:  # e.g. refused: the subscriber's port is gone (ICMP)
            self._budget = 0
        _ERROR.inc()  # or too long, or libsrtp refused to protect it
        return False

    def send_rtcp(self, packet: bytes) -> bool:
        """SRTCP-protect and send the compound RTCP ``packet`` (sender reports); False when it
        could not leave. Rare (a connection's reports, about once a second): through the
        transport, and pylibsrtp's own call."""
        if not self._check():
            return False
        try:
            data = self._session.protect_rtcp(packet)
            self._sendto(data, self._addr)
        except (OSError, ValueError, TypeError):  # pylibsrtp raises Error, a ValueError
            _ERROR.inc()
            return False
        return True

    def _check(self) -> bool:
        # Re-binds after DTLS keys or ICE changes the pair; False (counted) on no keys or pair
        # yet, a closing transport or a full queue. Leaves the fast path a budget only when the
        # packet may be written straight to the socket (a host pair, nothing queued in order
        # before it); otherwise it goes through the transport's sendto.
        session = self._dtls._tx_srtp
        if session is not self._session:  # first packet, or DTLS keyed again: re-bind
            if session is None:
                _NOT_READY.inc()
                return False
            self._session, self._srtp = session, session._srtp[0]
            self._context = int(ffi.cast("uintptr_t", self._srtp))
        pair = self._connection._nominated.get(1)
        if pair is not self._pair:  # first packet, or ICE chose another pair: re-bind
            if pair is None:
                _NOT_READY.inc()
                return False
            transport: Any = pair.protocol.transport
            self._pair, self._transport, self._addr = pair, transport, pair.remote_addr
            self._sendto, self._queued = transport.sendto, transport.get_write_buffer_size
            self._closing = transport.is_closing
            connection: Any = self._connection
            users = getattr(connection, "_mcu_transmitters", [])
            self._fd = -1 if users is None else direct_descriptor(pair)  # None: released
            if self._fd >= 0:
                if not users:
                    connection._mcu_transmitters = users
                if self not in users:
                    users.append(self)
        if self._closing():  # a closed transport drops sends silently, and logs them
            _CLOSING.inc()
            return False
        queued = self._queued()
        if queued > MAX_SEND_BUFFER_BYTES:
            _QUEUE_FULL.inc()
            return False
        self._budget = CHECK_EVERY if self._fd >= 0 and not queued else 0
        return True


class _Direct:
    """The duplicate of a pair's socket the transmitters write to (:func:`direct_descriptor`)."""

    __slots__ = ("fd",)

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def close(self) -> None:
        """Close the descriptor, once (the connection's close, or else the pair's collection)."""
        fd, self.fd = self.fd, -1
        if fd >= 0:
            os.close(fd)


def direct_descriptor(pair: Any) -> int:
    """A descriptor of the ICE pair's UDP socket, connected to the pair's remote address, that
    the transmitter writes to with ``os.write`` (-1 for a relayed pair, or when that failed).

    Written this way a packet skips the event loop's datagram transport (its address
    conversion, a context copy per send) and the kernel's per-datagram route lookup of an
    unconnected socket. Connecting filters what the socket receives to the nominated remote,
    which is all a connection hears from once ICE has nominated. The descriptor is a duplicate,
    one per pair (shared by the pair's audio and video): it keeps the socket open after aioice
    closes its own, so every full check looks at the transport first. The ICE connection's
    close releases it (:func:`release_direct`); a pair of a connection that never closes
    releases it when collected.
    """
    direct: _Direct | None = getattr(pair, "_mcu_direct", None)
    if direct is not None:
        return direct.fd
    fd = -1
    protocol = pair.protocol
    sock = None
    if type(protocol) is StunProtocol and pair.local_candidate.type != "relay":
        sock = protocol.transport.get_extra_info("socket")  # None for a TURN transport
    try:
        ipaddress.ip_address(pair.remote_addr[0])
    except ValueError:  # a name: connect() would resolve it, blocking the event loop
        sock = None
    if sock is not None and sock.type == socket.SOCK_DGRAM:
        try:
            duplicate = socket.socket(fileno=os.dup(sock.fileno()))
        except OSError as exc:
            logger.warning("cannot duplicate a media socket: %s", exc)
        else:
            try:
                duplicate.connect(pair.remote_addr)
            except OSError as exc:
                logger.warning("cannot connect a media socket to %s: %s", pair.remote_addr, exc)
                duplicate.close()
            else:
                fd = duplicate.detach()
    direct = pair._mcu_direct = _Direct(fd)
    if fd >= 0:
        weakref.finalize(pair, direct.close)
    return fd


def release_direct(connection: Any) -> None:
    """Close the duplicated sockets of an aioice connection's pairs as the connection closes.

    Every transmitter writing to one is first sent back to its full check (which then finds the
    transport closing), so none writes to a descriptor number the process may reuse for
    another socket or a file. Left to the garbage collector, a closed subscriber's descriptors
    (and its bound port) would stay open until the next full collection, which a busy server
    runs rarely (a soak saw ~3 more per cycle of joins and WHEP viewers).
    """
    for transmitter in getattr(connection, "_mcu_transmitters", None) or ():
        transmitter._fd = -1
        transmitter._budget = 0
    connection._mcu_transmitters = None  # no transmitter takes the fast path from now on
    pairs = [
        *getattr(connection, "_check_list", ()),
        *getattr(connection, "_nominated", {}).values(),
    ]
    for pair in pairs:
        direct: _Direct | None = getattr(pair, "_mcu_direct", None)
        if direct is not None:
            direct.close()
