# Shared by bench/run.sh, bench/instructions.sh and bench/profile.sh: ports,
# the fast upstream's locations, the static file, and sessiongate's config
# for the benchmark routes.

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
  } | head -c 4096 > "$1/4k.html"
}

# Uses KEY (the signing key), UP (the upstream port) and, when set, FILES
# (a directory made by make_files, served at /files/).
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
