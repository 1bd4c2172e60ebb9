#!/usr/bin/env python3
"""Signs in through a gateway backed by the development provider; prints the session cookie.
Usage: login.py <gateway base URL> <account>"""
import sys, urllib.parse, urllib.request, http.client

class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *a, **k):
        return None

opener = urllib.request.build_opener(NoRedirect)

def fetch(url, data=None, cookie=None):
    req = urllib.request.Request(url, data=data)
    if cookie:
        req.add_header("Cookie", cookie)
    try:
        r = opener.open(req)
    except urllib.error.HTTPError as e:
        r = e
    return r.status, r.headers

base, account = sys.argv[1], sys.argv[2]
status, h = fetch(base + "/.xumm/start?rd=/")
pending = "; ".join(c.split(";")[0] for c in h.get_all("Set-Cookie"))
auth = urllib.parse.urlparse(h["Location"])
form = dict(urllib.parse.parse_qsl(auth.query))
form.update(account=account, network="MAINNET", action="approve")
status, h = fetch(f"{auth.scheme}://{auth.netloc}/auth/decide", urllib.parse.urlencode(form).encode())
cb = urllib.parse.urlparse(h["Location"])
status, h = fetch(f"{base}{cb.path}?{cb.query}", cookie=pending)
session = [c.split(";")[0] for c in h.get_all("Set-Cookie") if c.startswith("_xumm_gate=")]
if status != 302 or not session:
    sys.exit(f"sign-in failed: {status}")
print(session[0])
