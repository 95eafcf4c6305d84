#!/usr/bin/env bash
# Compares sessiongate with a plain nginx reverse proxy, side by side in one
# run, on the same fast upstream:
#
#   (a) the upstream directly            (b) nginx as a plain reverse proxy
#   (c) sessiongate, public route        (d) sessiongate, logged-in session
#   (e) sessiongate, a new stored session on every request
#   (f) sessiongate with the Redis store, logged-in session
#   (g) Apache httpd with mod_session + mod_auth_form, logged in (the
#       legacy way of adding sessions; runs when apache2 is installed)
#
# Servers (upstream, proxy, Redis) share one core, the load generator (wrk)
# has the other; nginx runs one worker and sessiongate one tokio worker
# thread. A second pass gives both cores to nginx (2 workers) and to
# sessiongate (2 threads), with wrk unpinned. Each target is run REPEAT times
# and the median is kept; ratios are to (b) in the same run.
#
# Usage: bench/run.sh            (DURATION=10s CONNS=64 REPEAT=3 by default)
#        ONLY="b d" bench/run.sh  (only the targets named; (b) is the base of the ratios)
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

cargo build --release --quiet
BIN=$PWD/target/release/sessiongate
WORK=$(mktemp -d)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() {
  for _ in $(seq 1 200); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.05
  done
  echo "bench: nothing listens on port $1" >&2; exit 1
}

UP=$(free_port); AP=$(free_port); NGX=$(free_port); NGX2=$(free_port); SG=$(free_port); SG2=$(free_port); SGR=$(free_port); RDS=$(free_port)

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
    location / { return 200 'hello from the upstream\n'; }
    location /login { add_header X-Session-Login bench; return 200 'logged in\n'; }
    location /new/ { add_header X-Session-Set 'n=1'; return 200 'stored\n'; }
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
  }"
}
proxy_nginx nginx1 1 "$NGX"
proxy_nginx nginx2 2 "$NGX2"
taskset -c "$SERVER_CORE" nginx -c "$WORK/nginx1/nginx.conf" -g 'daemon off;' & PIDS+=($!)

sg_conf() { # file port store-section workers
  cat > "$1" <<TOML
[server]
listen = ["127.0.0.1:$2"]
workers = $4
[session]
secret_keys = ["$KEY"]
[store]
$3
[log]
level = "info"
[login]
source = "backend"
page = "/login"
[[route]]
path = "/public/"
upstream = "http://127.0.0.1:$UP"
access = "public"
[[route]]
path = "/session/"
upstream = "http://127.0.0.1:$UP"
access = "login"
[[route]]
path = "/new/"
upstream = "http://127.0.0.1:$UP"
access = "session"
[[route]]
path = "/login"
upstream = "http://127.0.0.1:$UP"
access = "public"
TOML
}
sg_conf "$WORK/sg.toml" "$SG" 'kind = "memory"
max_sessions = 5000000' 1
sg_conf "$WORK/sg2.toml" "$SG2" 'kind = "memory"
max_sessions = 5000000' 2
taskset -c "$SERVER_CORE" "$BIN" --config "$WORK/sg.toml" > "$WORK/sg.log" & SG_PID=$!; PIDS+=($SG_PID)

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

wait_port "$UP"; wait_port "$NGX"; wait_port "$SG"
[ "$REDIS_OK" = 1 ] && wait_port "$SGR"

login_cookie() { # port
  curl -s -D - -o /dev/null "http://127.0.0.1:$1/login" | tr -d '\r' | sed -n 's/^[Ss]et-[Cc]ookie: \(sg_session=[^;]*\).*/\1/p'
}
COOKIE=$(login_cookie "$SG")
[ -n "$COOKIE" ] || { echo "bench: no session cookie from sessiongate" >&2; exit 1; }
curl -s -o /dev/null -w '%{http_code}' -H "Cookie: $COOKIE" "http://127.0.0.1:$SG/session/" | grep -q 200 \
  || { echo "bench: the logged-in session does not pass" >&2; exit 1; }

# One wrk run: prints "rps p50_ms p99_ms".
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

# Median of REPEAT runs by requests/s.
measure() { # pin url [cookie]
  for _ in $(seq 1 "$REPEAT"); do wrk_once "$@"; done | sort -n | awk '{ a[NR]=$0 } END { print a[int((NR+1)/2)] }'
}

rss_mb() { awk '/VmRSS/ { printf "%.1f", $2/1024 }' "/proc/$1/status"; }

declare -A R
run() { # label pin url [cookie]
  local label=$1; shift
  if [ -n "$ONLY" ]; then
    local key=${label%%)*}; key=${key#(}
    [[ " $ONLY " == *" $key "* ]] || return 0
  fi
  R[$label]=$(measure "$@")
  printf '  measured %-34s %s\n' "$label" "${R[$label]}" >&2
}

echo "bench: $(nproc) cores, wrk -c$CONNS -d$DURATION x$REPEAT, servers on core $SERVER_CORE, wrk on core $LOAD_CORE" >&2
run "(a) upstream directly" pin "http://127.0.0.1:$UP/public/"
run "(b) nginx reverse proxy" pin "http://127.0.0.1:$NGX/public/"
run "(c) sessiongate public route" pin "http://127.0.0.1:$SG/public/"
run "(d) sessiongate logged-in session" pin "http://127.0.0.1:$SG/session/" "$COOKIE"
run "(e) sessiongate new session each time" pin "http://127.0.0.1:$SG/new/"
SG_RSS=$(rss_mb "$SG_PID")
if [ "$REDIS_OK" = 1 ]; then
  RCOOKIE=$(login_cookie "$SGR")
  run "(f) sessiongate redis store" pin "http://127.0.0.1:$SGR/session/" "$RCOOKIE"
fi
if [ "$APACHE_OK" = 1 ]; then
  wait_port "$AP"
  ACOOKIE=$(curl -s -D - -o /dev/null -d 'httpd_username=bench&httpd_password=benchpw' "http://127.0.0.1:$AP/dologin" \
    | tr -d '\r' | sed -n 's/^[Ss]et-[Cc]ookie: \(session=[^;]*\).*/\1/p')
  run "(g) Apache mod_session, logged in" pin "http://127.0.0.1:$AP/public/" "$ACOOKIE"
fi

# Both cores: nginx with 2 workers, sessiongate with 2 threads, wrk unpinned.
kill "$SG_PID"; wait "$SG_PID" 2>/dev/null || true
nginx -c "$WORK/nginx2/nginx.conf" -g 'daemon off;' & PIDS+=($!)
"$BIN" --config "$WORK/sg2.toml" > "$WORK/sg2.log" & SG2_PID=$!; PIDS+=($SG2_PID)
wait_port "$NGX2"; wait_port "$SG2"
COOKIE2=$(login_cookie "$SG2")
run "(b2) nginx, 2 workers" free "http://127.0.0.1:$NGX2/public/"
run "(d2) sessiongate, 2 threads, session" free "http://127.0.0.1:$SG2/session/" "$COOKIE2"

base=${R["(b) nginx reverse proxy"]:-}; base=${base%% *}
base2=${R["(b2) nginx, 2 workers"]:-}; base2=${base2%% *}
printf '\n| target | req/s | vs nginx | p50 ms | p99 ms | non-2xx |\n|---|---:|---:|---:|---:|---:|\n'
for label in "(a) upstream directly" "(b) nginx reverse proxy" "(c) sessiongate public route" \
             "(d) sessiongate logged-in session" "(e) sessiongate new session each time" \
             "(f) sessiongate redis store" "(g) Apache mod_session, logged in" "(b2) nginx, 2 workers" "(d2) sessiongate, 2 threads, session"; do
  [ -n "${R[$label]:-}" ] || continue
  read -r rps p50 p99 bad <<<"${R[$label]}"
  b=$base; case $label in "(b2)"*|"(d2)"*) b=$base2;; esac
  ratio=-; [ -n "$b" ] && ratio=$(printf '%.2fx' "$(echo "$rps / $b" | bc -l)")
  printf '| %s | %s | %s | %s | %s | %s |\n' "$label" "$rps" "$ratio" "$p50" "$p99" "$bad"
done
echo
echo "sessiongate RSS after (c)-(e): ${SG_RSS} MB; nginx proxy workers: $(ps -o rss= -C nginx | awk '{s+=$1} END {printf "%.1f", s/1024}') MB in all nginx processes"
