# Superset configuration for the eltd compose stack (SUPERSET_CONFIG_PATH points here).
# Secrets come from the environment (docker-compose.yml, .env); nothing secret is stored here.
import os

SECRET_KEY = os.environ["SUPERSET_SECRET_KEY"]

# Superset's own metadata (users, the registered database, charts, dashboards): SQLite in the
# superset_data volume, as in the seed. Point SUPERSET_DATABASE_URI at PostgreSQL for a
# multi-user installation.
SQLALCHEMY_DATABASE_URI = os.environ.get(
    "SUPERSET_DATABASE_URI", "sqlite:////app/superset_home/superset.db"
)

# The dashboard reads the marts eltd builds; nothing else needs to be reachable.
PREVENT_UNSAFE_DB_CONNECTIONS = True
ROW_LIMIT = 10000
SQLLAB_CTAS_NO_LIMIT = True

# Served over plain HTTP on localhost by default; keep cookies usable there.
SESSION_COOKIE_SECURE = os.environ.get("SUPERSET_SESSION_COOKIE_SECURE", "false") == "true"
TALISMAN_ENABLED = os.environ.get("SUPERSET_TALISMAN_ENABLED", "false") == "true"

FEATURE_FLAGS = {
    "DASHBOARD_NATIVE_FILTERS": True,
    "DASHBOARD_CROSS_FILTERS": True,
}
