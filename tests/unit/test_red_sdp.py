"""RED for Opus in SDP (mcu.sfu.redsdp), on Chromium 156's own lines."""

from aiortc import sdp

from mcu.sfu.redsdp import RED_PAYLOAD_TYPE, answered_red, offered_red, red_payload_type, with_red

# The audio section of headless Chromium 156's publish offer (ICE and DTLS lines shortened).
CHROMIUM_OFFER = "\r\n".join(
    [
        "v=0",
        "o=- 1 2 IN IP4 127.0.0.1",
        "s=-",
        "t=0 0",
        "a=group:BUNDLE 0",
        "a=msid-semantic: WMS",
        "m=audio 9 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126",
        "c=IN IP4 0.0.0.0",
        "a=ice-ufrag:abcd",
        "a=ice-pwd:abcdefghijklmnopqrstuvwx",
        "a=fingerprint:sha-256 " + ":".join(["AB"] * 32),
        "a=setup:actpass",
        "a=mid:0",
        "a=sendonly",
        "a=msid:stream track-a",
        "a=rtcp-mux",
        "a=rtpmap:111 opus/48000/2",
        "a=fmtp:111 minptime=10;useinbandfec=1",
        "a=rtpmap:63 red/48000/2",
        "a=fmtp:63 111/111",
        "a=rtpmap:9 G722/8000",
        "a=rtpmap:0 PCMU/8000",
        "a=rtpmap:8 PCMA/8000",
        "a=rtpmap:13 CN/8000",
        "a=rtpmap:110 telephone-event/48000",
        "a=rtpmap:126 telephone-event/8000",
        "",
    ]
)


def test_chromium_offer_red_is_found() -> None:
    assert offered_red(CHROMIUM_OFFER, "0", 111) == 63
    assert offered_red(CHROMIUM_OFFER, "1", 111) is None  # no such section
    assert offered_red(CHROMIUM_OFFER, "0", 96) is None  # RED over another codec


def test_red_over_something_else_is_not_taken() -> None:
    for fmtp in ("111/0", "0/0", "111;foo=1", "111/111 x"):
        text = CHROMIUM_OFFER.replace("a=fmtp:63 111/111", f"a=fmtp:63 {fmtp}")
        assert offered_red(text, "0", 111) is None, fmtp
    without = CHROMIUM_OFFER.replace("a=fmtp:63 111/111\r\n", "")
    assert offered_red(without, "0", 111) is None
    assert offered_red("not sdp at all\r\nm=audio x", "0", 111) is None


def test_subscriber_offer_gets_red_after_opus() -> None:
    plain = CHROMIUM_OFFER.replace(" 63 ", " ").replace(
        "a=rtpmap:63 red/48000/2\r\na=fmtp:63 111/111\r\n", ""
    )
    media = sdp.SessionDescription.parse(plain).media[0]
    assert red_payload_type(media, 111) is None
    offered = with_red(plain, {"track-a"})
    media = sdp.SessionDescription.parse(offered).media[0]
    assert red_payload_type(media, 111) == RED_PAYLOAD_TYPE
    assert media.fmt.index(111) < media.fmt.index(RED_PAYLOAD_TYPE)
    assert f"a=fmtp:{RED_PAYLOAD_TYPE} 111/111" in offered
    # Other tracks' sections, and a section that has RED already, are left as they are.
    assert sdp.SessionDescription.parse(with_red(plain, {"track-b"})).media[0].fmt == (
        sdp.SessionDescription.parse(plain).media[0].fmt
    )
    assert with_red(offered, {"track-a"}).count("red/48000/2") == 1


def test_answer_that_kept_red() -> None:
    assert answered_red(CHROMIUM_OFFER) == {"0": 63}
    dropped = CHROMIUM_OFFER.replace("a=rtpmap:63 red/48000/2\r\na=fmtp:63 111/111\r\n", "")
    assert answered_red(dropped.replace(" 63 ", " ")) == {}
