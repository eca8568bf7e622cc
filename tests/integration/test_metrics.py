"""/metrics, /healthz and /readyz of a real server while two aiortc participants exchange media."""

from __future__ import annotations

import asyncio
import contextlib

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families

from mcu.app.server import READINESS, Readiness, begin_shutdown, readiness_handler
from tests.support.room_client import ColourTrack, RoomClient, ToneTrack, joined_client
from tests.support.server import ServerProcess

Samples = dict[str, float]


async def scrape(server: ServerProcess) -> tuple[Samples, set[str]]:
    """Every sample as ``name{label="value",...}`` → value, and the family names with types."""
    async with server.http.get(server.base_url + "/metrics") as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        text = await response.text()
    samples: Samples = {}
    families: set[str] = set()
    for family in text_string_to_metric_families(text):
        families.add(f"{family.name}:{family.type}")
        for sample in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
            samples[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return samples, families


async def test_metrics_move_with_media_and_never_go_back(server: ServerProcess) -> None:
    await server.create_room("cardio-1", "correct horse")
    clients: list[RoomClient] = []
    try:
        for i, colour in enumerate([(200, 30, 30), (30, 30, 200)]):
            client = await joined_client(server, f"doctor-{i}", password="correct horse")
            clients.append(client)
            reply = await client.publish({"microphone": ToneTrack(), "camera": ColourTrack(colour)})
            assert reply["type"] == "publish_answer", reply
        a, b = clients
        await a.wait_until(lambda: a.frames_from(b.participant_id or "", "video") >= 10, 30)
        await b.wait_until(lambda: b.frames_from(a.participant_id or "", "video") >= 10, 30)

        during, families = await scrape(server)
        for family in (
            "mcu_rtp_packets_received:counter",
            "mcu_rtp_received_bytes:counter",
            "mcu_rtp_packets_sent:counter",
            "mcu_rtp_sent_bytes:counter",
            "mcu_rtp_packets_dropped:counter",
            "mcu_rtp_send_refused:counter",
            "mcu_video_consumer_stalls:counter",
            "mcu_video_packets_skipped:counter",
            "mcu_video_consumers_waiting_keyframe:gauge",
            "mcu_video_keyframes_received:counter",
            "mcu_nacks_received:counter",
            "mcu_retransmissions:counter",
            "mcu_rtx_packets_received:counter",
            "mcu_keyframe_requests_received:counter",
            "mcu_keyframe_requests_sent:counter",
            "mcu_forwarding_latency_seconds:histogram",
            "mcu_event_loop_lag_seconds:histogram",
            "mcu_event_loop_lag_last_seconds:gauge",
            "mcu_heap_trims:counter",
            "mcu_heap_trimmed_bytes:counter",
            "mcu_subscriber_loss_ratio:histogram",
            "mcu_recordings_active:gauge",
            "mcu_recording_tracks:gauge",
            "mcu_recording_written_bytes:counter",
            "mcu_worker_info:gauge",
            "process_cpu_seconds:counter",
            "process_resident_memory_bytes:gauge",
            "mcu_asyncio_tasks:gauge",
            "mcu_threads:gauge",
        ):
            assert family in families, family
        for name in (
            "mcu_rtp_packets_received_total",
            "mcu_rtp_received_bytes_total",
            "mcu_rtp_packets_sent_total",
            "mcu_rtp_sent_bytes_total",
            "mcu_event_loop_lag_seconds_count",
        ):
            assert during[name] > 0, name
        # Sampled one packet in 64 per consumer, and receiver reports come about once a second:
        # give them a bounded while to appear.
        for _ in range(40):
            sampled, _ = await scrape(server)
            if (
                sampled["mcu_forwarding_latency_seconds_count"] > 0
                and sampled["mcu_subscriber_loss_ratio_count"] > 0
            ):
                break
            await asyncio.sleep(0.5)
        assert sampled["mcu_forwarding_latency_seconds_count"] > 0
        assert sampled["mcu_subscriber_loss_ratio_count"] > 0
        assert during["mcu_rooms"] == 1
        assert during['mcu_participants{role="participant"}'] == 2
        assert during['mcu_participants{role="chair"}'] == 0
        assert during['mcu_tracks{kind="audio"}'] == 2
        assert during['mcu_tracks{kind="video"}'] == 2
        assert during["mcu_consumers"] == 4  # each receives the other's two tracks
        assert during["mcu_recordings_active"] == 0
        # The scrape itself runs in a task; aiortc's transports add theirs.
        assert during["mcu_asyncio_tasks"] > 1
        assert during["mcu_threads"] >= 1
        assert any(k.startswith("mcu_worker_info{") and 'worker="0"' in k for k in during)

        health = await server.get_json("/healthz")
        assert health["status"] == "ok"
        assert (health["rooms"], health["participants"]) == (1, 2)
        assert health["uptime_seconds"] > 0
        assert isinstance(health["version"], str) and health["version"]
        ready = await server.get_json("/readyz")
        assert ready["status"] == "ready"

        await b.send({"type": "leave"})
        await a.wait_for(
            lambda m: m["type"] == "participant_left" and m["participant_id"] == b.participant_id
        )
        # The leaver's consumers close after the announcement, and a's copies of the leaver's
        # tracks when a's subscribe connection is renegotiated: wait for both (bounded).
        for _ in range(150):
            after, _ = await scrape(server)
            if after["mcu_consumers"] == 0:
                break
            await asyncio.sleep(0.1)
        for name in (
            "mcu_rtp_packets_received_total",
            "mcu_rtp_received_bytes_total",
            "mcu_rtp_packets_sent_total",
            "mcu_rtp_sent_bytes_total",
            "mcu_event_loop_lag_seconds_count",
        ):
            assert after[name] >= during[name], name
        assert after['mcu_participants{role="participant"}'] == 1
        assert after["mcu_consumers"] == 0  # nobody left to forward a's tracks to
        # And once more, after the departed objects may have been garbage-collected.
        again, _ = await scrape(server)
        for name in ("mcu_rtp_packets_received_total", "mcu_rtp_packets_sent_total"):
            assert again[name] >= after[name], name
        # The room empties: what it freed goes back to the system a second later (bounded).
        await a.send({"type": "leave"})
        for _ in range(100):
            emptied, _ = await scrape(server)
            if emptied["mcu_heap_trims_total"] > again["mcu_heap_trims_total"]:
                break
            await asyncio.sleep(0.1)
        assert emptied["mcu_heap_trims_total"] > again["mcu_heap_trims_total"]
        assert emptied["mcu_heap_trimmed_bytes_total"] >= again["mcu_heap_trimmed_bytes_total"]
    finally:
        for client in clients:
            with contextlib.suppress(Exception):
                await client.close()


async def test_readyz_answers_503_once_shutdown_begins() -> None:
    app = web.Application()
    app[READINESS] = Readiness()
    app.router.add_get("/readyz", readiness_handler)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        response = await client.get("/readyz")
        assert response.status == 200
        assert (await response.json())["status"] == "ready"
        begin_shutdown(app)
        response = await client.get("/readyz")
        assert response.status == 503
        assert (await response.json())["status"] == "shutting_down"
