#!/usr/bin/env python3
"""Checks sessiongate's signed assertion from a CGI environment (standard
library only): exits 0 when the request carries a valid, fresh
X-Session-Signature over its method, REQUEST_URI and session headers, 1
otherwise (the reason on stderr).

  SESSIONGATE_SIGN_KEYS    the keys, separated by spaces (two during a rotation)
  SESSIONGATE_SIGN_WINDOW  how old (or early) t may be, in seconds; 60 unless set

In a Python CGI script:
  sys.path.insert(0, "/usr/local/lib/sessiongate"); from verify import verify
  if verify(os.environ) is not None: print("Status: 403\\r\\n\\r\\n"); sys.exit()

The canonical string is documented in docs/signed-assertion.md.
"""
import base64, hashlib, hmac, os, re, sys, time

P = "HTTP_X_SESSION_"  # another headers.prefix: change it here


def verify(env):
    """None when the signature is valid and fresh, else why not."""
    v = lambda name: os.fsencode(env.get(name, ""))  # the bytes as sent
    m = re.fullmatch(rb"v1;kid=([0-9a-f]{8});t=([1-9][0-9]{0,11});sig=([A-Za-z0-9_-]{43})",
                     v(P + "SIGNATURE"))
    if not m:
        return "no v1 signature"
    kid, t, sig = m.groups()
    if abs(time.time() - int(t)) > int(env.get("SESSIONGATE_SIGN_WINDOW", "60")):
        return "stale: t=%s" % t.decode()
    keys = [k for k in v("SESSIONGATE_SIGN_KEYS").split()
            if hashlib.sha256(b"sessiongate-kid" + k).hexdigest()[:8].encode() == kid]
    if not keys:
        return "unknown key id %s" % kid.decode()
    canonical = b"\n".join([b"v1", v("REQUEST_METHOD"), v("REQUEST_URI"), t,
                            v(P + "USER"), v(P + "GROUPS"),
                            hashlib.sha256(v(P + "DATA")).hexdigest().encode()])
    want = base64.urlsafe_b64encode(hmac.new(keys[0], canonical, hashlib.sha256).digest())
    return None if hmac.compare_digest(want.rstrip(b"="), sig) else "bad signature"


if __name__ == "__main__":
    why = verify(os.environ)
    if why is not None:
        print("verify.py:", why, file=sys.stderr)
    sys.exit(0 if why is None else 1)
