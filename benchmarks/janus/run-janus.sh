#!/bin/sh
# Janus 1.1.2 (Debian package "janus") in a private network namespace, as the peer server that
# benchmarks/janus_compare.py measures ours against. See benchmarks/JANUS.md.
#
#   benchmarks/janus/run-janus.sh start     # namespace + config + janus in the background
#   benchmarks/janus/run-janus.sh stop      # kill janus, delete the namespace (and its ifb)
#   benchmarks/janus/run-janus.sh status
#   benchmarks/janus/run-janus.sh netns-up | netns-down   # the namespace alone
#
# The namespace has lo up and an ifb interface carrying a private /32 address: no uplink, no
# route out, so nothing leaves it. libnice gathers no candidate on lo, hence the ifb; Janus is
# told to use that interface only (ice_enforce_list), without STUN. Everything that talks to
# Janus must run in the namespace: ip netns exec "$NETNS" ...
# Needs root (ip netns). Environment (defaults): NETNS=mcu-bench IFACE=ifb0 ADDR=10.99.0.1
# HTTP_IP=127.0.0.1 HTTP_PORT=8088 JANUS_DIR=/tmp/mcu-bench-janus JANUS_CPU=0 (taskset; empty: none)
set -eu

NETNS=${NETNS:-mcu-bench}
IFACE=${IFACE:-ifb0}
ADDR=${ADDR:-10.99.0.1}
HTTP_IP=${HTTP_IP:-127.0.0.1}
HTTP_PORT=${HTTP_PORT:-8088}
JANUS_DIR=${JANUS_DIR:-/tmp/mcu-bench-janus}
JANUS_CPU=${JANUS_CPU-0}
HERE=$(cd "$(dirname "$0")" && pwd)
PIDFILE=$JANUS_DIR/janus.pid
LOG=$JANUS_DIR/janus.log

die() { echo "run-janus.sh: $*" >&2; exit 1; }

install_janus() {
    command -v janus >/dev/null 2>&1 && return 0
    echo "run-janus.sh: installing the Debian package janus" >&2
    [ "$(id -u)" = 0 ] || die "janus is not installed and we are not root (apt-get install janus)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends janus >&2 \
        || { apt-get update >&2 && DEBIAN_FRONTEND=noninteractive \
             apt-get install -y --no-install-recommends janus >&2; } \
        || die "apt-get install janus failed"
}

netns_up() {
    if ! ip netns list | grep -qw "^$NETNS"; then
        ip netns add "$NETNS"
    fi
    ip -n "$NETNS" link set lo up
    if ! ip -n "$NETNS" link show "$IFACE" >/dev/null 2>&1; then
        ip -n "$NETNS" link add "$IFACE" type ifb
    fi
    ip -n "$NETNS" addr replace "$ADDR/32" dev "$IFACE"
    ip -n "$NETNS" link set "$IFACE" up
}

netns_down() {
    if ip netns list | grep -qw "^$NETNS"; then
        ip netns del "$NETNS"   # takes the ifb with it
    fi
}

libdir() {
    for d in /usr/lib/*/janus /usr/lib/janus /usr/local/lib/janus /opt/janus/lib/janus; do
        [ -d "$d/plugins" ] && { echo "$d"; return 0; }
    done
    die "no Janus plugin folder found"
}

# Comma-separated .so names in $1 except $2: everything but the one we keep.
all_but() {
    ls "$1" | grep '\.so$' | grep -vx "$2" | paste -sd, -
}

write_config() {
    lib=$(libdir)
    mkdir -p "$JANUS_DIR"
    # A copy of the packaged configuration, then our own files for the three we use.
    [ -d /etc/janus ] && cp /etc/janus/*.jcfg "$JANUS_DIR"/ 2>/dev/null || true
    plugins=$(all_but "$lib/plugins" libjanus_videoroom.so)
    transports=$(all_but "$lib/transports" libjanus_http.so)
    for f in janus.jcfg janus.transport.http.jcfg janus.plugin.videoroom.jcfg; do
        sed -e "s|@DIR@|$JANUS_DIR|g" -e "s|@IFACE@|$IFACE|g" -e "s|@ADDR@|$ADDR|g" -e "s|@LIBDIR@|$lib|g" \
            -e "s|@DISABLED_PLUGINS@|$plugins|g" -e "s|@DISABLED_TRANSPORTS@|$transports|g" \
            -e "s|@HTTP_IP@|$HTTP_IP|g" -e "s|@HTTP_PORT@|$HTTP_PORT|g" \
            "$HERE/$f.in" > "$JANUS_DIR/$f"
    done
}

running() {
    [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null
}

info() {
    ip netns exec "$NETNS" python3 -c "
import sys, urllib.request
try:
    body = urllib.request.urlopen('http://$HTTP_IP:$HTTP_PORT/janus/info', timeout=2).read()
except Exception:
    sys.exit(1)
sys.exit(0 if b'janus' in body else 1)"
}

start() {
    [ "$(id -u)" = 0 ] || die "needs root (ip netns)"
    install_janus
    running && die "janus already running (pid $(cat "$PIDFILE")); stop it first"
    netns_up
    write_config
    pin=""
    [ -n "$JANUS_CPU" ] && pin="taskset -c $JANUS_CPU"
    # ip netns exec and taskset exec janus: $! is janus's own pid.
    # shellcheck disable=SC2086
    ip netns exec "$NETNS" $pin janus -C "$JANUS_DIR/janus.jcfg" -F "$JANUS_DIR" -o \
        > "$LOG" 2>&1 &
    echo $! > "$PIDFILE"
    i=0
    while [ $i -lt 100 ]; do   # 100 x 0.1 s
        if info; then
            echo "janus $(cat "$PIDFILE") up: http://$HTTP_IP:$HTTP_PORT/janus in netns $NETNS," \
                 "media on $ADDR ($IFACE), config $JANUS_DIR"
            return 0
        fi
        running || { tail -20 "$LOG" >&2; die "janus exited (log $LOG)"; }
        sleep 0.1
        i=$((i + 1))
    done
    tail -20 "$LOG" >&2
    die "janus did not answer /janus/info within 10 s (log $LOG)"
}

stop() {
    if running; then
        pid=$(cat "$PIDFILE")
        kill "$pid"
        i=0
        while kill -0 "$pid" 2>/dev/null && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
        kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
    fi
    rm -f "$PIDFILE"
    netns_down
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) if running; then echo "janus running, pid $(cat "$PIDFILE")"; else echo "janus not running"; exit 1; fi ;;
    netns-up) netns_up ;;
    netns-down) netns_down ;;
    *) echo "usage: $0 start|stop|status|netns-up|netns-down" >&2; exit 2 ;;
esac
