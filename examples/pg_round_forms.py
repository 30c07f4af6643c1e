#!/usr/bin/env python3
"""PostgreSQL's own cost of a round of transitions' writes, in three forms of SQL, measured with pgbench.

A transition of the benchmark loop writes: the project's version bump, its event, a deadline cleared and
one set (upsert), the deadline's check, and a mail per officer (BENCHMARKS.md). The writer sends the writes
of up to 16 transitions in one transaction; this compares how PostgreSQL takes them:

- `apart`:  each transition's writes as one statement of CTEs, 16 statements per transaction (the writer
            before shared rounds, and SQLite's way);
- `ctes`:   the 16 transitions' CTEs renumbered into one statement (the writer of session 10);
- `unnest`: one statement of fixed text whose writes each take all 16 projects at once (the writer today,
            `crates/store/src/round.rs`, whose rows travel as JSON rather than arrays).

Each pgbench client (one per writer lane) owns 16 projects. Prints units (transitions) per second and the
machine's busy CPU per unit (PostgreSQL and pgbench together). Needs the database the storage benchmark
keeps (`bash examples/bench_store.sh`, which runs `durable_transitions --keep`): 64 projects and an officer.

    python3 examples/pg_round_forms.py [--seconds 5] [--clients 4] [--repeat 3] [--database incubator_bench_keep]
"""

import argparse
import pathlib
import re
import subprocess
import tempfile

UNITS = 16
BASE = f"(:client_id * {UNITS})"
EVENT_COLUMNS = (
    "project_id, seq, at, actor, kind, transition, from_state, to_state, comment, changes, prev_hash, hash"
)
EVENT_VALUES = "now(), 'user:1', 'transition', 't', 'a', 'b', NULL, '{}', repeat('0', 64), repeat('1', 64)"
BUMP_SET = (
    "version = version + 1, last_event_seq = last_event_seq + 1, "
    "last_event_hash = md5(random()::text) || md5(random()::text), updated_at = now(), state = 'b', "
    "state_entered_at = now()"
)
DEADLINE_COLUMNS = "project_id, key, due_at, set_at, cleared_at, paused_at"
UPSERT = (
    "ON CONFLICT (project_id, key) DO UPDATE SET due_at = excluded.due_at, set_at = excluded.set_at, "
    "cleared_at = excluded.cleared_at, paused_at = excluded.paused_at RETURNING *"
)
MAIL_COLUMNS = (
    "project_id, event_seq, template, lang, recipients, context, status, attempts, next_attempt_at, created_at"
)
MAIL_VALUES = (
    "1, 't', users.lang, ('[{\"email\":' || to_json(users.email) || '}]')::text, '{}', 'sent', 0, now(), now()"
)
OFFICERS = "users.role = 'officer' AND users.disabled = false"


def unit_ctes(unit: int, first: int) -> list[str]:
    """One transition's writes as CTEs w{first}…w{first + 5}, as `Batch` writes them."""
    project = f"({BASE} + {unit + 1})"
    w = [f"w{first + n}" for n in range(6)]
    return [
        f"{w[0]} AS (UPDATE projects SET {BUMP_SET} WHERE projects.id = {project} RETURNING *)",
        f"{w[1]} AS (INSERT INTO events ({EVENT_COLUMNS}) SELECT {project}, "
        f"(SELECT last_event_seq FROM {w[0]}), {EVENT_VALUES} WHERE EXISTS (SELECT 1 FROM {w[0]}))",
        f"{w[2]} AS (UPDATE deadlines SET cleared_at = now() WHERE deadlines.project_id = {project} "
        "AND deadlines.key IN ('k1') AND deadlines.cleared_at IS NULL)",
        f"{w[3]} AS (INSERT INTO deadlines ({DEADLINE_COLUMNS}) VALUES "
        f"({project}, 'k2', now() + interval '1 day', now(), NULL, NULL) {UPSERT})",
        f"{w[4]} AS (INSERT INTO deadline_checks (next_check_at, deadline_id) SELECT clock_timestamp(), id "
        f"FROM {w[3]} WHERE project_id = {project} AND key = 'k2' AND cleared_at IS NULL ON CONFLICT DO NOTHING)",
        f"{w[5]} AS (INSERT INTO outbox ({MAIL_COLUMNS}) SELECT {project}, {MAIL_VALUES} "
        f"FROM users WHERE {OFFICERS} ORDER BY users.id)",
    ]


def apart() -> str:
    statements = [
        "WITH " + ", ".join(unit_ctes(unit, 0)) + " SELECT id FROM w0;" for unit in range(UNITS)
    ]
    return "\n".join(["BEGIN;", *statements, "COMMIT;"]) + "\n"


def ctes() -> str:
    writes = [cte for unit in range(UNITS) for cte in unit_ctes(unit, 6 * unit)]
    guards = " UNION ALL ".join(f"SELECT id FROM w{6 * unit}" for unit in range(UNITS))
    return "WITH " + ", ".join(writes) + " " + guards + ";\n"


def unnest() -> str:
    return (
        f"WITH p AS (SELECT generate_series({BASE} + 1, {BASE} + {UNITS}) AS id), "
        f"w0 AS (UPDATE projects SET {BUMP_SET} FROM p WHERE projects.id = p.id RETURNING projects.*), "
        f"w1 AS (INSERT INTO events ({EVENT_COLUMNS}) SELECT id, last_event_seq, {EVENT_VALUES} FROM w0), "
        "w2 AS (UPDATE deadlines SET cleared_at = now() FROM p WHERE deadlines.project_id = p.id "
        "AND deadlines.key IN ('k1') AND deadlines.cleared_at IS NULL), "
        f"w3 AS (INSERT INTO deadlines ({DEADLINE_COLUMNS}) SELECT id, 'k2', now() + interval '1 day', now(), "
        f"NULL, NULL FROM p {UPSERT}), "
        "w4 AS (INSERT INTO deadline_checks (next_check_at, deadline_id) SELECT clock_timestamp(), id FROM w3 "
        "WHERE key = 'k2' AND cleared_at IS NULL ON CONFLICT DO NOTHING), "
        f"w5 AS (INSERT INTO outbox ({MAIL_COLUMNS}) SELECT p.id, {MAIL_VALUES} FROM p CROSS JOIN users "
        f"WHERE {OFFICERS}) SELECT id FROM w0;\n"
    )


def busy_jiffies() -> int:
    """The machine's busy time so far (user, nice, system, irq, softirq), in clock ticks."""
    fields = pathlib.Path("/proc/stat").read_text().splitlines()[0].split()
    return sum(int(fields[n]) for n in (1, 2, 3, 6, 7))


def pgbench(script: pathlib.Path, args: argparse.Namespace) -> tuple[float, float]:
    """Units per second and busy CPU ms per unit for one run."""
    before = busy_jiffies()
    out = subprocess.run(
        ["pgbench", "-n", "-M", "prepared", "-h", args.host, "-U", "postgres", "-c", str(args.clients),
         "-j", "2", "-T", str(args.seconds), "-f", str(script), args.database],
        capture_output=True, text=True, check=True,
    ).stdout
    ticks = busy_jiffies() - before
    failed = re.search(r"number of failed transactions: (\d+)", out)
    if failed and int(failed.group(1)):
        raise SystemExit(f"{script.name}: {failed.group(1)} failed transactions\n{out}")
    tps = float(re.search(r"^tps = ([0-9.]+)", out, re.M).group(1))
    units = tps * UNITS
    # /proc/stat counts in 1/100 s on Linux.
    return units, ticks * 10 / (units * args.seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--clients", type=int, default=4, help="the writer's lanes")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--database", default="incubator_bench_keep")
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        scripts = {}
        for name, sql in (("apart", apart()), ("ctes", ctes()), ("unnest", unnest())):
            scripts[name] = pathlib.Path(work, f"{name}.sql")
            scripts[name].write_text(sql)
        print(f"{UNITS} transitions per transaction, {args.clients} clients, {args.seconds} s per run")
        print(f"{'run':>4} {'form':>7} {'transitions/s':>14} {'CPU ms/transition':>18}")
        for run in range(1, args.repeat + 1):
            for name, script in scripts.items():
                units, cpu = pgbench(script, args)
                print(f"{run:>4} {name:>7} {units:>14.0f} {cpu:>18.3f}", flush=True)


if __name__ == "__main__":
    main()
