"""Recording sinks (fragmented MP4), the composite, and the library's catalogue."""
