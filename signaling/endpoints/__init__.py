"""The endpoints: WebSocket signalling, WHIP/WHEP, the admin API, uploads, join pages and
the cluster's internal routes. They turn requests into room-domain calls and domain
errors into wire errors."""
