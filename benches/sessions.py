#!/usr/bin/env python3
"""Signs in COUNT distinct accounts through a gateway backed by the development provider (the
real code flow: /start, the provider's decision, the callback) and writes one session cookie a
line to OUT. For benches/sessions.sh.
Usage: sessions.py <gateway base URL> <count> <out file> [processes=4]"""
import hashlib, http.client, multiprocessing, os, sys, urllib.parse

ALPHABET = b"rpshnaf39wBUDNEGHJKLM4PQRST7VWXYZ2bcdeCg65jkm8oFqi1tuvAxyz"


def r_address(account_id: bytes) -> str:
    """The classic address of a 20-byte account id (base58check, XRPL alphabet)."""
    body = b"\x00" + account_id
    data = body + hashlib.sha256(hashlib.sha256(body).digest()).digest()[:4]
    n, out = int.from_bytes(data, "big"), bytearray()
    while n:
        n, r = divmod(n, 58)
        out.append(ALPHABET[r])
    out.extend(ALPHABET[0:1] * (len(data) - len(data.lstrip(b"\x00"))))
    return bytes(reversed(out)).decode()


class Conn:
    """One keep-alive connection per host, reopened when the server closes it."""

    def __init__(self):
        self.conns = {}

    def request(self, netloc, method, path, body=None, headers=None):
        for attempt in (0, 1):
            c = self.conns.get(netloc) or http.client.HTTPConnection(netloc, timeout=30)
            self.conns[netloc] = c
            try:
                c.request(method, path, body=body, headers=headers or {})
                r = c.getresponse()
                r.read()
                return r
            except (http.client.HTTPException, ConnectionError):
                c.close()
                del self.conns[netloc]
                if attempt:
                    raise


def sign_in(args):
    base, start, count = args
    gw = urllib.parse.urlparse(base).netloc
    conn, cookies = Conn(), []
    for i in range(start, start + count):
        account = r_address(hashlib.sha256(f"bench-{i}".encode()).digest()[:20])
        r = conn.request(gw, "GET", "/.xumm/start?rd=/")
        pending = "; ".join(c.split(";")[0] for c in r.headers.get_all("Set-Cookie"))
        auth = urllib.parse.urlparse(r.headers["Location"])
        form = dict(urllib.parse.parse_qsl(auth.query))
        form.update(account=account, network="MAINNET", action="approve")
        r = conn.request(auth.netloc, "POST", "/auth/decide", urllib.parse.urlencode(form), {"Content-Type": "application/x-www-form-urlencoded"})
        cb = urllib.parse.urlparse(r.headers["Location"])
        r = conn.request(gw, "GET", f"{cb.path}?{cb.query}", headers={"Cookie": pending})
        session = [c.split(";")[0] for c in r.headers.get_all("Set-Cookie") or [] if c.startswith("_xumm_gate=")]
        if r.status != 302 or not session:
            sys.exit(f"sign-in {i} failed: {r.status}")
        cookies.append(session[0])
    return cookies


if __name__ == "__main__":
    base, count, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    procs = int(sys.argv[4]) if len(sys.argv) > 4 else 4
    # Distinct accounts per gateway: offset by the base URL's port.
    offset = int(urllib.parse.urlparse(base).port or 0) * 1_000_000
    chunk = (count + procs - 1) // procs
    jobs = [(base, offset + p * chunk, min(chunk, count - p * chunk)) for p in range(procs) if count > p * chunk]
    with multiprocessing.Pool(len(jobs)) as pool, open(out, "w") as f:
        for cookies in pool.imap_unordered(sign_in, jobs):
            f.write("\n".join(cookies) + "\n")
    print(f"{count} sessions", file=sys.stderr)
