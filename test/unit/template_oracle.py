#!/usr/bin/env python3
"""Expected outputs for test/unit/template/cases/*.sql, rendered by python3-jinja2.

The context mimics dbt closely enough for our models: ref(), source(), config(), this,
is_incremental(), var(), env_var(), target. test_template.c renders every case with an
equivalent C host and compares byte for byte with the .expected file written here.

    test/unit/template_oracle.py          # rewrite the .expected files
    test/unit/template_oracle.py --check  # exit 1 when one differs
"""
import pathlib
import sys

import jinja2

CASES = pathlib.Path(__file__).resolve().parent / "template" / "cases"

VARS = {"start_date": "2020-01-01", "countries": ["BR", "US"], "limit": 100}
ENV = {"ELTD_SCHEMA": "analytics", "ELTD_TARGET": "dev"}


class Missing(Exception):
    pass


def ref(*parts):
    return "analytics." + parts[-1]


def source(src, table):
    return "raw." + table


def config(**kwargs):
    return ""


def is_incremental():
    return False


def var(name, default=None):
    if name in VARS:
        return VARS[name]
    if default is None:
        raise Missing(f"var '{name}' is not defined")
    return default


def env_var(name, default=None):
    if name in ENV:
        return ENV[name]
    if default is None:
        raise Missing(f"env var '{name}' is not set")
    return default


CONTEXT = {
    "ref": ref,
    "source": source,
    "config": config,
    "is_incremental": is_incremental,
    "var": var,
    "env_var": env_var,
    "this": "analytics.model",
    "target": {"name": "dev", "schema": "analytics", "type": "clickhouse"},
}


def render(text):
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, extensions=["jinja2.ext.do"])
    return env.from_string(text).render(**CONTEXT)


def main():
    check = "--check" in sys.argv[1:]
    bad = 0
    for sql in sorted(CASES.glob("*.sql")):
        # Bytes, not text mode, so \r\n stays as written: the C side reads raw bytes.
        text = sql.read_bytes().decode("utf-8")
        out = render(text)
        exp = sql.with_suffix(".expected")
        if check:
            if not exp.exists() or exp.read_bytes().decode("utf-8") != out:
                print(f"differs: {exp}")
                bad += 1
        else:
            exp.write_bytes(out.encode("utf-8"))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
