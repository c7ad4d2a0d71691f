#!/usr/bin/python3
"""The seed's approach to one table, as its Airflow task does it: read the whole table with
psycopg2 (fetchall), then one clickhouse-driver INSERT ... VALUES over the native protocol.

Run with Debian's interpreter (/usr/bin/python3) so python3-psycopg2 and
python3-clickhouse-driver are the packages used.

  py_load.py SELECT_SQL TARGET_TABLE

Connection settings come from the environment written by test/servers.sh
(PGHOST PGPORT POSTGRES_DB POSTGRES_USER POSTGRES_PASSWORD, CLICKHOUSE_HOST
CLICKHOUSE_TCP_PORT CLICKHOUSE_USER CLICKHOUSE_PASSWORD). Prints the row count sent.
"""
import os
import sys

import psycopg2
from clickhouse_driver import Client


def main():
    select_sql, target = sys.argv[1], sys.argv[2]
    pg = psycopg2.connect(host=os.environ["PGHOST"], port=int(os.environ["PGPORT"]),
                          dbname=os.environ["POSTGRES_DB"], user=os.environ["POSTGRES_USER"],
                          password=os.environ["POSTGRES_PASSWORD"],
                          options="-c DateStyle=ISO -c TimeZone=UTC")
    cur = pg.cursor()
    cur.execute(select_sql)
    rows = cur.fetchall()  # the seed's pattern: the whole table in memory
    cur.close()
    pg.close()
    # psycopg2 hands numeric as decimal.Decimal, timestamp as datetime.datetime, integer as
    # int: the types clickhouse-driver wants for Decimal/DateTime/Int32 columns. Booleans
    # would need int(); order_items has none.
    ch = Client(host=os.environ.get("CLICKHOUSE_HOST", "127.0.0.1"),
                port=int(os.environ["CLICKHOUSE_TCP_PORT"]),
                user=os.environ["CLICKHOUSE_USER"], password=os.environ["CLICKHOUSE_PASSWORD"])
    n = ch.execute("INSERT INTO %s VALUES" % target, rows)
    ch.disconnect()
    print(n if n is not None else len(rows))


if __name__ == "__main__":
    main()
