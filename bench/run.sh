#!/usr/bin/env bash
# Compares sessiongate with a plain nginx reverse proxy, side by side in one
# run, on the same fast upstream:
#
#   (a) the upstream directly            (b) nginx as a plain reverse proxy
#   (m) the anchor: a minimal hyper proxy (bench/anchor/) that only
#       forwards, on sessiongate's own stack; the ceiling of what
#       sessiongate could reach
#   (c) sessiongate, public route        (d) sessiongate, logged-in session
#   (e) sessiongate, a new stored session on every request
#   (f) sessiongate with the Redis store, logged-in session
#   (g) Apache httpd with mod_session + mod_auth_form, logged in (the
#       legacy way of adding sessions; runs when apache2 is installed)
#   (k) nginx serving a 4 KiB static file    (s) sessiongate serving the
#       same file from a static: route (public); its ratio is to (k)
#   (h) nginx, fastcgi_pass to php-fpm   (i) sessiongate, a fastcgi route to
#       php-fpm: the same hello-world script, each to a php-fpm pool of its
#       own (FPM_CHILDREN=4 children; nginx keeps that many connections,
#       sessiongate's upstream_max_connections is that); runs when php-fpm
#       is installed. (i)'s ratio is to (h).
#
# Servers (upstream, proxy, Redis) share one core, the load generator (wrk)
# has the other; nginx runs one worker and sessiongate one tokio worker
# thread. More targets give both cores to nginx (2 workers, (b2)) and to
# sessiongate, with wrk unpinned: (c2) (d2) (e2) on one runtime of 2
# threads (`thread_per_core = false`), (c2t) (d2t) (e2t) as 2
# thread-per-core workers (the default). Every server is started once;
# the targets then run in REPEAT rounds, each round visiting every target
# in turn, so that a slow minute of a shared machine falls on all of them
# alike. The median of each target's rounds is kept; ratios are to (b), or
# to (b2) for the two-core targets, to (k) for the static file, and to (h) for FastCGI.
# The proxy targets to the fast upstream, (a) to (g), are also given as a
# ratio to (m), the anchor ("vs anchor"); the others do other work than it.
#
# Usage: bench/run.sh            (DURATION=10s CONNS=64 REPEAT=3 by default)
#        ONLY="b m d" bench/run.sh  (only the targets named; (b) and (m) are the bases of the ratios)
#        BIN=path bench/run.sh   (a sessiongate build to measure instead of
#                                 building target/release/sessiongate)
#        COMPARE_BIN=path bench/run.sh   (also runs (c*) (d*) (e*) (s*) on another
#                                 sessiongate build, e.g. the one before a change)
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10s}
CONNS=${CONNS:-64}
REPEAT=${REPEAT:-3}
ONLY=${ONLY:-}
SERVER_CORE=${SERVER_CORE:-0}
LOAD_CORE=${LOAD_CORE:-1}
KEY=bench-key-0123456789-abcdefghijklmnopqrstuvwxyz

for tool in nginx wrk redis-server taskset curl; do
  command -v "$tool" >/dev/null || { echo "bench: $tool is missing (apt-get install -y nginx wrk redis-server curl)" >&2; exit 1; }
done

if [ -z "${BIN:-}" ]; then
  cargo build --release --quiet
  BIN=$PWD/target/release/sessiongate
fi
COMPARE_BIN=${COMPARE_BIN:-}
WORK=$(mktemp -d)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

. bench/common.sh
build_anchor
FILES=$WORK/files
make_files "$FILES"

UP=$(free_port); AP=$(free_port); NGX=$(free_port); NGX2=$(free_port); SG=$(free_port); SG2=$(free_port); SGR=$(free_port); RDS=$(free_port); SGC=$(free_port); ANC=$(free_port); SG2T=$(free_port)

nginx_conf() { # name workers body
  mkdir -p "$WORK/$1"
  cat > "$WORK/$1/nginx.conf" <<NGINX
worker_processes $2;
pid $WORK/$1/nginx.pid;
error_log $WORK/$1/error.log warn;
events { worker_connections 4096; }
http {
  access_log $WORK/$1/access.log;
  keepalive_requests 1000000;
  $3
}
NGINX
}

# The fast upstream, the same for every target.
nginx_conf upstream 1 "
  server {
    listen 127.0.0.1:$UP;
$(upstream_locations)
  }"
taskset -c "$SERVER_CORE" nginx -c "$WORK/upstream/nginx.conf" -g 'daemon off;' & PIDS+=($!)

proxy_nginx() { # name workers port
  nginx_conf "$1" "$2" "
  upstream backend { server 127.0.0.1:$UP; keepalive 128; }
  server {
    listen 127.0.0.1:$3;
    location / {
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection '';
      proxy_set_header Host \$host;
      proxy_set_header X-Forwarded-For \$remote_addr;
    }
    location /files/ { alias $FILES/; }
  }"
}
proxy_nginx nginx1 1 "$NGX"
proxy_nginx nginx2 2 "$NGX2"
taskset -c "$SERVER_CORE" nginx -c "$WORK/nginx1/nginx.conf" -g 'daemon off;' & PIDS+=($!)
taskset -c "$SERVER_CORE" "$ANCHOR" "127.0.0.1:$ANC" "127.0.0.1:$UP" & PIDS+=($!)

sg_conf "$WORK/sg.toml" "$SG" 'kind = "memory"
max_sessions = 5000000' 1
sg_conf "$WORK/sg2.toml" "$SG2" 'kind = "memory"
max_sessions = 5000000' 2 'thread_per_core = false'
sg_conf "$WORK/sg2t.toml" "$SG2T" 'kind = "memory"
max_sessions = 5000000' 2 'thread_per_core = true'
taskset -c "$SERVER_CORE" "$BIN" --config "$WORK/sg.toml" > "$WORK/sg.log" & SG_PID=$!; PIDS+=($SG_PID)
# The two-core pair runs unpinned; idle while the other targets run.
nginx -c "$WORK/nginx2/nginx.conf" -g 'daemon off;' & PIDS+=($!)
"$BIN" --config "$WORK/sg2.toml" > "$WORK/sg2.log" & PIDS+=($!)
"$BIN" --config "$WORK/sg2t.toml" > "$WORK/sg2t.log" & PIDS+=($!)
if [ -n "$COMPARE_BIN" ]; then
  sg_conf "$WORK/sgc.toml" "$SGC" 'kind = "memory"
max_sessions = 5000000' 1
  taskset -c "$SERVER_CORE" "$COMPARE_BIN" --config "$WORK/sgc.toml" > "$WORK/sgc.log" & PIDS+=($!)
fi

REDIS_OK=0
if "$BIN" check --config <(sg_conf /dev/stdout "$SGR" "kind = \"redis\"
url = \"redis://127.0.0.1:$RDS/0\"" 1) >/dev/null 2>&1; then
  taskset -c "$SERVER_CORE" redis-server --port "$RDS" --bind 127.0.0.1 --save '' --appendonly no > "$WORK/redis.log" & PIDS+=($!)
  wait_port "$RDS"
  sg_conf "$WORK/sgr.toml" "$SGR" "kind = \"redis\"
url = \"redis://127.0.0.1:$RDS/0\"" 1
  taskset -c "$SERVER_CORE" "$BIN" --config "$WORK/sgr.toml" > "$WORK/sgr.log" & PIDS+=($!)
  REDIS_OK=1
fi

# (g) Apache: the session cookie carries the user and password, checked
# against an htpasswd (bcrypt) file on every request, as mod_auth_form does.
APACHE_OK=0
if command -v apache2 >/dev/null && command -v htpasswd >/dev/null; then
  mkdir -p "$WORK/apache"
  chmod 755 "$WORK" "$WORK/apache"   # the worker user must read the password file
  htpasswd -b -B -c "$WORK/apache/htpasswd" bench benchpw 2>/dev/null
  chmod 644 "$WORK/apache/htpasswd"
  M=/usr/lib/apache2/modules
  cat > "$WORK/apache/httpd.conf" <<APACHE
ServerRoot $WORK/apache
ServerName localhost
Listen 127.0.0.1:$AP
PidFile $WORK/apache/httpd.pid
ErrorLog $WORK/apache/error.log
LoadModule mpm_event_module $M/mod_mpm_event.so
LoadModule authn_core_module $M/mod_authn_core.so
LoadModule authn_file_module $M/mod_authn_file.so
LoadModule authz_core_module $M/mod_authz_core.so
LoadModule authz_user_module $M/mod_authz_user.so
LoadModule auth_form_module $M/mod_auth_form.so
LoadModule request_module $M/mod_request.so
LoadModule session_module $M/mod_session.so
LoadModule session_cookie_module $M/mod_session_cookie.so
LoadModule proxy_module $M/mod_proxy.so
LoadModule proxy_http_module $M/mod_proxy_http.so
User www-data
Group www-data
StartServers 1
ServerLimit 1
ThreadsPerChild 64
MaxRequestWorkers 64
MinSpareThreads 1
MaxSpareThreads 64
MaxKeepAliveRequests 0
CustomLog $WORK/apache/access.log common
<Location "/public/">
  AuthType form
  AuthName bench
  AuthFormProvider file
  AuthUserFile $WORK/apache/htpasswd
  Session On
  SessionCookieName session path=/
  Require valid-user
  ProxyPass http://127.0.0.1:$UP/public/
</Location>
<Location "/dologin">
  SetHandler form-login-handler
  AuthType form
  AuthName bench
  AuthFormProvider file
  AuthUserFile $WORK/apache/htpasswd
  AuthFormLoginSuccessLocation "/"
  Session On
  SessionCookieName session path=/
  Require all granted
</Location>
APACHE
  taskset -c "$SERVER_CORE" apache2 -f "$WORK/apache/httpd.conf" -DFOREGROUND > "$WORK/apache/stdout.log" 2>&1 & PIDS+=($!)
  APACHE_OK=1
fi

wait_port "$UP"; wait_port "$NGX"; wait_port "$ANC"; wait_port "$SG"; wait_port "$NGX2"; wait_port "$SG2"; wait_port "$SG2T"
[ "$REDIS_OK" = 1 ] && wait_port "$SGR"
[ -n "$COMPARE_BIN" ] && wait_port "$SGC"

COOKIE=$(login_cookie "$SG")
[ -n "$COOKIE" ] || { echo "bench: no session cookie from sessiongate" >&2; exit 1; }
curl -s -o /dev/null -w '%{http_code}' -H "Cookie: $COOKIE" "http://127.0.0.1:$SG/session/" | grep -q 200 \
  || { echo "bench: the logged-in session does not pass" >&2; exit 1; }
for port in "$SG" "$NGX"; do
  cmp -s "$FILES/4k.html" <(curl -s "http://127.0.0.1:$port/files/4k.html") \
    || { echo "bench: /files/4k.html is not served on port $port" >&2; exit 1; }
done
COOKIE2=$(login_cookie "$SG2")
COOKIE2T=$(login_cookie "$SG2T")
[ "$REDIS_OK" = 1 ] && RCOOKIE=$(login_cookie "$SGR")
[ -n "$COMPARE_BIN" ] && CCOOKIE=$(login_cookie "$SGC")
if [ "$APACHE_OK" = 1 ]; then
  wait_port "$AP"
  ACOOKIE=$(curl -s -D - -o /dev/null -d 'httpd_username=bench&httpd_password=benchpw' "http://127.0.0.1:$AP/dologin" \
    | tr -d '\r' | sed -n 's/^[Ss]et-[Cc]ookie: \(session=[^;]*\).*/\1/p')
fi

# (h) and (i): php-fpm, one pool each, on the servers' core.
PHP_OK=0
if php_fpm_start "$WORK" "$SERVER_CORE" ngx sg; then
  NGXP=$(free_port); SGP=$(free_port)
  nginx_conf nginxphp 1 "
  upstream php { server 127.0.0.1:$FPM_PORT_ngx; keepalive $FPM_CHILDREN; }
  server {
    listen 127.0.0.1:$NGXP;
    root $WORK/php;
    location ~ \.php\$ {
      fastcgi_pass php;
      fastcgi_keep_conn on;
      include /etc/nginx/fastcgi_params;
      fastcgi_param SCRIPT_FILENAME \$document_root\$fastcgi_script_name;
    }
  }"
  taskset -c "$SERVER_CORE" nginx -c "$WORK/nginxphp/nginx.conf" -g 'daemon off;' & PIDS+=($!)
  sg_fastcgi_conf "$WORK/sgp.toml" "$SGP" "$FPM_PORT_sg" "$WORK" 1
  taskset -c "$SERVER_CORE" "$BIN" --config "$WORK/sgp.toml" > "$WORK/sgp.log" & PIDS+=($!)
  wait_port "$NGXP"; wait_port "$SGP"
  for port in "$NGXP" "$SGP"; do
    curl -s "http://127.0.0.1:$port/hello.php" | grep -q 'hello from php' \
      || { echo "bench: php-fpm does not answer through port $port" >&2; exit 1; }
  done
  PHP_OK=1
fi

# The targets, in the order of every round and of the table:
# label|pin or free|url|cookie
TARGETS=(
  "(a) upstream directly|pin|http://127.0.0.1:$UP/public/|"
  "(b) nginx reverse proxy|pin|http://127.0.0.1:$NGX/public/|"
  "(m) anchor: minimal hyper proxy|pin|http://127.0.0.1:$ANC/public/|"
  "(c) sessiongate public route|pin|http://127.0.0.1:$SG/public/|"
  "(d) sessiongate logged-in session|pin|http://127.0.0.1:$SG/session/|$COOKIE"
  "(e) sessiongate new session each time|pin|http://127.0.0.1:$SG/new/|"
)
[ -n "$COMPARE_BIN" ] && TARGETS+=(
  "(c*) compared build, public route|pin|http://127.0.0.1:$SGC/public/|"
  "(d*) compared build, logged-in session|pin|http://127.0.0.1:$SGC/session/|$CCOOKIE"
  "(e*) compared build, new session each time|pin|http://127.0.0.1:$SGC/new/|"
)
[ "$REDIS_OK" = 1 ] && TARGETS+=("(f) sessiongate redis store|pin|http://127.0.0.1:$SGR/session/|$RCOOKIE")
[ "$APACHE_OK" = 1 ] && TARGETS+=("(g) Apache mod_session, logged in|pin|http://127.0.0.1:$AP/public/|$ACOOKIE")
[ "$PHP_OK" = 1 ] && TARGETS+=(
  "(h) nginx fastcgi_pass to php-fpm|pin|http://127.0.0.1:$NGXP/hello.php|"
  "(i) sessiongate fastcgi to php-fpm|pin|http://127.0.0.1:$SGP/hello.php|"
)
TARGETS+=(
  "(k) nginx, 4 KiB static file|pin|http://127.0.0.1:$NGX/files/4k.html|"
  "(s) sessiongate, 4 KiB static: file|pin|http://127.0.0.1:$SG/files/4k.html|"
)
[ -n "$COMPARE_BIN" ] && TARGETS+=(
  "(s*) compared build, 4 KiB static: file|pin|http://127.0.0.1:$SGC/files/4k.html|"
)
TARGETS+=(
  "(b2) nginx, 2 workers|free|http://127.0.0.1:$NGX2/public/|"
  "(c2) sessiongate, one runtime of 2 threads, public|free|http://127.0.0.1:$SG2/public/|"
  "(d2) sessiongate, one runtime of 2 threads, session|free|http://127.0.0.1:$SG2/session/|$COOKIE2"
  "(e2) sessiongate, one runtime of 2 threads, new session|free|http://127.0.0.1:$SG2/new/|"
  "(c2t) thread-per-core, 2 workers, public|free|http://127.0.0.1:$SG2T/public/|"
  "(d2t) thread-per-core, 2 workers, session|free|http://127.0.0.1:$SG2T/session/|$COOKIE2T"
  "(e2t) thread-per-core, 2 workers, new session|free|http://127.0.0.1:$SG2T/new/|"
)

# One wrk run: prints "rps p50_ms p99_ms non2xx".
wrk_once() { # pin url [cookie]
  local pin=$1 url=$2 cookie=${3:-} out
  local cmd=(wrk -t1 -c"$CONNS" -d"$DURATION" --latency)
  [ -n "$cookie" ] && cmd+=(-H "Cookie: $cookie")
  if [ "$pin" = pin ]; then out=$(taskset -c "$LOAD_CORE" "${cmd[@]}" "$url"); else out=$("${cmd[@]}" "$url"); fi
  echo "$out" | awk '
    function ms(v) { if (v ~ /us$/) return v/1000; if (v ~ /ms$/) return v+0; if (v ~ /s$/) return v*1000; return v }
    $1=="50%" { p50=ms($2) } $1=="99%" { p99=ms($2) } $1=="Requests/sec:" { rps=$2 }
    /Non-2xx/ { bad=$NF }
    END { printf "%.0f %.3f %.3f %s\n", rps, p50, p99, (bad==""?0:bad) }'
}

selected() { # label
  [ -z "$ONLY" ] && return 0
  local key=${1%%)*}; key=${key#(}
  [[ " $ONLY " == *" $key "* ]]
}

rss_mb() { awk '/VmRSS/ { printf "%.1f", $2/1024 }' "/proc/$1/status"; }

echo "bench: $(nproc) cores, wrk -c$CONNS -d$DURATION, $REPEAT rounds, servers on core $SERVER_CORE, wrk on core $LOAD_CORE" >&2
declare -A RUNS
for round in $(seq 1 "$REPEAT"); do
  for t in "${TARGETS[@]}"; do
    IFS='|' read -r label pin url cookie <<<"$t"
    selected "$label" || continue
    result=$(wrk_once "$pin" "$url" "$cookie")
    RUNS[$label]+="$result"$'\n'
    printf '  round %s %-44s %s\n' "$round" "$label" "$result" >&2
  done
done

# The median round of each target, by requests/s.
declare -A R
for label in "${!RUNS[@]}"; do
  R[$label]=$(printf '%s' "${RUNS[$label]}" | sort -n | awk '{ a[NR]=$0 } END { print a[int((NR+1)/2)] }')
done

base=${R["(b) nginx reverse proxy"]:-}; base=${base%% *}
base2=${R["(b2) nginx, 2 workers"]:-}; base2=${base2%% *}
base_files=${R["(k) nginx, 4 KiB static file"]:-}; base_files=${base_files%% *}
base3=${R["(h) nginx fastcgi_pass to php-fpm"]:-}; base3=${base3%% *}
anchor=${R["(m) anchor: minimal hyper proxy"]:-}; anchor=${anchor%% *}
printf '\n| target | req/s | vs nginx | vs anchor | p50 ms | p99 ms | non-2xx |\n|---|---:|---:|---:|---:|---:|---:|\n'
for t in "${TARGETS[@]}"; do
  label=${t%%|*}
  [ -n "${R[$label]:-}" ] || continue
  read -r rps p50 p99 bad <<<"${R[$label]}"
  b=$base; case $label in "(b2)"*|"(c2"*|"(d2"*|"(e2"*) b=$base2;; "(k)"*|"(s)"*|"(s*)"*) b=$base_files;; "(h)"*|"(i)"*) b=$base3;; esac
  ratio=-; [ -n "$b" ] && ratio=$(printf '%.2fx' "$(echo "$rps / $b" | bc -l)")
  # The anchor proxies the fast upstream on one thread: only the targets
  # doing the same are compared with it.
  vs_anchor=-
  case $label in "(c2"*|"(e2"*) ;;
    "(a)"*|"(b)"*|"(m)"*|"(c"*|"(d)"*|"(d*)"*|"(e"*|"(f)"*|"(g)"*)
    [ -n "$anchor" ] && vs_anchor=$(printf '%.2fx' "$(echo "$rps / $anchor" | bc -l)") ;;
  esac
  printf '| %s | %s | %s | %s | %s | %s | %s |\n' "$label" "$rps" "$ratio" "$vs_anchor" "$p50" "$p99" "$bad"
done
echo
echo "sessiongate RSS at the end (one thread, every round of (c)-(e)): $(rss_mb "$SG_PID") MB; nginx: $(ps -o rss= -C nginx | awk '{s+=$1} END {printf "%.1f", s/1024}') MB in all nginx processes"
