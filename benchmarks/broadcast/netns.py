"""Loopback only: run the benchmark in a private network namespace that has nothing but ``lo``.

Everything already binds 127.0.0.1 (the server's ``--host`` and ``--media-address``, the clients'
ICE policy), so the namespace adds determinism rather than safety: no other interface for ICE to
try, no port clash with a server already running on the host, no traffic to anyone else. When the
process is not in such a namespace, :func:`reexec_isolated` restarts it through
``unshare -n`` (root) or ``unshare -rn`` (an unprivileged user namespace) with ``lo`` brought up.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys

MARK = "MCU_BENCH_NETNS"
"Set in the re-executed process, so it never tries a second time."


def only_loopback() -> bool:
    """Whether ``lo`` is the only network interface this process can see."""
    return [name for _, name in socket.if_nameindex()] == ["lo"]


def unshare_command() -> list[str] | None:
    """The ``unshare`` invocation that works here, or None when none does."""
    if not shutil.which("unshare") or not shutil.which("ip"):
        return None
    for command in (["unshare", "-n"], ["unshare", "-rn"]):
        probe = subprocess.run([*command, "true"], capture_output=True, check=False)
        if probe.returncode == 0:
            return command
    return None


def reexec_isolated(script: str, argv: list[str]) -> str | None:
    """Replace this process by itself inside a loopback-only namespace, when it is not in one.

    Returns None when already isolated, else (when no namespace can be made here) a sentence
    saying why the run stays on the host network; on success it does not return.
    """
    if only_loopback():
        return None
    if os.environ.get(MARK):
        return "the private network namespace still shows other interfaces"
    command = unshare_command()
    if command is None:
        return "unshare or ip is missing, or network namespaces are not allowed here"
    sys.stdout.flush()
    sys.stderr.flush()
    inner = 'ip link set lo up && exec "$0" "$@"'
    os.execvpe(
        command[0],
        [*command, "sh", "-c", inner, sys.executable, script, *argv],
        os.environ | {MARK: "1"},
    )
    raise AssertionError("unreachable")
