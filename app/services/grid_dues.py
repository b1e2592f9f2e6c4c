"""Sites per grid, state, risk and the day their visits are due from, kept by triggers: what
blind spots count active and overdue sites from.

A site is overdue when the day its visits are counted from — its last visit or, never
visited, the day work could start (``coalesce(started_on, briefed_on, accepted_on,
submitted_on)``) — lies more than N days back, N by risk (:mod:`app.patrol_rules`). A blind-spot
map counts, for each of a district's thousand grids, the sites in an active state and the
overdue ones among them. From ``projects`` joined to ``project_visit_summary`` that is a join
of every active site of the district (25,000 at city scale) on every request. ``grid_dues``
keeps one row per (grid, state, high_risk, base_on) with its number of sites instead, where
``base_on`` is that day; a district is one index range of small rows, the overdue test a
comparison on ``base_on``, and which states are active stays a parameter (the rules').

Statement-level triggers with transition tables keep it in step, in the writing transaction:

* on ``projects``: a new site adds 1 under its key; an update moves the sites whose grid,
  state, risk or start dates changed their key (projects are never deleted: a trigger refuses
  it);
* on ``project_visit_summary`` (written with the visits): a site's base moves to its new last
  visit. The trigger first takes the sites' ``projects`` rows ``FOR SHARE``, then reads them
  in a statement of its own: a concurrent change of the same project's state either waits for
  it or is waited for and read as committed, so neither moves a site from a stale key;
* a truncate of either table rebuilds it.

Rows brought to zero are deleted. :func:`recompute_sql` is the table from scratch (the
migration's fill and the tests' check).
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.orm import Session

from app.services import kept

TABLE = "grid_dues"
_KEYS = ("grid_code", "state", "high_risk", "base_on")
_COLUMNS = "grid_code, state, high_risk, base_on, district_code, sites"


def due_from(p: str) -> str:
    """The day a site (``projects`` row alias ``p``) is due a visit from when it has had none:
    the day work could start."""
    return f"coalesce({p}.started_on, {p}.briefed_on, {p}.accepted_on, {p}.submitted_on)"


def _sites(projects: str) -> str:
    """The key of each row of ``projects`` (its last visit from the summary), one site each."""
    return (f"SELECT p.grid_code, p.state, p.high_risk, coalesce(s.last_visit_on, "
            f"{due_from('p')}) AS base_on, p.district_code, 1 AS sites FROM {projects} p "
            "LEFT JOIN project_visit_summary s ON s.project_id = p.id")


_OPS = (("insert", "NEW TABLE AS new_rows"),
        ("update", "OLD TABLE AS old_rows NEW TABLE AS new_rows"),
        ("delete", "OLD TABLE AS old_rows"))


def _apply(select: str, with_: str = "") -> str:
    return kept.signed_upsert(TABLE, _KEYS, ("district_code",), ("sites",), select, with_=with_)


def _rebuild() -> str:
    return f"DELETE FROM {TABLE}; INSERT INTO {TABLE} ({_COLUMNS}) {recompute_sql()}"


def install_sql() -> list[str]:
    """The table, its index, the triggers on projects and project_visit_summary, the fill."""
    # Projects whose key changed in an update: the old key and the new (same last visit).
    moved = (f"SELECT o.id, o.grid_code AS o_grid, o.state AS o_state, o.high_risk AS o_high, "
             f"{due_from('o')} AS o_due, o.district_code AS o_district, n.grid_code, n.state, "
             f"n.high_risk, {due_from('n')} AS n_due, n.district_code "
             "FROM old_rows o JOIN new_rows n ON n.id = o.id "
             "WHERE row(o.grid_code, o.state, o.high_risk, o.district_code, o.started_on, "
             "o.briefed_on, o.accepted_on, o.submitted_on) IS DISTINCT FROM "
             "row(n.grid_code, n.state, n.high_risk, n.district_code, n.started_on, "
             "n.briefed_on, n.accepted_on, n.submitted_on)")
    projects_update = """
        SELECT m.o_grid AS grid_code, m.o_state AS state, m.o_high AS high_risk,
               coalesce(s.last_visit_on, m.o_due) AS base_on, m.o_district AS district_code,
               -1 AS sites
        FROM moved m LEFT JOIN project_visit_summary s ON s.project_id = m.id
        UNION ALL
        SELECT m.grid_code, m.state, m.high_risk, coalesce(s.last_visit_on, m.n_due),
               m.district_code, 1
        FROM moved m LEFT JOIN project_visit_summary s ON s.project_id = m.id"""
    # A summary row's site moves from its old base (the old last visit, or none) to the new.
    # (old_on, new_on: NULL where the site had or has no summary row: due from its start.)
    based = ("SELECT project_id, max(last_on) FILTER (WHERE n < 0) AS old_on, "
             "max(last_on) FILTER (WHERE n > 0) AS new_on FROM ({rows}) r GROUP BY project_id "
             "HAVING row(bool_or(n < 0), max(last_on) FILTER (WHERE n < 0)) IS DISTINCT FROM "
             "row(bool_or(n > 0), max(last_on) FILTER (WHERE n > 0))")  # only the moved
    rows_of = {
        "INSERT": "SELECT project_id, last_visit_on AS last_on, 1 AS n FROM new_rows",
        "DELETE": "SELECT project_id, last_visit_on AS last_on, -1 AS n FROM old_rows",
        "UPDATE": ("SELECT project_id, last_visit_on AS last_on, -1 AS n FROM old_rows "
                   "UNION ALL SELECT project_id, last_visit_on, 1 FROM new_rows"),
    }

    def summary_change(op: str) -> str:
        changed = based.format(rows=rows_of[op])
        lock = (f"PERFORM 1 FROM projects WHERE id IN (SELECT project_id FROM ({changed}) c) "
                "ORDER BY id FOR SHARE")
        move = _apply(f"""
            SELECT p.grid_code, p.state, p.high_risk,
                   coalesce(x.old_on, {due_from('p')}) AS base_on,
                   p.district_code, -1 AS sites
            FROM changed x JOIN projects p ON p.id = x.project_id
            UNION ALL
            SELECT p.grid_code, p.state, p.high_risk,
                   coalesce(x.new_on, {due_from('p')}),
                   p.district_code, 1
            FROM changed x JOIN projects p ON p.id = x.project_id""",
                      f"changed AS ({changed})")
        return f"{lock};\n{move}"

    return [
        f"""CREATE TABLE {TABLE} (
              grid_code varchar(24) NOT NULL,
              state varchar(24) NOT NULL,
              high_risk boolean NOT NULL,
              base_on date NOT NULL,
              district_code varchar(12) NOT NULL,
              sites integer NOT NULL,
              CONSTRAINT pk_{TABLE} PRIMARY KEY (grid_code, state, high_risk, base_on))""",
        f"COMMENT ON TABLE {TABLE} IS 'Sites per grid, state, risk and the day their visits are "
        "due from, kept by triggers on projects and project_visit_summary "
        "(app/services/grid_dues.py)'",
        f"CREATE INDEX ix_{TABLE}_district_state ON {TABLE} (district_code, state) "
        "INCLUDE (grid_code, high_risk, base_on, sites)",
        f"""CREATE FUNCTION {TABLE}_projects_keep() RETURNS trigger LANGUAGE plpgsql AS $$
            DECLARE gone tid[];
            BEGIN
              IF TG_OP = 'TRUNCATE' THEN {_rebuild()};
              ELSIF TG_OP = 'INSERT' THEN
                {_apply(_sites('new_rows'))};
              ELSIF EXISTS ({moved}) THEN
                {_apply(projects_update, f"moved AS ({moved})")};
              END IF;
              RETURN NULL;
            END $$""",
        f"""CREATE FUNCTION {TABLE}_visits_keep() RETURNS trigger LANGUAGE plpgsql AS $$
            DECLARE gone tid[];
            BEGIN
              IF TG_OP = 'TRUNCATE' THEN {_rebuild()};
              ELSIF TG_OP = 'INSERT' THEN {summary_change('INSERT')};
              ELSIF TG_OP = 'DELETE' THEN {summary_change('DELETE')};
              ELSE {summary_change('UPDATE')};
              END IF;
              RETURN NULL;
            END $$""",
        *(f"CREATE TRIGGER {TABLE}_{table}_{op[:3]} AFTER {op.upper()} ON {table} "
          f"REFERENCING {refs} FOR EACH STATEMENT EXECUTE FUNCTION {TABLE}_{fn}_keep()"
          for table, fn, ops in (("projects", "projects", _OPS[:2]),
                                 ("project_visit_summary", "visits", _OPS))
          for op, refs in ops),
        *(f"CREATE TRIGGER {TABLE}_{table}_tru AFTER TRUNCATE ON {table} "
          f"FOR EACH STATEMENT EXECUTE FUNCTION {TABLE}_{fn}_keep()"
          for table, fn in (("projects", "projects"), ("project_visit_summary", "visits"))),
        f"INSERT INTO {TABLE} ({_COLUMNS}) {recompute_sql()}",
        f"ANALYZE {TABLE}",
    ]


def drop_sql() -> list[str]:
    return [
        *(f"DROP TRIGGER IF EXISTS {TABLE}_{table}_{op} ON {table}"
          for table in ("projects", "project_visit_summary")
          for op in ("ins", "upd", "del", "tru")),
        *(f"DROP FUNCTION IF EXISTS {TABLE}_{fn}_keep()" for fn in ("projects", "visits")),
        f"DROP TABLE IF EXISTS {TABLE}",
    ]


def recompute_sql() -> str:
    """The table's rows from scratch, in its column order, sorted by its key."""
    return f"""
        SELECT grid_code, state, high_risk, base_on, min(district_code), count(*)::int
        FROM ({_sites('projects')}) k
        GROUP BY grid_code, state, high_risk, base_on
        ORDER BY grid_code, state, high_risk, base_on"""


def drift(session: Session) -> int:
    """Rows of the table that differ from a recompute (0 when it is right)."""
    return session.scalar(text(f"""
        SELECT count(*) FROM (SELECT {_COLUMNS} FROM {TABLE}) t
        FULL JOIN ({recompute_sql()}) r(grid_code, state, high_risk, base_on, district_code,
                                         sites) USING (grid_code, state, high_risk, base_on)
        WHERE row(t.district_code, t.sites) IS DISTINCT FROM row(r.district_code, r.sites)"""
    )) or 0


def is_installed(session: Session) -> bool:
    return session.scalar(text("SELECT to_regclass(:t) IS NOT NULL"), {"t": TABLE}) or False
