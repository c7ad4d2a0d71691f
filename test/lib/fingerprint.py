#!/usr/bin/python3
"""fingerprint.py — the oracle for eltd's loads: compares every column of every row of a
PostgreSQL table with a ClickHouse table, independently of eltd's code.

  fingerprint.py --pg SCHEMA.TABLE --ch DB.TABLE --key COL[,COL...] [--max-diffs N]
  fingerprint.py --ch DB.TABLE --key COL[,COL...] --ch-digest

PostgreSQL comes from libpq's environment (PGHOST, PGPORT, ...), ClickHouse from
CLICKHOUSE_URL, CLICKHOUSE_USER and CLICKHOUSE_PASSWORD. PostgreSQL rows are read through
psycopg2 as Python objects; ClickHouse rows as TabSeparatedWithNamesAndTypes, unescaped and
converted by their declared type. PostgreSQL values are then normalised the way the type
mapping promises (README, "Type mapping"):

  bool -> 0/1; numeric -> Decimal compared exactly; float -> equal bits, or both NaN;
  timestamp -> truncated (never rounded) to the second for DateTime, to the column's
  precision for DateTime64; timestamptz -> converted to UTC first; date, ints, uuid as is;
  any column ClickHouse stores as String (text, varchar, char(n) with its padding, enum,
  jsonb, and configured casts) -> PostgreSQL's own text output for the value, read in a
  session with DateStyle=ISO, TimeZone=UTC, IntervalStyle=iso_8601.

Rows are matched by key, not by position (the two servers may collate text keys
differently). Prints the first differences (key, column, both values) and a summary line;
exits 1 on any difference, 2 on a usage or connection error. --ch-digest prints only a
SHA-256 of the ClickHouse table's rows in key order (to show a table did not change).
"""

import argparse
import datetime
import decimal
import hashlib
import math
import os
import re
import struct
import sys
import urllib.error
import urllib.parse
import urllib.request
import uuid

import psycopg2
import psycopg2.extensions
import psycopg2.extras

PG_OPTIONS = "-c DateStyle=ISO -c TimeZone=UTC -c extra_float_digits=3"
INTERVAL_OID = 1186
TSV_ESCAPES = {
    ord("b"): b"\b", ord("f"): b"\f", ord("n"): b"\n", ord("r"): b"\r", ord("t"): b"\t",
    ord("0"): b"\0", ord("a"): b"\a", ord("v"): b"\v", ord("e"): b"\x1b",
    ord("\\"): b"\\", ord("'"): b"'", ord('"'): b'"',
}


EPOCH = datetime.datetime(1970, 1, 1)


class UsageError(Exception):
    pass


# ---- ClickHouse -------------------------------------------------------------------------

def ch_query(sql):
    url = os.environ.get("CLICKHOUSE_URL", "http://localhost:8123").rstrip("/") + "/"
    req = urllib.request.Request(url, data=sql.encode(), method="POST")
    user = os.environ.get("CLICKHOUSE_USER", "default")
    req.add_header("X-ClickHouse-User", user)
    req.add_header("X-ClickHouse-Key", os.environ.get("CLICKHOUSE_PASSWORD", ""))
    try:
        with urllib.request.urlopen(req, timeout=300) as resp:
            return resp.read()
    except urllib.error.HTTPError as e:
        raise UsageError("ClickHouse: %s" % e.read().decode(errors="replace").strip())
    except urllib.error.URLError as e:
        raise UsageError("ClickHouse at %s: %s" % (url, e.reason))


def tsv_unescape(field):
    """One TabSeparated field (bytes, without tab or newline) to its bytes; None for \\N."""
    if field == b"\\N":
        return None
    if b"\\" not in field:
        return field
    out = bytearray()
    i, n = 0, len(field)
    while i < n:
        c = field[i]
        if c == 0x5C and i + 1 < n:
            nxt = field[i + 1]
            out += TSV_ESCAPES.get(nxt, bytes([nxt]))
            i += 2
        else:
            out.append(c)
            i += 1
    return bytes(out)


def ch_quote_ident(name):
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


def to_float32(v):
    """The nearest float32, as a Python float (both sides of a Float32 column)."""
    return struct.unpack("f", struct.pack("f", v))[0]


def strip_wrappers(t):
    """'Nullable(LowCardinality(String))' -> ('String', True)."""
    nullable = False
    while True:
        m = re.fullmatch(r"(Nullable|LowCardinality)\((.*)\)", t)
        if not m:
            return t, nullable
        nullable = nullable or m.group(1) == "Nullable"
        t = m.group(2)


def ch_converter(chtype):
    """A function from a field's bytes to a Python value for a declared ClickHouse type."""
    base, _ = strip_wrappers(chtype)
    if re.fullmatch(r"U?Int(8|16|32|64|128|256)", base):
        return lambda b: int(b)
    if base == "Float32":
        return lambda b: to_float32(float(b.decode()))
    if base == "Float64":
        return lambda b: float(b.decode())  # accepts inf, -inf, nan
    if base.startswith("Decimal"):
        return lambda b: decimal.Decimal(b.decode())
    if base in ("Date", "Date32"):
        return ch_date
    if base == "DateTime" or base.startswith("DateTime(") or base.startswith("DateTime64"):
        return ch_datetime
    if base == "UUID":
        return lambda b: uuid.UUID(b.decode())
    if base == "String" or base.startswith("FixedString") or base.startswith("Enum"):
        return lambda b: b.decode("utf-8", "surrogateescape")
    raise UsageError("no conversion for ClickHouse type %s" % chtype)


def ch_date(b):
    # Servers before 19.x print day 0 (1970-01-01) as the "zero date" 0000-00-00.
    s = b.decode()
    return EPOCH.date() if s == "0000-00-00" else datetime.date.fromisoformat(s)


def ch_datetime(b):
    """Naive wall-clock time in the column's zone, which the mapping makes UTC."""
    s = b.decode()
    if s.startswith("0000-00-00 00:00:00"):
        return EPOCH
    return datetime.datetime.fromisoformat(s)


def ch_fetch(table, key):
    order = ", ".join(ch_quote_ident(k) for k in key)
    body = ch_query("SELECT * FROM %s ORDER BY %s FORMAT TabSeparatedWithNamesAndTypes"
                    % (table, order))
    lines = body.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    if len(lines) < 2:
        raise UsageError("ClickHouse answered no header for %s" % table)
    names = [tsv_unescape(f).decode() for f in lines[0].split(b"\t")]
    types = [tsv_unescape(f).decode() for f in lines[1].split(b"\t")]
    convs = [ch_converter(t) for t in types]
    rows = []
    for ln in lines[2:]:
        fields = ln.split(b"\t")
        if len(fields) != len(names):
            raise UsageError("ClickHouse row with %d fields, expected %d: %r"
                             % (len(fields), len(names), ln[:200]))
        row = []
        for f, conv in zip(fields, convs):
            raw = tsv_unescape(f)
            try:
                row.append(None if raw is None else conv(raw))
            except ValueError as e:
                # Kept as text so the comparison reports it with its key.
                row.append("unparsable %r: %s" % (raw, e))
        rows.append(row)
    return names, types, rows, body


# ---- PostgreSQL -------------------------------------------------------------------------

def pg_quote_ident(name):
    return '"' + name.replace('"', '""') + '"'


def pg_relation(qualified):
    parts = qualified.split(".", 1)
    return ".".join(pg_quote_ident(p) for p in parts)


def pg_fetch(table, key):
    conn = psycopg2.connect(options=PG_OPTIONS)
    try:
        conn.set_session(isolation_level="REPEATABLE READ", readonly=True)
        psycopg2.extras.register_uuid(conn_or_curs=conn)
        # psycopg2 refuses to connect with IntervalStyle=iso_8601 and cannot parse it, so
        # it is set afterwards and intervals stay text (they only ever land in a String).
        cur = conn.cursor()
        cur.execute("SET IntervalStyle = iso_8601")
        interval = psycopg2.extensions.new_type((INTERVAL_OID,), "ORACLE_INTERVAL",
                                                lambda v, c: v)
        psycopg2.extensions.register_type(interval, conn)
        rel = pg_relation(table)
        order = ", ".join(pg_quote_ident(k) for k in key)
        sql = "SELECT * FROM %s ORDER BY %s" % (rel, order)
        cur.execute(sql)
        names = [d.name for d in cur.description]
        oids = {d.type_code for d in cur.description}
        obj_rows = cur.fetchall()
        # The same rows again as PostgreSQL's text output (for String targets), in the same
        # transaction so both reads see one snapshot.
        raw = conn.cursor()
        text = psycopg2.extensions.new_type(tuple(oids), "ORACLE_TEXT", lambda v, c: v)
        psycopg2.extensions.register_type(text, raw)
        raw.execute(sql)
        raw_rows = raw.fetchall()
        conn.rollback()
        return names, obj_rows, raw_rows
    finally:
        conn.close()


def trunc_datetime(v, digits):
    """Truncates (never rounds) microseconds to `digits` decimal digits."""
    step = 10 ** (6 - max(0, min(6, digits)))
    return v.replace(microsecond=v.microsecond - v.microsecond % step)


def pg_normalise(obj, text, chtype):
    """The PostgreSQL value as the mapping promises it arrives in a column of chtype."""
    base, _ = strip_wrappers(chtype)
    if base == "String" or base.startswith("FixedString") or base.startswith("Enum"):
        return text  # None only for SQL NULL (a jsonb 'null' is text here)
    if obj is None:
        return None
    if isinstance(obj, bool):
        return int(obj)
    if isinstance(obj, datetime.datetime):
        if obj.tzinfo is not None:
            obj = obj.astimezone(datetime.timezone.utc).replace(tzinfo=None)
        m = re.match(r"DateTime64\((\d+)", base)
        return trunc_datetime(obj, int(m.group(1)) if m else 0)
    if isinstance(obj, float) and base == "Float32":
        return to_float32(obj)
    return obj


def values_equal(a, b):
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, float) and isinstance(b, float):
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        return a == b and math.copysign(1, a) == math.copysign(1, b)
    if isinstance(a, decimal.Decimal) and isinstance(b, decimal.Decimal):
        if a.is_nan() or b.is_nan():
            return a.is_nan() and b.is_nan()
        return a == b
    if type(a) is not type(b):
        return False
    return a == b


def show(v):
    s = repr(v)
    return s if len(s) <= 200 else s[:200] + "..."


# ---- main -------------------------------------------------------------------------------

def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pg", help="PostgreSQL table, schema.table")
    ap.add_argument("--ch", required=True, help="ClickHouse table, db.table")
    ap.add_argument("--key", required=True, help="key columns, comma-separated")
    ap.add_argument("--max-diffs", type=int, default=10)
    ap.add_argument("--ch-digest", action="store_true",
                    help="print only a SHA-256 of the ClickHouse rows in key order")
    args = ap.parse_args(argv)
    key = [k for k in args.key.split(",") if k]
    if not key:
        raise UsageError("--key needs at least one column")

    ch_names, ch_types, ch_rows, ch_body = ch_fetch(args.ch, key)
    if args.ch_digest:
        print(hashlib.sha256(ch_body).hexdigest())
        return 0
    if not args.pg:
        raise UsageError("--pg is required unless --ch-digest")
    pg_names, pg_obj, pg_raw = pg_fetch(args.pg, key)

    diffs = []

    def diff(where, column, pg_value, ch_value):
        diffs.append((where, column, pg_value, ch_value))

    if pg_names != ch_names:
        diff("(header)", "column list", pg_names, ch_names)
    types = dict(zip(ch_names, ch_types))
    common = [n for n in pg_names if n in types]
    pg_idx = {n: i for i, n in enumerate(pg_names)}
    ch_idx = {n: i for i, n in enumerate(ch_names)}
    for k in key:
        if k not in pg_idx or k not in ch_idx:
            raise UsageError("key column %s missing (pg: %s, ch: %s)" % (k, pg_names, ch_names))

    pg_map = {}
    for obj, raw in zip(pg_obj, pg_raw):
        norm = {n: pg_normalise(obj[pg_idx[n]], raw[pg_idx[n]], types[n]) for n in common}
        k = tuple(norm[c] for c in key)
        if k in pg_map:
            diff(k, "(key)", "duplicate key in PostgreSQL", None)
        pg_map[k] = norm
    ch_map = {}
    for row in ch_rows:
        k = tuple(row[ch_idx[c]] for c in key)
        if k in ch_map:
            diff(k, "(key)", None, "duplicate key in ClickHouse")
        ch_map[k] = row

    compared = 0
    for k, norm in pg_map.items():
        row = ch_map.get(k)
        if row is None:
            diff(k, "(row)", "present", "missing")
            continue
        for n in common:
            compared += 1
            if not values_equal(norm[n], row[ch_idx[n]]):
                diff(k, n, norm[n], row[ch_idx[n]])
    for k in ch_map:
        if k not in pg_map:
            diff(k, "(row)", "missing", "present")

    for where, column, a, b in diffs[: args.max_diffs]:
        print("DIFF key=%s column=%s\n  postgresql: %s\n  clickhouse: %s"
              % (show(where), column, show(a), show(b)))
    if len(diffs) > args.max_diffs:
        print("... %d more differences" % (len(diffs) - args.max_diffs))
    print("fingerprint %s: pg=%s ch=%s pg_rows=%d ch_rows=%d columns=%d values=%d "
          "differences=%d ch_sha256=%s"
          % ("EQUAL" if not diffs else "DIFFERENT", args.pg, args.ch, len(pg_map),
             len(ch_map), len(common), compared, len(diffs),
             hashlib.sha256(ch_body).hexdigest()[:16]))
    return 1 if diffs else 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except (UsageError, psycopg2.Error) as e:
        print("fingerprint: error: %s" % str(e).strip(), file=sys.stderr)
        sys.exit(2)
