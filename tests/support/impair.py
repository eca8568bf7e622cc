"""A lossy or broken network link between this process's network namespace and a private one.

`tc netem` does not exist on our machines (shared notes "impairments": the kernel has no
sch_netem), so a link is a veth pair with its far end in an anonymous network namespace, and its
impairments are nftables rules on the pair's two ends and token-bucket qdiscs on their egress
(loopback is never touched):

    async with ImpairedLink(index=1) as link:     # 198.18.1.1 here, 198.18.1.2 over there
        await link.run("ip", "addr")               # any command inside the far namespace
        await link.set_loss(5)                     # 5 % of packets dropped in each direction
        await link.set_rate(2000)                  # at most 2 Mbit/s each way, a queue beyond
        await link.cut()                           # outage: every packet dropped ...
        await link.restore()                       # ... until now (the loss setting stays)
        await link.reset_connections()             # TCP connections over it aborted, both ends

The namespace lives as long as a holder process (`unshare -n sleep`); closing the link kills the
holder, deletes the pair and its rules; whatever was started in the namespace is the caller's
to stop. Needs root (or a
user namespace that owns the current network namespace), `ip`, `unshare`, `nsenter` and `nft`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
from types import TracebackType

# 198.18.0.0/15 is reserved for benchmarking network devices (RFC 2544): it never routes anywhere,
# and it exists here only inside namespaces a test made.
ADDRESS_PREFIX = "198.18"

# A namespace outlives no test: the holder sleeps at most this long even if nobody kills it.
HOLDER_LIFETIME_S = 3600

TOOLS = ("ip", "unshare", "nsenter", "nft", "ss", "tc")

QUEUE_MS = 80
"""How long a rate-limited link's queue may hold a packet before the link drops it (tbf's
``latency``): what a township clinic's router buffers, about 20 kB at 2 Mbit/s."""


class ImpairError(RuntimeError):
    """A command that builds or changes the link failed."""


def impair_available() -> str | None:
    """None when links can be made here, else why not (for a test's skip reason)."""
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        return f"missing {', '.join(missing)} (Debian packages iproute2, util-linux, nftables)"
    if os.geteuid() != 0:
        return "needs root (run the tests as scripts/test does, in a private network namespace)"
    return None


def _here(*command: str) -> list[str]:
    """`command` as it runs in this namespace."""
    return list(command)


async def _run(*command: str) -> str:
    """Run a command to completion; its stdout, or ImpairError with its stderr."""
    process = await asyncio.create_subprocess_exec(
        *command,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 30)
    if process.returncode != 0:
        raise ImpairError(f"{' '.join(command)}: {err.decode(errors='replace').strip()}")
    return out.decode(errors="replace")


def ruleset(table: str, device: str, loss_percent: int, cut: bool) -> str:
    """The nft script that sets the impairments of packets arriving on `device` (replacing any
    earlier ones in `table`).

    Packets are dropped where they arrive, at the ingress of the receiving end of the pair, never
    on the way out: a drop in an output hook fails the sender's `sendto` with EPERM, which no real
    link does and which clients react to. Loss is drawn independently per packet; an outage
    drops everything, TCP (the signalling socket) included, as a cable pulled out would.
    """
    rules: list[str] = []
    if cut:
        rules.append("drop")
    elif loss_percent > 0:
        rules.append(f"numgen random mod 100 < {loss_percent} drop")
    lines = [
        f"table netdev {table} {{}}",
        f"delete table netdev {table}",
        f"table netdev {table} {{",
        f'  chain ingress {{ type filter hook ingress device "{device}" priority 0; policy accept;',
        *(f"    {rule}" for rule in rules),
        "  }",
        "}",
    ]
    return "\n".join(lines) + "\n"


async def _nft(command: list[str], script: str) -> None:
    """Run an nft script (one transaction: all of it applies, or none)."""
    process = await asyncio.create_subprocess_exec(
        *command,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(process.communicate(script.encode()), 30)
    if process.returncode != 0:
        raise ImpairError(f"nft: {err.decode(errors='replace').strip()}\n{script}")


class ImpairedLink:
    """A veth pair from this namespace into a fresh one, with loss and outages on demand.

    `index` (1-254) picks the link's addresses and device names, so several links can exist at
    once: `host_address` is `198.18.<index>.1` on this side, `peer_address` `198.18.<index>.2`
    on the far side.
    """

    def __init__(self, index: int = 1) -> None:
        if not 1 <= index <= 254:
            raise ValueError(f"link index must be 1-254, got {index}")
        self.index = index
        self.host_device = f"mcuimp{index}h"
        self.peer_device = f"mcuimp{index}p"
        self.host_address = f"{ADDRESS_PREFIX}.{index}.1"
        self.peer_address = f"{ADDRESS_PREFIX}.{index}.2"
        self.loss_percent = 0
        "Packets dropped in each direction, in percent (0 = a clean link)."
        self.is_cut = False
        "Whether the link is in an outage."
        self.rate_kbit: int | None = None
        "The rate each way, in kbit/s (None: as fast as the machine goes)."
        self._holder: asyncio.subprocess.Process | None = None

    @property
    def netns_path(self) -> str:
        """The far namespace, for `nsenter --net=...` (valid while the link is open)."""
        if self._holder is None:
            raise ImpairError("the link is not open")
        return f"/proc/{self._holder.pid}/ns/net"

    def command(self, *command: str) -> list[str]:
        """`command` as it runs inside the far namespace (for a process started elsewhere)."""
        return ["nsenter", f"--net={self.netns_path}", "--", *command]

    async def run(self, *command: str) -> str:
        """Run `command` to completion inside the far namespace; its stdout."""
        return await _run(*self.command(*command))

    async def open(self) -> None:
        """Make the namespace and the veth pair, address both ends and bring them up."""
        if (reason := impair_available()) is not None:
            raise ImpairError(f"cannot impair links here: {reason}")
        self._holder = await asyncio.create_subprocess_exec(
            "unshare", "--net", "--", "sleep", str(HOLDER_LIFETIME_S),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        # unshare creates the namespace before it execs sleep: wait until the holder is inside it.
        own = os.readlink("/proc/self/ns/net")
        for _ in range(200):
            with contextlib.suppress(OSError):
                if os.readlink(self.netns_path) != own:
                    break
            if self._holder.returncode is not None:
                raise ImpairError(f"unshare exited with {self._holder.returncode}")
            await asyncio.sleep(0.01)
        else:
            raise ImpairError("the namespace holder never entered its namespace")
        # A device or table of that name left by a crashed earlier run would be in the way.
        await self._remove_host_side()
        await _run(
            "ip", "link", "add", self.host_device, "type", "veth",
            "peer", "name", self.peer_device, "netns", str(self._holder.pid),
        )  # fmt: skip
        await _run("ip", "addr", "add", f"{self.host_address}/24", "dev", self.host_device)
        await _run("ip", "link", "set", self.host_device, "up")
        await self.run("ip", "link", "set", "lo", "up")
        await self.run("ip", "addr", "add", f"{self.peer_address}/24", "dev", self.peer_device)
        await self.run("ip", "link", "set", self.peer_device, "up")
        await self._apply()

    async def set_loss(self, percent: int) -> None:
        """Drop `percent` % of the packets in each direction, at random (0 = none)."""
        if not 0 <= percent <= 100:
            raise ValueError(f"loss must be 0-100 %, got {percent}")
        self.loss_percent = percent
        await self._apply()

    async def set_rate(self, kbit: int | None) -> None:
        """Carry at most `kbit` kbit/s each way, queueing up to :data:`QUEUE_MS` and dropping
        what overflows, as a thin line's router does (None: no limit)."""
        if kbit is not None and not 64 <= kbit <= 10_000_000:
            raise ValueError(f"rate must be 64 kbit/s - 10 Gbit/s, got {kbit}")
        # The far side's egress carries what goes towards us, ours what goes towards it.
        for command, device in ((self.command, self.peer_device), (_here, self.host_device)):
            with contextlib.suppress(ImpairError):  # no limit there yet
                await _run(*command("tc", "qdisc", "del", "dev", device, "root"))
            if kbit is not None:
                await _run(
                    *command(
                        "tc", "qdisc", "add", "dev", device, "root", "tbf",
                        "rate", f"{kbit}kbit", "burst", "32kbit", "latency", f"{QUEUE_MS}ms",
                    )
                )  # fmt: skip
        self.rate_kbit = kbit

    async def cut(self) -> None:
        """Begin an outage: every packet on the link is dropped, both ways."""
        self.is_cut = True
        await self._apply()

    async def restore(self) -> None:
        """End an outage (the loss setting, if any, applies again)."""
        self.is_cut = False
        await self._apply()

    async def reset_connections(self) -> None:
        """Abort every TCP connection across the link, at both ends, as a Wi-Fi hand-over or a
        NAT that forgot its mappings does. An outage alone is no disconnection: TCP rides out
        several seconds of silence (shared notes, impairments). The far end's sockets go first,
        so the server sees its side close as the client's does."""
        await self.run("ss", "-K", "dst", self.host_address)
        await _run("ss", "-K", "dst", self.peer_address)

    async def _apply(self) -> None:
        # Each direction is impaired where it arrives: towards the far side at the far end's
        # ingress, towards us at ours. One nft transaction per side replaces its whole table.
        table = f"mcu_impair_{self.index}"
        await _nft(
            self.command("nft", "-f", "-"),
            ruleset(table, self.peer_device, self.loss_percent, self.is_cut),
        )
        await _nft(
            ["nft", "-f", "-"], ruleset(table, self.host_device, self.loss_percent, self.is_cut)
        )

    async def close(self) -> None:
        """Kill the namespace holder: the namespace and the veth pair go with it."""
        holder, self._holder = self._holder, None
        if holder is None:
            return
        with contextlib.suppress(ProcessLookupError):
            holder.kill()
        await holder.wait()
        # The kernel frees a namespace once nothing uses it, and a process still running in it
        # keeps it; removing our end removes the pair at once either way.
        await self._remove_host_side()

    async def _remove_host_side(self) -> None:
        with contextlib.suppress(ImpairError):
            await _run("ip", "link", "del", self.host_device)
        with contextlib.suppress(ImpairError):
            await _run("nft", "delete", "table", "netdev", f"mcu_impair_{self.index}")

    async def __aenter__(self) -> ImpairedLink:
        try:
            await self.open()
        except BaseException:
            await self.close()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()
