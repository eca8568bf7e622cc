"""A selective forwarding media server for telemedicine consultation rooms and lessons."""

from mcu.infra import native as _native

__version__ = "0.1.0"

# Before anything imports the per-packet modules: their compiled build only if it is current.
_native.select()
