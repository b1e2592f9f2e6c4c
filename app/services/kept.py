"""Counts kept by statement triggers: the one upsert that adds a statement's signed rows.

``grid_days`` (patrol effort per grid and day) and ``grid_dues`` (sites per grid and due
base) are tables of counts that triggers with transition tables keep in step with the rows
they count, in the writing transaction. Both add the signed changes of a statement with
:func:`signed_upsert` and delete the rows it brought to all zeros, so a table holds only what
is there.
"""

from __future__ import annotations


def signed_upsert(table: str, keys: tuple[str, ...], carried: tuple[str, ...],
                  counts: tuple[str, ...], select: str, *, with_: str = "",
                  where: str = "true") -> str:
    """PL/pgSQL adding the signed rows of ``select`` to ``table``, then deleting the rows
    brought to all zeros (a second statement: one statement cannot change a row twice).

    ``select`` yields the ``keys``, ``carried`` (their ``min`` per key is stored: columns that
    follow from the key) and ``counts`` columns, by name; ``with_``: CTEs it uses; ``where``
    filters its rows. The calling function declares ``gone tid[]``.
    """
    key = ", ".join(keys)
    columns = ", ".join([*keys, *carried, *counts])
    sums = ", ".join([*(f"min({c})" for c in carried), *(f"sum({c})::int" for c in counts)])
    return f"""
        WITH {with_ + ', ' if with_ else ''}up AS (
          INSERT INTO {table} AS c ({columns})
          SELECT {key}, {sums} FROM ({select}) s WHERE {where}
          GROUP BY {key} ORDER BY {key}
          ON CONFLICT ({key}) DO UPDATE SET
            {', '.join(f'{c} = c.{c} + excluded.{c}' for c in counts)}
          RETURNING c.ctid AS tid, {', '.join(f'c.{c}' for c in counts)})
        SELECT array_agg(tid) INTO gone FROM up WHERE {' AND '.join(f'{c} = 0' for c in counts)};
        IF gone IS NOT NULL THEN
          DELETE FROM {table} WHERE ctid = ANY(gone);
        END IF"""
