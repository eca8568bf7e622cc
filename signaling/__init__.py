"""How peers reach the media plane: WebSocket rooms, REST admin API, authentication."""
