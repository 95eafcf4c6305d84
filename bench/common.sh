# Shared by bench/run.sh, bench/instructions.sh and bench/profile.sh: ports,
# the fast upstream's locations, the static file, sessiongate's config for
# the benchmark routes, and the anchor.

# Builds the anchor, the minimal hyper proxy of bench/anchor/ (a crate of its
# own, not in the workspace; a few seconds once built), into
# target/anchor/, and sets ANCHOR to the binary. It is run as
# `$ANCHOR LISTEN UPSTREAM`.
build_anchor() {
  cargo build --release --locked --quiet --manifest-path bench/anchor/Cargo.toml --target-dir target/anchor
  ANCHOR=$PWD/target/anchor/release/anchor
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { # port [tenths of a second to wait, 100 by default]
  for _ in $(seq 1 "${2:-100}"); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "bench: nothing listens on port $1" >&2; exit 1
}

# The fast upstream's answers: a plain page, a backend login, and a page that
# stores something in the session (so that (e) stores every new session).
upstream_locations() {
  cat <<'NGINX'
    location / { return 200 'hello from the upstream\n'; }
    location /login { add_header X-Session-Login bench; return 200 'logged in\n'; }
    location /new/ { add_header X-Session-Set 'n=1'; return 200 'stored\n'; }
NGINX
}

# A one-worker nginx serving upstream_locations on a port, for the scripts
# that need nothing else of nginx.
upstream_nginx_conf() { # file port workdir
  cat > "$1" <<NGINX
worker_processes 1; pid $3/upstream.pid; error_log $3/upstream.err warn;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000;
  server { listen 127.0.0.1:$2;
$(upstream_locations)
  } }
NGINX
}

# The static file of the file targets: 4 KiB of HTML in DIR/4k.html, served
# by sessiongate's static: route at /files/ and by nginx from the same DIR.
make_files() { # dir
  mkdir -p "$1"
  { printf '<!DOCTYPE html>\n<html><head><title>4 KiB</title></head><body>\n'
    for i in $(seq 1 80); do printf '<p>line %02d of a static page of the legacy site.</p>\n' "$i"; done
    printf '</body></html>\n'
  } > "$1/4k.html"
  # Cut to size afterwards: `| head -c` could end the writer with SIGPIPE,
  # which pipefail turns into the script's end.
  truncate -s 4096 "$1/4k.html"
}

# Uses KEY (the signing key), UP (the upstream port) and, when set, FILES
# (a directory made by make_files, served at /files/).
sg_conf() { # file port store-section workers [more server keys]
  cat > "$1" <<TOML
[server]
listen = ["127.0.0.1:$2"]
workers = $4
${5:-}
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
[[route]]
path = "/unshielded/"
upstream = "http://127.0.0.1:$UP"
access = "login"
csrf = "off"
TOML
  if [ -n "${FILES:-}" ]; then
    printf '[[route]]\npath = "/files/"\nupstream = "static:%s"\naccess = "public"\n' "$FILES" >> "$1"
  fi
}

login_cookie() { # port
  curl -s -D - -o /dev/null "http://127.0.0.1:$1/login" | tr -d '\r' | sed -n 's/^[Ss]et-[Cc]ookie: \(sg_session=[^;]*\).*/\1/p'
}

# A config with a public route and a basic_auth route to the upstream, and
# a users file holding bench:bench-password (hashed as hash-password does).
# Uses KEY and UP, and BIN for the hash.
sg_basic_conf() { # file port users-file workers
  [ -s "$3" ] || echo "bench:$(printf 'bench-password' | "$BIN" hash-password)" > "$3"
  cat > "$1" <<TOML
[server]
listen = ["127.0.0.1:$2"]
workers = $4
[session]
secret_keys = ["$KEY"]
[log]
level = "warn"
[login]
users_file = "$3"
# Out of reach: every wrong password is verified (the worst case).
max_attempts = 1000000000
[[route]]
path = "/public/"
upstream = "http://127.0.0.1:$UP"
access = "public"
[[route]]
path = "/basic/"
upstream = "http://127.0.0.1:$UP"
access = "login"
basic_auth = true
TOML
}

# The Authorization header of the user sg_basic_conf writes.
BASIC_RIGHT="Authorization: Basic $(printf 'bench:bench-password' | base64)"
BASIC_WRONG="Authorization: Basic $(printf 'bench:not-the-password' | base64)"
# php-fpm for the FastCGI targets: one static pool per name given, each of
# FPM_CHILDREN children on its own port (FPM_PORT_<name>), serving
# $1/php/hello.php. Returns 1 when php-fpm is not installed.
FPM_CHILDREN=${FPM_CHILDREN:-4}
php_fpm_start() { # workdir pin(core or "") pool-name...
  local work=$1 pin=$2 bin pool conf
  bin=$(ls /usr/sbin/php-fpm* 2>/dev/null | sort | tail -n 1)
  [ -n "$bin" ] || return 1
  shift 2
  mkdir -p "$work/php"
  chmod 755 "$work" "$work/php"   # the children may run as another user
  echo '<?php echo "hello from php\n";' > "$work/php/hello.php"
  conf=$work/php-fpm.conf
  printf '[global]\nerror_log = %s/php-fpm.log\ndaemonize = no\n' "$work" > "$conf"
  local user=''
  [ "$(id -u)" = 0 ] && user=$'user = www-data\ngroup = www-data\n'
  for pool in "$@"; do
    printf -v "FPM_PORT_$pool" '%s' "$(free_port)"
    local port_var="FPM_PORT_$pool"
    printf '[%s]\n%slisten = 127.0.0.1:%s\npm = static\npm.max_children = %s\n' \
      "$pool" "$user" "${!port_var}" "$FPM_CHILDREN" >> "$conf"
  done
  local cmd=("$bin" --fpm-config "$conf" --nodaemonize)
  [ -n "$pin" ] && cmd=(taskset -c "$pin" "${cmd[@]}")
  "${cmd[@]}" > "$work/php-fpm.out" 2>&1 & PIDS+=($!)
  for pool in "$@"; do local port_var="FPM_PORT_$pool"; wait_port "${!port_var}"; done
}

# A sessiongate config of one public FastCGI route to php-fpm on a port,
# with as many connections as the pool has children (as nginx's keepalive).
sg_fastcgi_conf() { # file port fpm-port workdir workers
  cat > "$1" <<TOML
[server]
listen = ["127.0.0.1:$2"]
workers = $5
upstream_max_connections = ${SG_FPM_CONNS:-$FPM_CHILDREN}
[session]
secret_keys = ["$KEY"]
[log]
level = "info"
[[route]]
path = "/"
upstream = "fastcgi://127.0.0.1:$3"
root = "$4/php"
access = "public"
TOML
}
