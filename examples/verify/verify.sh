#!/bin/sh
# Checks sessiongate's signed assertion from a CGI environment: exits 0 when
# the request carries a valid, fresh X-Session-Signature over its method,
# REQUEST_URI and session headers, 1 otherwise (the reason on stderr).
#   SESSIONGATE_SIGN_KEYS    the keys, separated by spaces (two during a rotation)
#   SESSIONGATE_SIGN_WINDOW  how old (or early) t may be, in seconds; 60 unless set
# In a shell CGI script:
#   /usr/local/lib/sessiongate/verify.sh || { printf 'Status: 403\r\n\r\n'; exit 0; }
# Limit: openssl takes the key on its command line, where other users of the
# machine may glimpse it in the process list; on a shared host use verify.pl
# or verify.py. Another headers.prefix: rename HTTP_X_SESSION_ below.
# The canonical string is documented in docs/signed-assertion.md.
set -uf   # -f: no globbing when the key list is split
fail() { echo "verify.sh: $1" >&2; exit 1; }
h=${HTTP_X_SESSION_SIGNATURE:-}
case $h in v1\;kid=*\;t=*\;sig=*) ;; *) fail "no v1 signature" ;; esac
kid=${h#v1;kid=}; kid=${kid%%;*}; t=${h#*;t=}; t=${t%%;*}; sig=${h#*;sig=}
case $kid in *[!0-9a-f]*) fail "malformed signature" ;; esac
case $t in *[!0-9]* | 0*) fail "malformed signature" ;; esac   # 0...: octal to sh
case $sig in *[!A-Za-z0-9_-]*) fail "malformed signature" ;; esac
[ ${#kid} -eq 8 ] && [ ${#t} -ge 1 ] && [ ${#t} -le 12 ] && [ ${#sig} -eq 43 ] || fail "malformed signature"
now=$(date +%s) w=${SESSIONGATE_SIGN_WINDOW:-60}
[ $((now - t)) -le "$w" ] && [ $((t - now)) -le "$w" ] || fail "stale: t=$t, now=$now"
sha256() { openssl dgst -sha256 -r | cut -c1-64; }
key=
for k in ${SESSIONGATE_SIGN_KEYS:-}; do   # the key whose id is kid
  [ "$(printf 'sessiongate-kid%s' "$k" | sha256 | cut -c1-8)" = "$kid" ] && { key=$k; break; }
done
[ -n "$key" ] || fail "unknown key id $kid"
mac() { openssl dgst -sha256 -mac HMAC -macopt "key:$key" -binary | openssl base64 -A | tr '+/' '-_' | tr -d '='; }
data=$(printf %s "${HTTP_X_SESSION_DATA:-}" | sha256)
want=$(printf 'v1\n%s\n%s\n%s\n%s\n%s\n%s' "${REQUEST_METHOD:-}" "${REQUEST_URI:-}" "$t" \
  "${HTTP_X_SESSION_USER:-}" "${HTTP_X_SESSION_GROUPS:-}" "$data" | mac)
# Compared through one more HMAC: the time the shell's comparison takes then
# tells nothing about how much of a forged signature was right.
[ "$(printf %s "$want" | mac)" = "$(printf %s "$sig" | mac)" ] || fail "bad signature"
