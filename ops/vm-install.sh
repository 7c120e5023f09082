#!/usr/bin/env bash
# Installs the app (the API, both workers and the consistency sampler under supervisord) on a VM
# whose Postgres, Redis, Kafka and S3 store already run elsewhere; it starts none of them, nor the app:
#   sudo DATABASE_URL=... REDIS_URL=... KAFKA_BOOTSTRAP_SERVERS=... S3_ENDPOINT=... \
#       ops/vm-install.sh [--prefix /] [--user city-cache] [--python /usr/bin/python3]
# Under PREFIX it makes
#   opt/city-cache/app/         the code (root-owned, read-only to the service)
#   opt/city-cache/venv/        its runtime requirements
#   opt/city-cache/bin/         supervisorctl and cli (bin/cli: doctor, schema, status, check...)
#   etc/city-cache/city-cache.env   the settings (any setting set in this command's environment is
#                                   written there; lines the operator edited are otherwise kept)
#   etc/city-cache/invalidation.toml   the rules (the app's, the first time; then the operator's own)
#   etc/systemd/system/city-cache.service   supervisord as USER, never root
#   var/lib/city-cache/         supervisord's socket and pid, metrics samples (USER's)
#   var/log/city-cache/         one log per program, rotated by supervisord, and access.log (USER's)
#   etc/logrotate.d/city-cache  rotates access.log (gunicorn writes it itself; SIGUSR1 reopens it)
# Idempotent: a second run changes only what differs and says what it did.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PREFIX=/ SERVICE_USER=city-cache PYTHON=/usr/bin/python3
usage() { sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
while (($#)); do
  case $1 in
    --prefix) PREFIX=$2; shift 2 ;;
    --user) SERVICE_USER=$2; shift 2 ;;
    --python) PYTHON=$2; shift 2 ;;
    -h | --help) usage ;;
    *) echo "vm-install: unknown argument $1" >&2; usage ;;
  esac
done
PREFIX=$(realpath -m "$PREFIX")
P=${PREFIX%/}  # "" for /, so paths read /opt/... and not //opt/...
HOME_DIR=$P/opt/city-cache APP=$P/opt/city-cache/app VENV=$P/opt/city-cache/venv
ETC=$P/etc/city-cache ENV_FILE=$P/etc/city-cache/city-cache.env UNIT=$P/etc/systemd/system/city-cache.service
RULES=$P/etc/city-cache/invalidation.toml
STATE=$P/var/lib/city-cache LOGS=$P/var/log/city-cache
# What the image copies (Dockerfile): the programs, the seed and the schema command need these.
CODE=(citycache web workers db ops data supervisord.conf requirements.txt .env.example invalidation.toml)

say() { echo "vm-install: $*"; }
die() { echo "vm-install: $*" >&2; exit 1; }

[[ $SERVICE_USER != root && $SERVICE_USER != 0 ]] || die "--user root: the service must not run as root"
if ! id -u "$SERVICE_USER" >/dev/null 2>&1; then
  [[ $EUID == 0 ]] || die "user $SERVICE_USER does not exist, and only root can create it"
  useradd --system --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$SERVICE_USER"
  say "created system user $SERVICE_USER"
fi
SERVICE_GROUP=$(id -gn "$SERVICE_USER")
[[ $EUID == 0 || $(id -un) == "$SERVICE_USER" ]] || die "run as root, or as $SERVICE_USER itself"
"$PYTHON" -c 'import sys, venv; sys.exit(sys.version_info < (3, 11))' || die "$PYTHON: Python 3.11+ with venv needed"

# settle NEXT TARGET WHAT: NEXT takes TARGET's place unless they are the same; says which; fails if unchanged.
settle() {
  if [[ -f $2 ]] && cmp -s "$1" "$2"; then
    rm "$1"
    say "$3 unchanged ($2)"
    return 1
  fi
  mv "$1" "$2"
  say "$3 written ($2)"
}

# own DIR MODE: a directory the service writes.
own() { mkdir -p "$1"; chmod "$2" "$1"; [[ $EUID != 0 ]] || chown "$SERVICE_USER:$SERVICE_GROUP" "$1"; }

install_venv() {
  local want
  want=$(sha256sum "$ROOT/requirements.txt" | cut -c1-16)
  if [[ -f $VENV/.requirements && $(cat "$VENV/.requirements") == "$want" ]]; then
    say "venv unchanged ($VENV)"
    return
  fi
  "$PYTHON" -m venv --clear "$VENV"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check -r "$ROOT/requirements.txt"
  echo "$want" >"$VENV/.requirements"
  say "venv installed ($VENV, requirements $want)"
}

install_app() {
  local next=$HOME_DIR/app.next
  rm -rf "$next"
  mkdir -p "$next"
  tar -C "$ROOT" --exclude=__pycache__ --exclude='*.pyc' -cf - "${CODE[@]}" | tar -C "$next" -xf -
  # supervisord.conf keeps its socket and pid in %(here)s/.run; here that is the service's state.
  ln -s "$STATE/run" "$next/.run"
  if [[ -d $APP ]] && diff -r --no-dereference -q "$APP" "$next" >/dev/null; then
    rm -rf "$next"
    say "app unchanged ($APP)"
    return
  fi
  rm -rf "$APP.old"
  [[ ! -d $APP ]] || mv "$APP" "$APP.old"
  mv "$next" "$APP"
  rm -rf "$APP.old"
  say "app installed ($APP; a running service picks it up on restart)"
}

install_wrappers() {
  mkdir -p "$HOME_DIR/bin"
  cat >"$HOME_DIR/bin/supervisorctl" <<EOF
#!/bin/sh
# supervisorctl for the installed app: status, tail -f web, signal HUP web, restart pg_listener...
exec "$VENV/bin/supervisorctl" -c "$APP/supervisord.conf" "\$@"
EOF
  cat >"$HOME_DIR/bin/cli" <<EOF
#!/bin/sh
# The operator CLI with the service's settings: doctor, schema install, status, check, invalidate...
set -a
. "$ENV_FILE"
set +a
cd "$APP"
exec "$VENV/bin/python" -m ops.cli "\$@"
EOF
  chmod 0755 "$HOME_DIR/bin/supervisorctl" "$HOME_DIR/bin/cli"
}

# The settings, documented as in .env.example, with the install's paths; a setting present in this
# command's environment replaces its line; otherwise an existing file is left as the operator made it.
install_env_file() {
  mkdir -p "$ETC"
  local next=$ENV_FILE.next name value line
  if [[ -f $ENV_FILE ]]; then
    cp "$ENV_FILE" "$next"
  else
    { echo "# city-cache settings (EnvironmentFile of city-cache.service; KEY=value, no quotes needed)."
      echo "# Every setting is documented below; restart the service after a change: systemctl restart city-cache"
      grep -v '^# Copy to .env' "$ROOT/.env.example"; } >"$next"
    set_line LOG_DIR "$LOGS"
    set_line PROMETHEUS_MULTIPROC_DIR "$STATE/metrics"
    set_line INVALIDATION_RULES "$RULES"
  fi
  while IFS= read -r line; do
    [[ $line =~ ^([A-Z][A-Z0-9_]*)= ]] || continue
    name=${BASH_REMATCH[1]}
    if [[ -n ${!name+set} ]]; then
      value=${!name}
      set_line "$name" "$value"
    fi
  done <"$ROOT/.env.example"
  chmod 0640 "$next"
  [[ $EUID != 0 ]] || chown "root:$SERVICE_GROUP" "$next"
  settle "$next" "$ENV_FILE" settings || true
}

# The rules are the operator's once installed: the app's file the first time, never overwritten after.
install_rules() {
  mkdir -p "$ETC"
  if [[ -f $RULES ]]; then
    say "rules unchanged ($RULES: the operator's own, never overwritten)"
    return
  fi
  install -m 0644 "$ROOT/invalidation.toml" "$RULES"
  say "rules written ($RULES)"
}

set_line() {  # set_line NAME VALUE in $next
  local tmp=$next.tmp
  awk -v name="$1" -v value="$2" 'BEGIN { done = 0 }
    index($0, name "=") == 1 { if (!done) print name "=" value; done = 1; next } { print }
    END { if (!done) print name "=" value }' "$next" >"$tmp"
  mv "$tmp" "$next"
}

install_unit() {
  mkdir -p "$(dirname "$UNIT")"
  local next=$UNIT.next
  cat >"$next" <<EOF
# city-cache: the API (gunicorn), the invalidation workers (pg_listener, kafka_cleaner) and the
# consistency sampler under supervisord, as $SERVICE_USER. Made by ops/vm-install.sh; settings in $ENV_FILE.
[Unit]
Description=city-cache API, cache invalidation workers and consistency sampler (supervisord)
Documentation=file://$APP/.env.example
After=network-online.target
Wants=network-online.target

[Service]
Type=simple
User=$SERVICE_USER
Group=$SERVICE_GROUP
EnvironmentFile=$ENV_FILE
# The programs run \`gunicorn\` and \`python\` from the PATH supervisord has.
Environment=PATH=$VENV/bin:/usr/local/bin:/usr/bin:/bin
WorkingDirectory=$APP
ExecStart=$VENV/bin/supervisord --nodaemon -c $APP/supervisord.conf
# systemctl reload: gunicorn starts new workers, then lets the old ones finish their requests.
ExecReload=$VENV/bin/supervisorctl -c $APP/supervisord.conf signal HUP web
# Only supervisord gets the SIGTERM; it stops each program in turn within its stopwaitsecs (30 s at most).
KillMode=mixed
TimeoutStopSec=45
Restart=on-failure
RestartSec=2
NoNewPrivileges=yes
PrivateTmp=yes
ProtectHome=yes
ProtectSystem=strict
ReadWritePaths=$STATE $LOGS

[Install]
WantedBy=multi-user.target
EOF
  settle "$next" "$UNIT" unit || return 0
  if [[ -z $P && -d /run/systemd/system ]]; then
    systemctl daemon-reload
  fi
}

# The access log is gunicorn's own file (the programs' logs are supervisord's, which rotates them):
# logrotate moves it past LOG_FILE_MAX_BYTES, keeping LOG_FILE_BACKUPS, and USR1 makes gunicorn reopen
# it, as nginx does. Debian runs logrotate daily (logrotate.timer). The sizes are the env file's.
install_logrotate() {
  local conf=$P/etc/logrotate.d/city-cache max backups
  max=$(sed -n 's/^LOG_FILE_MAX_BYTES=//p' "$ENV_FILE" | tail -n 1)
  backups=$(sed -n 's/^LOG_FILE_BACKUPS=//p' "$ENV_FILE" | tail -n 1)
  if [[ ${max:-0} == 0 ]]; then
    rm -f "$conf"
    say "logrotate: none (LOG_FILE_MAX_BYTES=0: access.log is never rotated)"
    return
  fi
  max=${max%B}  # supervisord's 50MB is logrotate's 50M; KB is k
  max=${max/%K/k}
  mkdir -p "$(dirname "$conf")"
  local next=$conf.next
  cat >"$next" <<EOF
# Made by ops/vm-install.sh from LOG_FILE_MAX_BYTES and LOG_FILE_BACKUPS in $ENV_FILE. The API's access
# log, which gunicorn writes itself; supervisord rotates the programs' own logs.
$LOGS/access.log {
    size $max
    rotate ${backups:-10}
    missingok
    notifempty
    su $SERVICE_USER $SERVICE_GROUP
    postrotate
        $HOME_DIR/bin/supervisorctl signal USR1 web >/dev/null 2>&1 || true
    endscript
}
EOF
  chmod 0644 "$next"
  settle "$next" "$conf" logrotate || true
  PATH=$PATH:/usr/sbin:/sbin command -v logrotate >/dev/null || say "logrotate is not installed: apt-get install logrotate, or access.log is never rotated"
}

mkdir -p "$HOME_DIR"
install_venv
own "$STATE" 0750
own "$STATE/run" 0750
own "$STATE/metrics" 0750
own "$LOGS" 0750
install_app
install_wrappers
install_rules
install_env_file
install_logrotate
install_unit
cat <<EOF
vm-install: done. Next, as root:
  edit $ENV_FILE                      (where Postgres, Redis, Kafka and the S3 store are)
  edit $RULES          (which tables' changes delete which keys)
  $HOME_DIR/bin/cli schema install     (the outbox and triggers on the rules' tables)
  systemctl enable --now city-cache
  $HOME_DIR/bin/cli doctor             (every setting and dependency, one line each)
  $HOME_DIR/bin/supervisorctl status | tail -f web | signal HUP web
EOF
