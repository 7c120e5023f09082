#!/usr/bin/env bash
# Runs a command against the real services: installs what is missing for PURPOSE (test or bench:
# ops/install.sh), starts Postgres, Redis, Kafka, the S3 store and the app if they are not running,
# runs the command from the clone with the venv's python first on the PATH, then stops what it started
# (and only that). bin/test and bin/bench use it:  ops/with-stack.sh test|bench COMMAND [ARGS]
set -euo pipefail
# shellcheck source=ops/env.sh
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$ROOT"

install_for "$1"
shift
services_were_up=yes
ops/services.sh status >/dev/null 2>&1 || services_were_up=no
app_was_up=yes
ops/app.sh running || app_was_up=no

cleanup() {
  [[ $app_was_up == yes ]] || ops/app.sh stop || true
  [[ $services_were_up == yes ]] || ops/services.sh stop || true
}
trap cleanup EXIT

ops/services.sh start
"$PYTHON" -m ops.seed
ops/app.sh start
PATH="$VENV/bin:$PATH" "$@"
