"""A selective forwarding media server for telemedicine consultation rooms and lessons."""

__version__ = "0.1.0"
