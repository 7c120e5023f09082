# Sourced by the ops scripts: where things live. Installs are cached outside the clone (shared by
# every clone on the machine); each clone keeps its own service data, logs and pids in .run/.
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE_HOME=${CITY_CACHE_HOME:-$HOME/.cache/city-cache}
STATE_DIR=${CITY_STATE_DIR:-$ROOT/.run}
# A new pin in the requirements gets a new venv; the old one stays usable until it is removed.
VENV=$CACHE_HOME/venv-$(cat "$ROOT"/requirements*.txt | sha256sum | cut -c1-12)
PYTHON=$VENV/bin/python

KAFKA_VERSION=4.3.1
S3PROXY_VERSION=4.1.0
# Debian's PostgreSQL server binaries (initdb, pg_ctl) are not on the PATH.
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
# The OS user postgres must reach its data directory, and a clone may sit under a home closed to it
# (/root is 0700), so each clone's cluster lives under /var/lib/postgresql, named after the clone.
PG_STATE_DIR=${PG_STATE_DIR:-/var/lib/postgresql/city-cache-$(printf %s "$ROOT" | sha256sum | cut -c1-12)}

# install_for [--quiet] run|test|bench: ops/install.sh for that command. With CITY_CACHE_INSTALL=plan the
# command ends there, having printed what it installs, installed nothing and started nothing.
install_for() {
  "$ROOT/ops/install.sh" "$@"
  [[ ${CITY_CACHE_INSTALL:-} != plan ]] || exit 0
}
