"""The operator and integrator docs name what the code actually has."""

from __future__ import annotations

import re
from pathlib import Path

from mcu.app.cluster_options import CLUSTER_TABLE
from mcu.app.config import _INTERNAL_FIELDS, Config
from mcu.contracts.cluster import ROOM_CHANGES_CHANNEL
from mcu.crypto.secrets import ADMIN_TOKEN_NAME
from mcu.library.api import MASTER_KEY_NAME
from mcu.library.shares import SHARE_KEY_NAME
from mcu.signaling.endpoints.admin import CreateRoom, UpdateRoom
from mcu.signaling.rooms.livecounts import LIVE_PREFIX, LIVE_SOURCES
from mcu.signaling.rooms.redisstore import REVOKED_PREFIX, ROOM_INDEX, ROOM_PREFIX

DOCS = Path(__file__).resolve().parents[2] / "docs"


def _section(text: str, heading: str) -> str:
    """The text under ``heading`` up to the next heading of any level."""
    start = text.index(heading)
    following = re.search(r"^#{1,6} ", text[start + len(heading) :], re.MULTILINE)
    return text[start : start + len(heading) + (following.start() if following else len(text))]


def test_every_secret_file_is_named_where_backups_are_explained() -> None:
    secrets = _section((DOCS / "configuration.md").read_text(), "### Secrets")
    for name in (ADMIN_TOKEN_NAME, "invite-key", MASTER_KEY_NAME, SHARE_KEY_NAME):
        assert f"`{name}`" in secrets, name
    assert "recording-master-key" not in (DOCS / "configuration.md").read_text()


def test_every_setting_is_documented_and_no_invented_one_is() -> None:
    configuration = (DOCS / "configuration.md").read_text()
    toml_keys = {field: f"cluster.{key}" for key, field in CLUSTER_TABLE.items()}
    for name in Config.model_fields.keys() - _INTERNAL_FIELDS:
        assert f"`{toml_keys.get(name, name)}`" in configuration, name
    library = (DOCS / "library.md").read_text()
    assert "encrypt_uploads`, the default" not in library
    assert "`encrypt_recordings`" in library


def test_room_bodies_list_every_field() -> None:
    api = (DOCS / "api.md").read_text()
    create = _section(api, "### `POST /api/rooms`")
    for name in CreateRoom.model_fields:
        assert f"| `{name}` |" in create, name
    update = _section(api, "### `PATCH /api/rooms/{id}`")
    for name in UpdateRoom.model_fields:
        assert f"`{name}`" in update, name


def test_metric_types_match_the_registry() -> None:
    operations = (DOCS / "operations.md").read_text()
    row = next(line for line in operations.splitlines() if "`mcu_front_worker_restarts`" in line)
    # The front sets it from its supervisor's count: a gauge, so rate() would be wrong.
    assert "| gauge, gauge |" in row
    assert "empty until it is wired" not in operations


def test_every_key_the_shared_state_writes_is_in_the_keys_table() -> None:
    keys = _section((DOCS / "cluster.md").read_text(), "## Keys in Redis")
    rows = [line.split("|")[1].strip().strip("`") for line in keys.splitlines()[4:] if "|" in line]
    for prefix in (ROOM_PREFIX, REVOKED_PREFIX, LIVE_PREFIX):
        assert any(row.startswith(prefix) for row in rows), prefix
    for name in (ROOM_INDEX, LIVE_SOURCES, ROOM_CHANGES_CHANNEL):
        assert name in rows, name
    assert all(row.startswith("mcu:") for row in rows), rows
