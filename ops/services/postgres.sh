# shellcheck shell=bash
# PostgreSQL: a cluster of our own in $PG_STATE_DIR/data, run as the OS user postgres (the
# server refuses root). Sourced by ops/services.sh.
PG_DIR=$PG_STATE_DIR
PG_DATA=$PG_DIR/data

as_postgres() { runuser -u postgres -- "$@"; }

postgres_pid() { pid_from_file "$PG_DATA/postmaster.pid" postgres "$PG_DIR"; }

postgres_init() {
  [[ -f $PG_DATA/PG_VERSION ]] && return
  local auth=scram-sha-256 pwfile=$PG_DIR/pwfile
  mkdir -p "$PG_DATA"
  chown postgres:postgres "$PG_DIR" "$PG_DATA"
  chmod 700 "$PG_DIR"
  as_postgres test -w "$PG_DATA" || die "postgres: the OS user postgres cannot reach $PG_DATA (a parent directory is closed to it)"
  # The superuser is the DSN's user with the DSN's password, checked by scram over TCP and the
  # socket alike; only a DSN without a password gets trust (the server listens on localhost only).
  if [[ -z $PG_PASSWORD ]]; then auth=trust; fi
  (umask 077 && printf '%s\n' "$PG_PASSWORD" >"$pwfile")
  chown postgres:postgres "$pwfile"
  as_postgres "$PG_BIN/initdb" -D "$PG_DATA" -U "$PG_USER" --pwfile="$pwfile" --auth="$auth" \
    -E UTF8 --locale=C.UTF-8 >"$PG_DIR/initdb.log" 2>&1 || { cat "$PG_DIR/initdb.log" >&2; die "postgres: initdb failed"; }
  rm -f "$pwfile"
  say "postgres: initialised $PG_DATA (user $PG_USER, auth $auth)"
}

postgres_psql() {
  PGPASSWORD=$PG_PASSWORD PGCONNECT_TIMEOUT=5 "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 \
    -h 127.0.0.1 -p "$PG_PORT" -U "$PG_USER" "$@"
}

postgres_start() {
  require_free_port postgres "$PG_PORT"
  postgres_init
  mkdir -p "$PG_DIR/log" "$PG_DIR/sock"
  chown postgres:postgres "$PG_DIR/log" "$PG_DIR/sock"
  # The postmaster makes itself a session leader, so it outlives the calling shell.
  as_postgres "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$PG_DIR/log/postgres.log" -w -t 60 \
    -o "-p $PG_PORT -k $PG_DIR/sock -c listen_addresses=localhost -c shared_preload_libraries=pg_stat_statements -c track_commit_timestamp=on -c wal_level=logical" \
    start >/dev/null || { tail -n 40 "$PG_DIR/log/postgres.log" >&2; die "postgres: pg_ctl start failed"; }
  postgres_wait "$(postgres_pid)"
  # The name goes in as a psql variable, quoted by psql (:'literal', :"identifier"), never as SQL text.
  if [[ -z $(postgres_psql -d postgres -tA -v db="$PG_DATABASE" <<<"select 1 from pg_database where datname = :'db'") ]]; then
    postgres_psql -d postgres -v db="$PG_DATABASE" <<<'create database :"db"'
    say "postgres: created database $PG_DATABASE"
  fi
  "$PG_BIN/psql" "$DATABASE_URL" -Xqc 'select 1' >/dev/null || die "postgres: the DSN $DATABASE_URL does not connect"
}

postgres_wait() {
  # The DSN's own database may not exist yet right after initdb: readiness is judged on "postgres".
  wait_until postgres "$1" 60 "$PG_DIR/log/postgres.log" postgres_psql -d postgres -c 'select 1'
}

postgres_stop() {
  as_postgres "$PG_BIN/pg_ctl" -D "$PG_DATA" -m fast -w -t 30 stop >/dev/null || terminate postgres "$1"
}
