#!/bin/sh
# Superset start for the eltd compose stack (the container's command). Idempotent: runs on
# every start, then hands over to the image's own web server script.
#   1. migrate Superset's metadata database and sync roles/permissions;
#   2. create the admin user (or reset its password to the one in .env);
#   3. zip deploy/superset/dashboard (a hand-written v1 export: database, datasets, charts,
#      dashboard) and import it: the ClickHouse `analytics` database, datasets on
#      analytics.fact_sales and analytics.agg_sales_by_state, and the "E-commerce sales"
#      dashboard;
#   4. set the `analytics` database's URI with the password from the environment (the export
#      files carry none).
set -eu

ADMIN_USER=${SUPERSET_ADMIN_USERNAME:-admin}
ADMIN_PASSWORD=${SUPERSET_ADMIN_PASSWORD:?SUPERSET_ADMIN_PASSWORD is not set}
ADMIN_EMAIL=${SUPERSET_ADMIN_EMAIL:-admin@example.com}
CH_HOST=${CLICKHOUSE_HOST:-clickhouse}
CH_PORT=${CLICKHOUSE_HTTP_PORT:-8123}
CH_USER=${CLICKHOUSE_USER:-default}
CH_PASSWORD=${CLICKHOUSE_PASSWORD:-}
ASSETS=${ELTD_SUPERSET_ASSETS:-/app/eltd/dashboard}

log() { echo "bootstrap: $*"; }

log "migrating the metadata database"
superset db upgrade

log "admin user '$ADMIN_USER'"
superset fab create-admin --username "$ADMIN_USER" --firstname Admin --lastname User \
  --email "$ADMIN_EMAIL" --password "$ADMIN_PASSWORD"
# create-admin leaves an existing user alone: make the password follow .env.
superset fab reset-password --username "$ADMIN_USER" --password "$ADMIN_PASSWORD"

log "roles and permissions"
superset init

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
log "zipping $ASSETS"
# Superset expects every file of the bundle under one top-level directory.
python - "$ASSETS" "$TMP/eltd_dashboard.zip" <<'PY'
import os
import sys
import zipfile

src, out = sys.argv[1], sys.argv[2]
n = 0
with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
    for root, dirs, files in os.walk(src):
        dirs.sort()
        for name in sorted(files):
            if name.endswith((".yaml", ".yml")):
                path = os.path.join(root, name)
                z.write(path, os.path.join("eltd_dashboard", os.path.relpath(path, src)))
                n += 1
print(f"bootstrap: {n} files in {out}")
PY

log "importing the dashboard"
if ! superset import-dashboards -p "$TMP/eltd_dashboard.zip" -u "$ADMIN_USER"; then
  log "WARNING: the dashboard import failed (see the traceback above); Superset starts anyway"
fi

log "analytics database -> clickhouse://$CH_USER@$CH_HOST:$CH_PORT/analytics"
URI=$(python - "$CH_USER" "$CH_PASSWORD" "$CH_HOST" "$CH_PORT" <<'PY'
import sys
from urllib.parse import quote

user, password, host, port = sys.argv[1:5]
auth = quote(user, safe="") + (":" + quote(password, safe="") if password else "")
print(f"clickhousedb://{auth}@{host}:{port}/analytics")
PY
)
superset set-database-uri -d analytics -u "$URI"

log "starting the web server"
if [ -x /usr/bin/run-server.sh ]; then
  exec /usr/bin/run-server.sh
fi
exec gunicorn --bind "0.0.0.0:${SUPERSET_PORT:-8088}" --workers 2 --worker-class gthread \
  --threads 20 --timeout 120 --limit-request-line 0 --limit-request-field_size 0 \
  "superset.app:create_app()"
