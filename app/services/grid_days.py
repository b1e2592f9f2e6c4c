"""Patrol effort per grid and day, kept by triggers: what blind spots read instead of the visits.

A blind-spot map of a district sums, for each of its thousand grids, the visits to its sites
over a window (30 days by default), the site-days among them (a site counted once a day,
whoever came) and the last day anyone patrolled the grid. Read from ``patrol_visits`` that is
every visit of the window — 160,000 for a month of a city district, a third of a second to
count distinct — on every request. ``grid_days`` keeps one row per grid and day instead:

* ``patrols``: patrol points recorded in the grid that day (``patrols.grid_code``);
* ``visits``: visits that day to sites of the grid (the project's current ``grid_code``);
* ``site_days``: sites of the grid visited that day, each once.

so a window is at most (days × grids) small rows, read by one index range. Statement-level
triggers with transition tables keep it in step, in the writing transaction:

* on ``patrols``, insert/delete/update add and subtract their points by (grid, day);
* on ``patrol_visits``, likewise their visits; a (site, day) becomes a site-day when its first
  visit arrives and stops being one when its last goes, judged from the visits in the table
  after the statement (the trigger takes an advisory lock per site first, so two uploads
  crediting the same site in the same day count it once: the second waits for the first; a
  transaction writing the visits of more than ``SITE_LOCK_LIMIT`` sites, a bulk import, locks
  the table instead);
* on ``projects``, a site moved to another grid takes its visits and site-days along;
* a truncate of either table zeroes its columns.

Rows brought to all zeros are deleted. :func:`recompute_sql` is the same table computed from
scratch (the migration's backfill and the tests' check).
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.orm import Session

from app.services import kept

TABLE = "grid_days"
_LOCK_CLASS = 4_733  # the advisory-lock namespace of the per-site locks (two-int form)
_LOCK_SETTING = "xiaosan.site_locks"  # per-site locks this transaction holds; -1: the table's
SITE_LOCK_LIMIT = 256  # per-site locks a transaction takes before locking the table instead
_COLUMNS = "grid_code, day, district_code, patrols, visits, site_days"


def _apply(select: str, with_: str = "") -> str:
    """PL/pgSQL adding the signed rows of ``select`` (columns as ``_COLUMNS``; ``with_``: CTEs
    it uses) to the table (:func:`app.services.kept.signed_upsert`)."""
    return kept.signed_upsert(TABLE, ("grid_code", "day"), ("district_code",),
                              ("patrols", "visits", "site_days"), select, with_=with_,
                              where="grid_code IS NOT NULL")


def _patrols(rows: str, sign: int) -> str:
    return (f"SELECT grid_code, patrol_on AS day, district_code, {sign} * count(*) AS patrols, "
            f"0 AS visits, 0 AS site_days FROM {rows} GROUP BY grid_code, patrol_on, "
            "district_code")


def _visits(changes: str) -> str:
    """Visits and site-days of ``changes`` (project_id, day, n_old, n_new: the statement's
    visits per site and day before and after), judged against the table as it is now."""
    return f"""
        SELECT p.grid_code, d.day, p.district_code, 0 AS patrols,
               d.n_new - d.n_old AS visits,
               (now_n > 0)::int - ((now_n - d.n_new + d.n_old) > 0)::int AS site_days
        FROM ({changes}) d
        JOIN projects p ON p.id = d.project_id
        CROSS JOIN LATERAL (SELECT count(*) AS now_n FROM patrol_visits v
                            WHERE v.project_id = d.project_id AND v.visited_on = d.day) c"""


def _changes(*parts: tuple[str, int, int]) -> str:
    union = " UNION ALL ".join(
        f"SELECT project_id, visited_on AS day, {old} AS n_old, {new} AS n_new FROM {rows}"
        for rows, old, new in parts)
    return (f"SELECT project_id, day, sum(n_old) AS n_old, sum(n_new) AS n_new "
            f"FROM ({union}) u GROUP BY project_id, day")


def _lock(rows: str, limit: int | None) -> str:
    """PL/pgSQL serialising the statement's sites against other transactions writing them.

    With ``limit``: per-site advisory locks while the transaction holds at most ``limit`` of
    them (counted in the transaction-local setting ``xiaosan.site_locks``); past it, one lock
    on the whole table instead (``SHARE ROW EXCLUSIVE``: it waits for the other writers of
    visits to commit and holds off new ones until this transaction ends), so a bulk import of
    a year of visits neither exhausts the server's lock table (``max_locks_per_transaction``
    × connections: 6,400 by default, shared by all) nor takes a lock per site. ``None``: per
    site always (the form of revision 0008).
    """
    each = (f"PERFORM pg_advisory_xact_lock({_LOCK_CLASS}, s.project_id) FROM "
            f"(SELECT DISTINCT project_id FROM {rows}) s ORDER BY s.project_id")
    if limit is None:
        return each
    return f"""
        held := coalesce(nullif(current_setting('{_LOCK_SETTING}', true), ''), '0')::int;
        IF held >= 0 THEN
          SELECT count(DISTINCT project_id) INTO sites FROM {rows};
          IF held + sites > {limit} THEN
            LOCK TABLE patrol_visits IN SHARE ROW EXCLUSIVE MODE;
            PERFORM set_config('{_LOCK_SETTING}', '-1', true);
          ELSE
            {each};
            PERFORM set_config('{_LOCK_SETTING}', (held + sites)::text, true);
          END IF;
        END IF"""


def visits_function_sql(site_lock_limit: int | None = SITE_LOCK_LIMIT) -> str:
    """The trigger function on ``patrol_visits`` (``CREATE OR REPLACE``; see :func:`_lock`)."""
    old = ("old_rows", 1, 0)
    new = ("new_rows", 0, 1)
    both = "(SELECT project_id FROM old_rows UNION SELECT project_id FROM new_rows) r"
    return f"""CREATE OR REPLACE FUNCTION {TABLE}_visits_keep() RETURNS trigger
            LANGUAGE plpgsql AS $$
            DECLARE gone tid[]; held int; sites int;
            BEGIN
              IF TG_OP = 'TRUNCATE' THEN
                UPDATE {TABLE} SET visits = 0, site_days = 0
                WHERE visits <> 0 OR site_days <> 0;
                DELETE FROM {TABLE} WHERE patrols = 0 AND visits = 0 AND site_days = 0;
              ELSIF TG_OP = 'INSERT' THEN
                {_lock('new_rows', site_lock_limit)};
                {_apply(_visits(_changes(new)))};
              ELSIF TG_OP = 'DELETE' THEN
                {_lock('old_rows', site_lock_limit)};
                {_apply(_visits(_changes(old)))};
              ELSE
                {_lock(both, site_lock_limit)};
                {_apply(_visits(_changes(old, new)))};
              END IF;
              RETURN NULL;
            END $$"""


def install_sql() -> list[str]:
    """The table, its indexes, the triggers on patrols, patrol_visits and projects, the fill."""
    moved = """
        SELECT n.id, o.grid_code AS old_grid, o.district_code AS old_district,
               n.grid_code AS new_grid, n.district_code AS new_district
        FROM old_rows o JOIN new_rows n ON n.id = o.id
        WHERE o.grid_code IS DISTINCT FROM n.grid_code"""
    per_site_day = """
        SELECT m.*, v.visited_on AS day, count(*) AS n
        FROM moved m JOIN patrol_visits v ON v.project_id = m.id GROUP BY m.id, m.old_grid,
             m.old_district, m.new_grid, m.new_district, v.visited_on"""
    return [
        f"""CREATE TABLE {TABLE} (
              grid_code varchar(24) NOT NULL,
              day date NOT NULL,
              district_code varchar(12) NOT NULL,
              patrols integer NOT NULL,
              visits integer NOT NULL,
              site_days integer NOT NULL,
              CONSTRAINT pk_{TABLE} PRIMARY KEY (grid_code, day))""",
        f"COMMENT ON TABLE {TABLE} IS 'Patrol points, visits and site-days per grid and day, "
        "kept by triggers on patrols, patrol_visits and projects (app/services/grid_days.py)'",
        f"CREATE INDEX ix_{TABLE}_district_day ON {TABLE} (district_code, day) "
        "INCLUDE (grid_code, patrols, visits, site_days)",
        f"""CREATE FUNCTION {TABLE}_patrols_keep() RETURNS trigger LANGUAGE plpgsql AS $$
            DECLARE gone tid[];
            BEGIN
              IF TG_OP = 'TRUNCATE' THEN
                UPDATE {TABLE} SET patrols = 0 WHERE patrols <> 0;
                DELETE FROM {TABLE} WHERE patrols = 0 AND visits = 0 AND site_days = 0;
              ELSIF TG_OP = 'INSERT' THEN {_apply(_patrols('new_rows', 1))};
              ELSIF TG_OP = 'DELETE' THEN {_apply(_patrols('old_rows', -1))};
              ELSE {_apply(_patrols('old_rows', -1) + ' UNION ALL '
                           + _patrols('new_rows', 1))};
              END IF;
              RETURN NULL;
            END $$""",
        visits_function_sql(),
        f"""CREATE FUNCTION {TABLE}_sites_keep() RETURNS trigger LANGUAGE plpgsql AS $$
            DECLARE gone tid[];
            BEGIN
              IF EXISTS (SELECT 1 FROM old_rows o JOIN new_rows n ON n.id = o.id
                         WHERE o.grid_code IS DISTINCT FROM n.grid_code) THEN
                {_apply('''
                    SELECT old_grid AS grid_code, day, old_district AS district_code,
                           0 AS patrols, -n AS visits, -1 AS site_days FROM per
                    UNION ALL
                    SELECT new_grid, day, new_district, 0, n, 1 FROM per''',
                        f"moved AS ({moved}), per AS ({per_site_day})")};
              END IF;
              RETURN NULL;
            END $$""",
        *(f"CREATE TRIGGER {TABLE}_{table}_{op[:3]} AFTER {op.upper()} ON {table} "
          f"REFERENCING {refs} FOR EACH STATEMENT EXECUTE FUNCTION {TABLE}_{fn}_keep()"
          for table, fn in (("patrols", "patrols"), ("patrol_visits", "visits"))
          for op, refs in (("insert", "NEW TABLE AS new_rows"),
                           ("update", "OLD TABLE AS old_rows NEW TABLE AS new_rows"),
                           ("delete", "OLD TABLE AS old_rows"))),
        *(f"CREATE TRIGGER {TABLE}_{table}_tru AFTER TRUNCATE ON {table} "
          f"FOR EACH STATEMENT EXECUTE FUNCTION {TABLE}_{fn}_keep()"
          for table, fn in (("patrols", "patrols"), ("patrol_visits", "visits"))),
        f"CREATE TRIGGER {TABLE}_projects_upd AFTER UPDATE ON projects REFERENCING OLD TABLE "
        f"AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION "
        f"{TABLE}_sites_keep()",
        f"INSERT INTO {TABLE} ({_COLUMNS}) {recompute_sql()}",
        f"ANALYZE {TABLE}",
    ]


def drop_sql() -> list[str]:
    return [
        *(f"DROP TRIGGER IF EXISTS {TABLE}_{table}_{op} ON {table}"
          for table in ("patrols", "patrol_visits") for op in ("ins", "upd", "del", "tru")),
        f"DROP TRIGGER IF EXISTS {TABLE}_projects_upd ON projects",
        *(f"DROP FUNCTION IF EXISTS {TABLE}_{fn}_keep()" for fn in ("patrols", "visits",
                                                                    "sites")),
        f"DROP TABLE IF EXISTS {TABLE}",
    ]


def recompute_sql() -> str:
    """The table's rows from scratch, in its column order, sorted by its key."""
    return f"""
        SELECT grid_code, day, min(district_code), sum(patrols)::int, sum(visits)::int,
               sum(site_days)::int
        FROM ({_patrols('patrols', 1)}
              UNION ALL
              SELECT p.grid_code, v.visited_on, p.district_code, 0, count(*), 1
              FROM patrol_visits v JOIN projects p ON p.id = v.project_id
              GROUP BY p.grid_code, p.district_code, v.project_id, v.visited_on) s
        WHERE grid_code IS NOT NULL
        GROUP BY grid_code, day ORDER BY grid_code, day"""


def drift(session: Session) -> int:
    """Rows of the table that differ from a recompute (0 when it is right)."""
    return session.scalar(text(f"""
        SELECT count(*) FROM (SELECT {_COLUMNS} FROM {TABLE}) t
        FULL JOIN ({recompute_sql()}) r(grid_code, day, district_code, patrols, visits,
                                         site_days) USING (grid_code, day)
        WHERE row(t.district_code, t.patrols, t.visits, t.site_days)
              IS DISTINCT FROM row(r.district_code, r.patrols, r.visits, r.site_days)""")) or 0
