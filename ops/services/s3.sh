# shellcheck shell=bash
# S3: S3Proxy (Apache-2.0) storing buckets as directories under $STATE_DIR/s3/data; the app talks
# to it with the minio SDK as it would to MinIO. Sourced by ops/services.sh.
S3_DIR=$STATE_DIR/s3
S3PROXY_LIBS=$CACHE_HOME/s3proxy-$S3PROXY_VERSION/libs

s3_pid() { pid_from_file "$S3_DIR/s3.pid" s3; }

s3_start() {
  [[ -f $S3PROXY_LIBS/../.installed ]] || die "s3: s3proxy $S3PROXY_VERSION is not installed: run ops/install.sh run"
  require_free_port s3 "$S3_PORT"
  mkdir -p "$S3_DIR/data"
  (umask 077 && cat >"$S3_DIR/s3proxy.conf" <<PROPS
s3proxy.endpoint=http://127.0.0.1:$S3_PORT
s3proxy.authorization=aws-v2-or-v4
s3proxy.identity=$(properties_value "$S3_ACCESS_KEY")
s3proxy.credential=$(properties_value "$S3_SECRET_KEY")
jclouds.provider=filesystem
jclouds.filesystem.basedir=$S3_DIR/data
PROPS
  )
  # Without a configuration logback logs everything at DEBUG.
  cat >"$S3_DIR/logback.xml" <<'XML'
<configuration>
  <appender name="STDOUT" class="ch.qos.logback.core.ConsoleAppender">
    <encoder><pattern>[%d] %-5level %msg \(%logger{36}\)%n</pattern></encoder>
  </appender>
  <root level="INFO"><appender-ref ref="STDOUT"/></root>
</configuration>
XML
  launch_java "$S3_DIR" "$S3_DIR/s3.pid" "$S3_DIR/s3.log" \
    -Xms64m -Xmx512m -Djava.awt.headless=true -Dlogback.configurationFile="$S3_DIR/logback.xml" -cp "$S3PROXY_LIBS/*" \
    org.gaul.s3proxy.Main --properties "$S3_DIR/s3proxy.conf"
  s3_wait "$(cat "$S3_DIR/s3.pid")"
}

# The credentials reach Python through the environment (exported by ops/services.sh), not as code.
s3_ready() {
  timeout 20 "$PYTHON" -c '
import os
from minio import Minio
Minio("127.0.0.1:" + os.environ["S3_PORT"], access_key=os.environ["S3_ACCESS_KEY"],
      secret_key=os.environ["S3_SECRET_KEY"], secure=False).list_buckets()'
}

# A value for a Java .properties line: backslashes doubled, leading blanks and line breaks escaped.
properties_value() {
  local v=${1//\\/\\\\}
  v=${v//$'\n'/\\n}
  v=${v//$'\r'/\\r}
  [[ $v == [[:space:]]* ]] && v="\\$v"
  printf '%s' "$v"
}

s3_wait() { wait_until s3 "$1" 60 "$S3_DIR/s3.log" s3_ready; }

s3_stop() { terminate s3 "$1"; }
