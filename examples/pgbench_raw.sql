-- The raw transaction of the durable-transition benchmark, for pgbench: one update and two inserts per
-- commit, against the benchmark's scratch database (projects 1..72 exist there).
\set id random(1, 72)
BEGIN;
UPDATE projects SET updated_at = now() WHERE id = :id;
INSERT INTO events (project_id, seq, at, actor, kind, changes, prev_hash, hash)
  VALUES (:id, nextval('pgbench_seq'), now(), 'raw', 'raw', '{}', '', '');
INSERT INTO outbox (template, lang, recipients, context, status, attempts, next_attempt_at, created_at)
  VALUES ('raw', 'fr', '[]', '{}', 'raw', 0, now(), now());
COMMIT;
