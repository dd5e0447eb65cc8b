//! The schema migrations the PostgreSQL backend runs itself on connect: numbered, each applied once, under an advisory lock.

use tokio_postgres::Client;

/// Migration `n` (1-based) is `MIGRATIONS[n - 1]`; `{s}` is the schema.
/// Append only: a released migration never changes.
const MIGRATIONS: &[&str] = &[r#"
CREATE TABLE {s}.channels (
    name text PRIMARY KEY,
    seq bigint NOT NULL DEFAULT 0
);
CREATE TABLE {s}.messages (
    channel text NOT NULL,
    seq bigint NOT NULL,
    id bigint NOT NULL,
    payload bytea NOT NULL,
    at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (channel, seq)
);
CREATE TABLE {s}.dedup (
    channel text NOT NULL,
    key text NOT NULL,
    seq bigint NOT NULL,
    id bigint NOT NULL,
    at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (channel, key)
);
CREATE INDEX ON {s}.dedup (at);
-- One append: the channel row is locked for the transaction, so seqs are
-- gap-free and monotonic whichever node appends; a known key returns the
-- first append's seq; retention runs in the same transaction; NOTIFY wakes
-- every node's feed (delivered at commit).
CREATE FUNCTION {s}.append(ch text, k text, msg_id bigint, body bytea, max_len bigint, max_age_ms bigint)
RETURNS TABLE (seq bigint, id bigint, duplicate boolean)
LANGUAGE plpgsql SET search_path = {s} AS $$
DECLARE
    cur bigint;
    old_seq bigint;
    old_id bigint;
BEGIN
    INSERT INTO channels (name) VALUES (ch) ON CONFLICT DO NOTHING;
    SELECT c.seq INTO cur FROM channels c WHERE c.name = ch FOR UPDATE;
    IF k IS NOT NULL THEN
        SELECT d.seq, d.id INTO old_seq, old_id FROM dedup d WHERE d.channel = ch AND d.key = k;
        IF FOUND THEN
            RETURN QUERY SELECT old_seq, old_id, true;
            RETURN;
        END IF;
    END IF;
    cur := cur + 1;
    UPDATE channels SET seq = cur WHERE name = ch;
    INSERT INTO messages (channel, seq, id, payload) VALUES (ch, cur, msg_id, body);
    IF k IS NOT NULL THEN
        INSERT INTO dedup (channel, key, seq, id) VALUES (ch, k, cur, msg_id);
    END IF;
    IF max_len > 0 THEN
        DELETE FROM messages m WHERE m.channel = ch AND m.seq <= cur - max_len;
    END IF;
    IF max_age_ms > 0 THEN
        DELETE FROM messages m WHERE m.channel = ch AND m.at < now() - max_age_ms * interval '1 millisecond';
    END IF;
    PERFORM pg_notify('{s}_feed', ch);
    RETURN QUERY SELECT cur, msg_id, false;
END $$;
"#];

/// Creates the schema and applies the migrations it lacks (an advisory
/// lock keeps two nodes starting at once from racing).
pub(crate) async fn run(client: &Client, schema: &str) -> Result<(), tokio_postgres::Error> {
    client
        .batch_execute(&format!(
            "SELECT pg_advisory_lock(hashtext('tidings:{schema}'));
             CREATE SCHEMA IF NOT EXISTS {schema};
             CREATE TABLE IF NOT EXISTS {schema}.migrations (version int PRIMARY KEY, at timestamptz NOT NULL DEFAULT now());"
        ))
        .await?;
    let result = apply(client, schema).await;
    let unlock = client
        .batch_execute(&format!(
            "SELECT pg_advisory_unlock(hashtext('tidings:{schema}'))"
        ))
        .await;
    result.and(unlock)
}

async fn apply(client: &Client, schema: &str) -> Result<(), tokio_postgres::Error> {
    let row = client
        .query_one(
            &format!("SELECT coalesce(max(version), 0) FROM {schema}.migrations"),
            &[],
        )
        .await?;
    let have: i32 = row.get(0);
    for (i, sql) in MIGRATIONS.iter().enumerate() {
        let version = i32::try_from(i + 1).unwrap_or(i32::MAX);
        if version <= have {
            continue;
        }
        let sql = sql.replace("{s}", schema);
        client
            .batch_execute(&format!(
                "BEGIN; {sql}; INSERT INTO {schema}.migrations (version) VALUES ({version}); COMMIT;"
            ))
            .await?;
    }
    Ok(())
}
