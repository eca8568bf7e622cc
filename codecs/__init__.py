"""Pure functions over RTP payload bytes: keyframes, layers, audio level."""
