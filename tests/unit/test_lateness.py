"""Ingress lateness: samples as data, and the kernel's receive stamp read from a real socket."""

from __future__ import annotations

import socket
import time

import pytest

from mcu.sfu.lateness import IngressBoard, IngressLateness, LatenessProbe, last_arrival
from mcu.sfu.shedding import SHED_ABOVE


def test_a_keyframe_burst_is_not_a_sustained_backlog_but_a_growing_queue_is() -> None:
    estimate = IngressLateness(interval=0.05, window=2.0)
    now = 100.0
    for i in range(40):  # 2 s of samples, a 0.4 s spike in the middle (one keyframe burst)
        estimate.record(0.4 if 15 <= i < 23 else 0.005, now + i * 0.05)
    assert estimate.latest(now + 1.95) == 0.005
    assert estimate.sustained(now + 1.95) == pytest.approx(0.005)
    for i in range(40, 80):  # then the queue grows by half a second every second
        estimate.record((i - 40) * 0.025, now + i * 0.05)
    assert estimate.sustained(now + 3.95) > 0.4
    assert estimate.latest(now + 3.95) == pytest.approx(0.975)


def test_samples_older_than_the_window_no_longer_count() -> None:
    estimate = IngressLateness(interval=0.05, window=2.0)
    estimate.record(3.0, 10.0)
    assert estimate.sustained(10.0) == 3.0
    assert estimate.latest(11.9) == 3.0
    # A publisher that stopped sending (or left) leaves no backlog behind it.
    assert estimate.latest(12.5) == 0.0
    assert estimate.sustained(12.5) == 0.0
    estimate.record(0.01, 12.5)
    assert estimate.sustained(12.5) == 0.01


def test_a_sample_is_due_once_per_interval_and_never_negative() -> None:
    estimate = IngressLateness(interval=0.05)
    assert estimate.next_due == float("-inf")
    assert estimate.record(-0.0001, 5.0) == 0.0  # clocks read microseconds apart
    assert estimate.next_due == pytest.approx(5.05)


def test_the_board_reports_the_socket_furthest_behind() -> None:
    board = IngressBoard()
    calm, late = IngressLateness(), IngressLateness()
    board.add(calm)
    board.add(late)
    calm.record(0.01, 1.0)
    late.record(1.5, 1.0)
    assert board.worst(1.0) == 1.5
    assert board.worst_sustained(1.0) == 1.5
    board.discard(late)
    assert board.worst(1.0) == 0.01
    assert IngressBoard().worst(1.0) == 0.0


def _pair() -> tuple[socket.socket, socket.socket]:
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    return receiver, sender


def _until_stamping(receiver: socket.socket, sender: socket.socket) -> None:
    """Wait (bounded) until the kernel stamps datagrams on arrival. The first socket of a
    process to ask switches stamping on for the whole system, and the kernel does that a moment
    later; a datagram that arrived unstamped meanwhile reads as stamped when asked, i.e. as
    late as the question (seen: a stamp 6 us after the test's own ``after``)."""
    for _ in range(200):
        sender.sendto(b"warm-up", receiver.getsockname())
        receiver.recv(64)
        read_at = time.time()
        time.sleep(0.002)
        stamp = last_arrival(receiver.fileno())
        if stamp is not None and stamp < read_at:
            return
    pytest.fail("the kernel never stamped a datagram on arrival")


def test_the_kernel_stamps_the_last_datagram_read() -> None:
    receiver, sender = _pair()
    with receiver, sender:
        assert last_arrival(receiver.fileno()) is None  # nothing read yet; stamping now on
        _until_stamping(receiver, sender)
        before = time.time()
        sender.sendto(b"first", receiver.getsockname())
        assert receiver.recv(64) == b"first"
        after = time.time()
        stamp = last_arrival(receiver.fileno())
        # The stamp is a timeval (whole microseconds, truncated) from the kernel's own reading of
        # the wall clock, which may differ from the process's (vDSO) reading by a tick either
        # way (once: 6 us ahead of ``after``): allow a few milliseconds on both sides.
        assert stamp is not None and before - 0.005 <= stamp <= after + 0.005


def test_a_probe_reads_the_stamp_once_per_interval() -> None:
    receiver, sender = _pair()
    with receiver, sender:
        wall = [0.0]
        board = IngressBoard()
        probe = LatenessProbe(
            IngressLateness(interval=0.05), wall_clock=lambda: wall[0], board=board
        )
        fd = receiver.fileno()
        assert probe.sample(fd, 1.0) == 0.0  # switches stamping on; nothing stamped yet
        sender.sendto(b"x", receiver.getsockname())
        receiver.recv(64)
        stamp = last_arrival(fd)
        assert stamp is not None
        wall[0] = stamp + 1.5  # processed 1.5 s after the kernel had it
        assert probe.sample(fd, 1.06) == pytest.approx(1.5)
        wall[0] = stamp + 9.0
        assert probe.sample(fd, 1.07) == pytest.approx(1.5)  # not due yet: no system call
        assert probe.sample(fd, 1.12) == pytest.approx(9.0)
        assert board.worst(1.12) == pytest.approx(9.0)


def test_admission_refuses_while_behind_for_good_or_just_shedding_not_for_one_burst() -> None:
    board = IngressBoard()
    estimate = IngressLateness(interval=0.05, window=2.0)
    board.add(estimate)
    for i in range(40):  # a keyframe burst at full load: 0.4 s for a moment
        estimate.record(0.4 if 15 <= i < 20 else 0.01, i * 0.05)
    assert not board.behind(1.95)
    estimate.record(SHED_ABOVE + 0.1, 2.0)  # late enough to shed: refused for a window
    assert board.behind(2.0)
    for i in range(41, 100):
        estimate.record(0.01, i * 0.05)
    assert not board.behind(4.95)
    for i in range(100, 140):  # steadily a quarter of a second behind
        estimate.record(0.25, i * 0.05)
    assert board.behind(6.95)


def test_a_connection_is_as_late_as_the_socket_its_media_come_on() -> None:
    # Two sockets of one connection: the media come on one, the other had a consent check long
    # before. The connection's lateness is the media socket's, whichever the pair names.
    quiet_receiver, quiet_sender = _pair()
    media_receiver, media_sender = _pair()
    with quiet_receiver, quiet_sender, media_receiver, media_sender:
        wall = [0.0]
        probe = LatenessProbe(
            IngressLateness(interval=0.05), wall_clock=lambda: wall[0], board=IngressBoard()
        )
        fds = [quiet_receiver.fileno(), media_receiver.fileno()]
        assert probe.sample_freshest(fds, 1.0) == -1  # switches stamping on; nothing stamped
        _until_stamping(quiet_receiver, quiet_sender)
        quiet_sender.sendto(b"check", quiet_receiver.getsockname())
        quiet_receiver.recv(64)
        time.sleep(0.02)
        media_sender.sendto(b"media", media_receiver.getsockname())
        media_receiver.recv(64)
        media = last_arrival(media_receiver.fileno())
        assert media is not None
        wall[0] = media + 0.01
        assert probe.sample_freshest(fds, 1.06) == media_receiver.fileno()
        assert probe.estimate.current == pytest.approx(0.01)
        assert probe.sample_freshest(fds, 1.07) == -1  # not due yet: no system call
