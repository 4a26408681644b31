"""Event store: events, streams, unique keys, checkpoints and the append function.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# One round trip per stream append: expected version, unique keys and events in one call.
APPEND_FUNCTION = """
CREATE FUNCTION sagaline_append(
    p_stream_id text, p_expected integer, p_events jsonb, p_claims jsonb, p_releases jsonb
) RETURNS TABLE (stream_version integer, last_position bigint)
LANGUAGE plpgsql AS $$
DECLARE
    n integer := jsonb_array_length(p_events);
    v_new integer;
    v_last bigint;
    v_owner text;
    k record;
BEGIN
    IF p_expected = -1 THEN
        INSERT INTO streams AS s (stream_id, version) VALUES (p_stream_id, n)
        ON CONFLICT (stream_id) DO UPDATE SET version = s.version + n
        RETURNING s.version INTO v_new;
    ELSIF p_expected = 0 THEN
        INSERT INTO streams (stream_id, version) VALUES (p_stream_id, n)
        ON CONFLICT (stream_id) DO NOTHING
        RETURNING version INTO v_new;
    ELSIF p_expected = -2 THEN
        UPDATE streams SET version = version + n WHERE stream_id = p_stream_id
        RETURNING version INTO v_new;
    ELSE
        UPDATE streams SET version = version + n
        WHERE stream_id = p_stream_id AND version = p_expected
        RETURNING version INTO v_new;
    END IF;
    IF v_new IS NULL THEN
        RAISE EXCEPTION 'wrong expected version for stream %', p_stream_id
            USING ERRCODE = 'SL001',
                  DETAIL = coalesce((SELECT version FROM streams WHERE stream_id = p_stream_id), 0);
    END IF;

    FOR k IN SELECT * FROM jsonb_to_recordset(p_claims) AS c(scope text, value text) LOOP
        INSERT INTO unique_keys (scope, value, stream_id) VALUES (k.scope, k.value, p_stream_id)
        ON CONFLICT (scope, value) DO NOTHING;
        IF NOT FOUND THEN
            SELECT stream_id INTO v_owner FROM unique_keys
            WHERE scope = k.scope AND value = k.value;
            IF v_owner IS DISTINCT FROM p_stream_id THEN
                RAISE EXCEPTION 'unique key % % is taken', k.scope, k.value
                    USING ERRCODE = 'SL002',
                          DETAIL = jsonb_build_object('scope', k.scope, 'value', k.value)::text;
            END IF;
        END IF;
    END LOOP;

    DELETE FROM unique_keys u
    USING jsonb_to_recordset(p_releases) AS r(scope text, value text)
    WHERE u.scope = r.scope AND u.value = r.value AND u.stream_id = p_stream_id;

    WITH inserted AS (
        INSERT INTO events (event_id, stream_id, version, type, schema_version, data, metadata)
        SELECT (e->>'event_id')::uuid, p_stream_id, v_new - n + ord::integer, e->>'type',
               (e->>'schema_version')::smallint, e->'data', e->'metadata'
        FROM jsonb_array_elements(p_events) WITH ORDINALITY AS t(e, ord)
        ORDER BY ord
        RETURNING position
    )
    SELECT max(position) INTO v_last FROM inserted;
    PERFORM pg_notify('sagaline_events', v_last::text);

    RETURN QUERY SELECT v_new, v_last;
END;
$$;
"""


def upgrade() -> None:
    op.create_table(
        "events",
        sa.Column("position", sa.BigInteger, sa.Identity(always=True), primary_key=True),
        sa.Column("event_id", sa.Uuid, nullable=False, unique=True),
        sa.Column("stream_id", sa.Text, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("type", sa.Text, nullable=False),
        sa.Column("schema_version", sa.SmallInteger, nullable=False),
        sa.Column("data", JSONB, nullable=False),
        sa.Column("metadata", JSONB, nullable=False),
        sa.Column(
            "recorded_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.UniqueConstraint("stream_id", "version", name="events_stream_version_key"),
    )
    op.create_table(
        "streams",
        sa.Column("stream_id", sa.Text, primary_key=True),
        sa.Column("version", sa.Integer, nullable=False),
    )
    op.create_table(
        "unique_keys",
        sa.Column("scope", sa.Text, primary_key=True),
        sa.Column("value", sa.Text, primary_key=True),
        sa.Column("stream_id", sa.Text, nullable=False),
    )
    op.create_table(
        "checkpoints",
        sa.Column("name", sa.Text, primary_key=True),
        sa.Column("position", sa.BigInteger, nullable=False),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
    )
    op.execute(APPEND_FUNCTION)


def downgrade() -> None:
    op.execute("DROP FUNCTION sagaline_append(text, integer, jsonb, jsonb, jsonb)")
    for table in ("checkpoints", "unique_keys", "streams", "events"):
        op.drop_table(table)
