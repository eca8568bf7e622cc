"""The media plane: RTP in (producers), RTP out (consumers), the aiortc adapter, peers, relays."""
