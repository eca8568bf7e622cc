"""The recent packets of one producer, shared by all its consumers to answer NACKs.

Consumers map sequence numbers with a fixed offset, so a subscriber's NACK for an outgoing sequence
number maps straight back to the producer's extended sequence number; one ring per producer then
serves every consumer, instead of a copy of each packet per consumer.
"""

from __future__ import annotations

from mcu.media import IncomingPacket


class PacketHistory:
    """A ring of the last ``capacity`` packets, indexed by extended sequence number."""

    __slots__ = ("_mask", "_slots", "highest")

    def __init__(self, capacity: int = 1024) -> None:
        if capacity <= 0 or capacity & (capacity - 1):
            raise ValueError("capacity must be a power of two")
        self._mask = capacity - 1
        self._slots: list[IncomingPacket | None] = [None] * capacity
        self.highest = -1

    def put(self, packet: IncomingPacket) -> None:
        """Remember ``packet`` (a late or retransmitted packet takes its own slot back)."""
        self._slots[packet.ext_sequence & self._mask] = packet
        if packet.ext_sequence > self.highest:
            self.highest = packet.ext_sequence

    def get(self, ext_sequence: int) -> IncomingPacket | None:
        """The packet with this extended sequence number, if it is still in the ring."""
        packet = self._slots[ext_sequence & self._mask]
        if packet is not None and packet.ext_sequence == ext_sequence:
            return packet
        return None

    def clear(self) -> None:
        """Forget every packet (the producer closed: nothing is repaired from it any more)."""
        self._slots = [None] * len(self._slots)
        self.highest = -1
