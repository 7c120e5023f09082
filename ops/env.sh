# Sourced by the ops scripts: where things live. Installs are cached outside the clone (shared by
# every clone on the machine); each clone keeps its own service data, logs and pids in .run/.
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE_HOME=${CITY_CACHE_HOME:-$HOME/.cache/city-cache}
STATE_DIR=${CITY_STATE_DIR:-$ROOT/.run}
# A new pin in the requirements gets a new venv; the old one stays usable until it is removed.
VENV=$CACHE_HOME/venv-$(cat "$ROOT"/requirements*.txt | sha256sum | cut -c1-12)
PYTHON=$VENV/bin/python

KAFKA_VERSION=4.3.1
S3PROXY_VERSION=2.6.0
