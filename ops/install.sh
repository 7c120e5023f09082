#!/usr/bin/env bash
# Installs what one command needs, on top of what running needs:
#   ops/install.sh run|test|bench    bin/run, bin/test and bin/bench call it with their own name
# Debian packages, the Python venv, and the Kafka and S3Proxy classpaths from Maven Central. Pinned
# and idempotent: every step leaves a marker (or checks what is installed) and a second run only
# looks at them. CITY_CACHE_INSTALL=plan prints what the command installs, and installs nothing.
set -euo pipefail
# shellcheck source=ops/env.sh
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"

# What running needs: the four services, their client tools, the venv's python. curl: the README's
# examples, and ops/app.sh's readiness check.
RUN_DEBS=(postgresql-15 postgresql-contrib redis-server redis-tools python3-venv openjdk-17-jre-headless maven
          procps iproute2 util-linux curl)
# On top, for the tests only. chromium: the page test (tests/integration/test_page.py) renders GET /
# headless and saves a screenshot; wrk: the benchmarks' smoke test (tests/integration/test_bench_smoke.py);
# libjpeg-turbo-progs: djpeg decodes the served test.jpg (tests/integration/test_api_images.py);
# prometheus (with promtool): the alert rules' tests (tests/unit/test_alert_rules.py, tests/faults/test_alerts.py);
# logrotate: the VM install's test rotates the access log as Debian's daily run would.
TEST_DEBS=(chromium wrk libjpeg-turbo-progs prometheus logrotate)
# On top, for the benchmarks only: wrk drives figure 1 (pgbench comes with postgresql-15).
BENCH_DEBS=(wrk)

LOG4J_VERSION=2.25.3
MAVEN_DEPENDENCY_PLUGIN=org.apache.maven.plugins:maven-dependency-plugin:3.8.1

say() { echo "install: $*"; }
die() { echo "install: $*" >&2; exit 1; }
usage() { echo "usage: ops/install.sh [--quiet] run|test|bench" >&2; exit 2; }

QUIET=''
if [[ ${1:-} == --quiet ]]; then QUIET=yes; shift; fi
(($# == 1)) || usage
PURPOSE=$1
# Each command's Debian packages and requirements file (requirements-dev.txt includes requirements.txt;
# the benchmarks import requests, which only the dev file has).
case $PURPOSE in
  run) DEBS=("${RUN_DEBS[@]}"); REQUIREMENTS=requirements.txt ;;
  test) DEBS=("${RUN_DEBS[@]}" "${TEST_DEBS[@]}"); REQUIREMENTS=requirements-dev.txt ;;
  bench) DEBS=("${RUN_DEBS[@]}" "${BENCH_DEBS[@]}"); REQUIREMENTS=requirements-dev.txt ;;
  *) usage ;;
esac

# What is already there says so only without --quiet; what gets installed always does.
present() { [[ -n $QUIET ]] || say "$@"; }

missing_debs() {
  local pkg
  for pkg in "${DEBS[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'ok installed' || echo "$pkg"
  done
}

print_plan() {
  local missing
  missing=$(missing_debs | paste -sd ' ')
  echo "install: bin/$PURPOSE installs"
  echo "  debian: ${DEBS[*]}"
  echo "  python: $REQUIREMENTS (pip, into $VENV)"
  echo "  maven: kafka $KAFKA_VERSION, s3proxy $S3PROXY_VERSION (into $CACHE_HOME)"
  echo "  missing here: ${missing:-no debian package}"
}

install_debs() {
  local missing=()
  mapfile -t missing < <(missing_debs)
  if ((${#missing[@]} == 0)); then
    present "debian packages present"
    return
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get -o DPkg::Lock::Timeout=300 update -qq
  apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  say "debian packages installed: ${missing[*]}"
}

# Debian's packages may have created and started a cluster 15/main on 5432 and a redis on 6379.
# Our own processes (ops/services.sh) take those ports, so the system ones are stopped and kept
# from starting at boot, whatever state they are in now.
stop_system_services() {
  local conf=/etc/postgresql/15/main/start.conf
  if [[ -f $conf ]] && ! grep -qx manual "$conf"; then
    echo manual >"$conf"
  fi
  if command -v pg_lsclusters >/dev/null && pg_lsclusters -h 2>/dev/null | awk '$1 == 15 && $2 == "main" && $4 == "online"' | grep -q .; then
    pg_ctlcluster 15 main stop
    say "stopped the system cluster postgresql 15/main"
  fi
  local pidfile=/run/redis/redis-server.pid
  if [[ -f $pidfile ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
    if [[ -d /run/systemd/system ]]; then systemctl stop redis-server; else /etc/init.d/redis-server stop >/dev/null; fi
    say "stopped the system redis-server"
  fi
  if [[ -d /run/systemd/system ]]; then
    systemctl disable --now postgresql redis-server >/dev/null 2>&1 || true
  elif [[ -x /etc/init.d/redis-server ]] && ls /etc/rc[2-5].d/S*redis-server >/dev/null 2>&1; then
    update-rc.d redis-server disable >/dev/null 2>&1 || true
  fi
  # Debian's prometheus (bin/test's) starts a system Prometheus on 9090; the tests start their own.
  if [[ -d /run/systemd/system ]]; then
    systemctl disable --now prometheus >/dev/null 2>&1 || true
  elif [[ -f /run/prometheus/prometheus.pid ]] && kill -0 "$(cat /run/prometheus/prometheus.pid)" 2>/dev/null; then
    /etc/init.d/prometheus stop >/dev/null || true
    say "stopped the system prometheus"
  fi
  if [[ ! -d /run/systemd/system && -x /etc/init.d/prometheus ]] && ls /etc/rc[2-5].d/S*prometheus >/dev/null 2>&1; then
    update-rc.d prometheus disable >/dev/null 2>&1 || true
  fi
}

# One venv in two layers: requirements.txt (marker .installed, which ops/services.sh checks), then
# requirements-dev.txt on top of it (marker .installed-dev) for bin/test and bin/bench.
install_venv() {
  local marker=.installed
  [[ $REQUIREMENTS == requirements.txt ]] || marker=.installed-dev
  if [[ -f $VENV/$marker ]]; then
    present "venv cached ($VENV)"
    return
  fi
  [[ -x $PYTHON ]] || python3 -m venv "$VENV"
  "$PYTHON" -m pip install -q --disable-pip-version-check -r "$ROOT/$REQUIREMENTS"
  touch "$VENV/.installed" "$VENV/$marker"
  say "venv installed ($VENV, $REQUIREMENTS)"
}

# maven_classpath DIR NAME [--bom G:A:V]... G:A:V...: the runtime classpath of the artifacts, in
# DIR/libs, through a generated pom. A BOM pins the versions its artifact was built with (Maven's
# nearest-wins would otherwise pick older transitive versions). The libs appear whole or not at all;
# DIR/.installed holds the pom they came from, so a changed pin resolves again.
maven_classpath() {
  local dir=$1 name=$2
  shift 2
  local boms="" deps="" g a v pom
  while (($#)); do
    if [[ $1 == --bom ]]; then
      IFS=: read -r g a v <<<"$2"
      boms+="<dependency><groupId>$g</groupId><artifactId>$a</artifactId><version>$v</version><type>pom</type><scope>import</scope></dependency>"
      shift 2
    else
      IFS=: read -r g a v <<<"$1"
      deps+="<dependency><groupId>$g</groupId><artifactId>$a</artifactId><version>$v</version></dependency>"
      shift
    fi
  done
  pom="<project xmlns=\"http://maven.apache.org/POM/4.0.0\">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.citycache</groupId><artifactId>$name-classpath</artifactId><version>1</version>
  <packaging>pom</packaging>
  <dependencyManagement><dependencies>$boms</dependencies></dependencyManagement>
  <dependencies>$deps</dependencies>
</project>"
  if [[ -f $dir/.installed && $(<"$dir/.installed") == "$pom" ]]; then
    return 1
  fi
  mkdir -p "$dir"
  rm -rf "$dir/libs" "$dir/libs.tmp" "$dir/.installed"
  printf '%s\n' "$pom" >"$dir/pom.xml"
  if ! mvn -B -q -f "$dir/pom.xml" "$MAVEN_DEPENDENCY_PLUGIN:copy-dependencies" \
      -DincludeScope=runtime -DoutputDirectory="$dir/libs.tmp" >"$dir/mvn.log" 2>&1; then
    tail -n 30 "$dir/mvn.log" >&2
    die "maven could not resolve $name (log: $dir/mvn.log)"
  fi
  mv "$dir/libs.tmp" "$dir/libs"
  printf '%s\n' "$pom" >"$dir/.installed"
}

install_kafka() {
  local dir=$CACHE_HOME/kafka-$KAFKA_VERSION
  # Kafka logs through slf4j 1.7: log4j-slf4j-impl is the binding, without it the broker is silent.
  if maven_classpath "$dir" kafka "org.apache.kafka:kafka_2.13:$KAFKA_VERSION" \
      "org.apache.logging.log4j:log4j-core:$LOG4J_VERSION" \
      "org.apache.logging.log4j:log4j-slf4j-impl:$LOG4J_VERSION"; then
    say "kafka $KAFKA_VERSION installed ($(find "$dir/libs" -name "*.jar" | wc -l) jars)"
  else
    present "kafka $KAFKA_VERSION cached"
  fi
}

install_s3proxy() {
  local dir=$CACHE_HOME/s3proxy-$S3PROXY_VERSION gav=org.gaul:s3proxy:$S3PROXY_VERSION
  if maven_classpath "$dir" s3proxy --bom "$gav" "$gav"; then
    say "s3proxy $S3PROXY_VERSION installed ($(find "$dir/libs" -name "*.jar" | wc -l) jars)"
  else
    present "s3proxy $S3PROXY_VERSION cached"
  fi
}

if [[ ${CITY_CACHE_INSTALL:-} == plan ]]; then
  print_plan
  exit 0
fi
mkdir -p "$CACHE_HOME"
install_debs
stop_system_services
install_venv
install_kafka
install_s3proxy
