"""Hot statements compiled by peewee once per database, then run with new values.

Building a peewee query and turning it into SQL costs 50-150 µs, several
times what SQLite needs to run a one-row UPDATE; the pipeline runs about
twenty such statements per message. A :class:`Statement` is written as a
peewee query like any other, compiled for the bound database the first time
it runs there, and afterwards only its parameters change.
"""

from __future__ import annotations

import datetime as dt
import threading

from . import db

_INT_BASE = -(10**15)


class _Slot:
    """Stands for a datetime value while a query is compiled."""

    tzinfo = None

    def __init__(self, index: int):
        self.index = index


def _marker(kind: str, index: int):
    if kind == "int":
        return _INT_BASE - index
    if kind == "str":
        return f"\0ums-slot-{index}\0"
    if kind == "utc":
        return _Slot(index)
    raise ValueError(f"unknown slot kind {kind!r}")


def _convert(kind: str, value):
    if value is None:
        return None
    if kind == "int":
        return int(value)
    if kind == "utc" and value.tzinfo is not None:
        return value.astimezone(dt.UTC).replace(tzinfo=None)
    return value


class Statement:
    """A query BUILD(*slots) returns, compiled once per database.

    KINDS names each value the statement takes: ``int`` (ids, counts),
    ``str`` or ``utc`` (a datetime of a UtcDateTimeField). BUILD is called
    with stand-ins and must use each exactly where its value goes.
    """

    def __init__(self, kinds: tuple[str, ...], build):
        self._kinds = kinds
        self._build = build
        self._compiled: dict[int, tuple] = {}
        self._lock = threading.Lock()

    def _plan(self, database):
        found = self._compiled.get(id(database))
        if found is not None and found[0] is database:
            return found
        with self._lock:
            markers = [_marker(kind, i) for i, kind in enumerate(self._kinds)]
            sql, params = self._build(*markers).sql()
            plan = [self._place(param, markers) for param in params]
            missing = set(range(len(markers))) - {i for i, _ in plan if i is not None}
            if missing:
                raise ValueError(f"statement values {sorted(missing)} are not used")
            found = (database, sql, plan)
            self._compiled[id(database)] = found
        return found

    @staticmethod
    def _place(param, markers) -> tuple[int | None, object]:
        for index, marker in enumerate(markers):
            if param is marker or (type(param) is type(marker) and param == marker):
                return index, None
        return None, param

    def execute(self, *values):
        """Run the statement with VALUES on the bound database; return the cursor."""
        database = db.database.obj
        _, sql, plan = self._plan(database)
        kinds = self._kinds
        params = [
            constant if index is None else _convert(kinds[index], values[index])
            for index, constant in plan
        ]
        return database.execute_sql(sql, params)

    def rowcount(self, *values) -> int:
        """Run an UPDATE or DELETE; return how many rows it changed."""
        return self.execute(*values).rowcount

    def rows(self, *values) -> list[tuple]:
        """Run a SELECT; return its rows as tuples."""
        return self.execute(*values).fetchall()

    def first(self, *values) -> tuple | None:
        """Run a SELECT; return its first row, or None."""
        return self.execute(*values).fetchone()


_INSERTS: dict[tuple, tuple] = {}
_BY_ID: dict = {}


def fetch_by_id(model, row_id: int):
    """Return the row of MODEL with primary key ROW_ID as ``get`` reads it, or None."""
    statement = _BY_ID.get(model)
    if statement is None:
        key = model._meta.primary_key
        statement = _BY_ID.setdefault(
            model, Statement(("int",), lambda value: model.select().where(key == value))
        )
    found = statement.first(row_id)
    if found is None:
        return None
    fields = model._meta.sorted_fields
    data = {
        field.name: field.python_value(value)
        for field, value in zip(fields, found, strict=True)
    }
    row = model(__no_default__=1, **data)
    row._dirty.clear()
    return row


def insert_row(model, **values):
    """Insert a row of MODEL as ``MODEL.create`` does; return the saved instance.

    The defaults and each field's conversion are peewee's; only the INSERT
    text is made once per database, model and set of columns.
    """
    row = model(**values)
    database = db.database.obj
    meta = model._meta
    data = row.__data__
    fields = [f for f in meta.sorted_fields if f.name in data]
    key = (id(database), model, tuple(f.name for f in fields))
    found = _INSERTS.get(key)
    if found is not None and found[0] is database:
        sql = found[1]
    else:
        opening, closing = database.quote

        def quote(name: str) -> str:
            return f"{opening}{name}{closing}"

        columns = ", ".join(quote(f.column_name) for f in fields)
        marks = ", ".join([database.param] * len(fields))
        sql = f"INSERT INTO {quote(meta.table_name)} ({columns}) VALUES ({marks})"
        if database.returning_clause:
            sql += f" RETURNING {quote(meta.primary_key.column_name)}"
        _INSERTS[key] = (database, sql)
    params = [f.db_value(data[f.name]) for f in fields]
    cursor = database.execute_sql(sql, params)
    if database.returning_clause:
        new_id = cursor.fetchone()[0]
    else:
        new_id = cursor.lastrowid
    setattr(row, meta.primary_key.name, new_id)
    row._dirty.clear()
    return row
