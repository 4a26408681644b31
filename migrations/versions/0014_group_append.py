"""Group commit: many callers' appends in one statement and one commit.

`sagaline_append_group` takes a JSON array of appends, each an array of stream parts as
`sagaline_append_streams` takes them, and returns one row per append, in input order. Each
append runs in its own subtransaction (a BEGIN ... EXCEPTION block), so a wrong expected
version, a taken unique key or a re-used event id rolls back that append alone and comes back
as its row's `error_code` (SL001, SL002, 23505) instead of failing the whole group. Appends
run in input order: a later append to a stream sees an earlier one's version, and of two
appends claiming one key the earlier wins.

Lock order: every existing stream the group names is locked up front, in stream id order, as
`sagaline_append_streams` does for one append; so two groups, from any processes, over the same
streams queue behind each other instead of deadlocking. The unlikely rest (keys or new streams
crossing between groups) ends in a detected deadlock, which fails the whole statement; the
caller then appends the group's members one by one.

A rolled-back append's positions are gaps that never fill, as a rolled-back transaction's are;
positions of an append that will commit are drawn under the RowExclusiveLock on `events` that
its transaction holds until commit, so `read_all`'s gap wait covers them.

Revision ID: 0014
Revises: 0013
"""

from __future__ import annotations

from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

APPEND_GROUP_FUNCTION = """
CREATE FUNCTION sagaline_append_group(p_appends jsonb)
RETURNS TABLE (
    append_index integer, stream_ids text[], stream_versions integer[], last_position bigint,
    error_code text, error_stream text, error_detail text
)
LANGUAGE plpgsql AS $$
DECLARE
    a record;
    s jsonb;
    v_version integer;
    v_last bigint;
BEGIN
    PERFORM 1 FROM streams AS t
    WHERE t.stream_id IN (
        SELECT part->>'stream_id'
        FROM jsonb_array_elements(p_appends) AS g(parts), jsonb_array_elements(g.parts) AS p(part)
    )
    ORDER BY t.stream_id
    FOR UPDATE;

    FOR a IN
        SELECT g.parts, g.ord FROM jsonb_array_elements(p_appends) WITH ORDINALITY AS g(parts, ord)
        ORDER BY g.ord
    LOOP
        append_index := a.ord - 1;
        stream_ids := '{}';
        stream_versions := '{}';
        last_position := NULL;
        error_code := NULL;
        error_stream := NULL;
        error_detail := NULL;
        BEGIN
            FOR s IN
                SELECT part FROM jsonb_array_elements(a.parts) AS p(part)
                ORDER BY part->>'stream_id'
            LOOP
                error_stream := s->>'stream_id';
                SELECT r.stream_version, r.last_position INTO v_version, v_last
                FROM sagaline_append(
                    error_stream, (s->>'expected')::integer, s->'events', s->'claims',
                    s->'releases'
                ) AS r;
                stream_ids := stream_ids || error_stream;
                stream_versions := stream_versions || v_version;
                last_position := greatest(last_position, v_last);
            END LOOP;
            error_stream := NULL;
        EXCEPTION WHEN SQLSTATE 'SL001' OR SQLSTATE 'SL002' OR unique_violation THEN
            GET STACKED DIAGNOSTICS error_code = RETURNED_SQLSTATE,
                                    error_detail = PG_EXCEPTION_DETAIL;
            stream_ids := '{}';
            stream_versions := '{}';
            last_position := NULL;
        END;
        RETURN NEXT;
    END LOOP;
END;
$$;
"""


def upgrade() -> None:
    op.execute(APPEND_GROUP_FUNCTION)


def downgrade() -> None:
    op.execute("DROP FUNCTION sagaline_append_group(jsonb)")
