"""Atomic appends to several streams in one statement.

A saga step changes an account and its transfer together. Through `sagaline_append` that is
BEGIN, one call per stream and COMMIT: four round trips. `sagaline_append_streams` takes every
stream's part as one JSON array and runs as a single autocommit statement.

A wrong expected version names its stream here: DETAIL is `{"stream_id": ..., "version": ...}`
rather than the bare version `sagaline_append` gives, so the caller knows which stream moved.

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

APPEND_STREAMS_FUNCTION = """
CREATE FUNCTION sagaline_append_streams(p_appends jsonb)
RETURNS TABLE (stream_id text, stream_version integer, last_position bigint)
LANGUAGE plpgsql AS $$
DECLARE
    a jsonb;
    v_actual text;
BEGIN
    -- Streams in one order, so two appends to the same streams never wait on each other.
    FOR a IN SELECT value FROM jsonb_array_elements(p_appends) ORDER BY value->>'stream_id' LOOP
        stream_id := a->>'stream_id';
        SELECT r.stream_version, r.last_position INTO stream_version, last_position
        FROM sagaline_append(
            stream_id, (a->>'expected')::integer, a->'events', a->'claims', a->'releases'
        ) AS r;
        RETURN NEXT;
    END LOOP;
EXCEPTION WHEN SQLSTATE 'SL001' THEN
    GET STACKED DIAGNOSTICS v_actual = PG_EXCEPTION_DETAIL;
    RAISE EXCEPTION 'wrong expected version for stream %', stream_id
        USING ERRCODE = 'SL001',
              DETAIL = jsonb_build_object('stream_id', stream_id, 'version', v_actual::integer)::text;
END;
$$;
"""


def upgrade() -> None:
    op.execute(APPEND_STREAMS_FUNCTION)


def downgrade() -> None:
    op.execute("DROP FUNCTION sagaline_append_streams(jsonb)")
