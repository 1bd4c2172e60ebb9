#!/usr/bin/env python3
"""Sends N GET requests to a URL over a few keep-alive connections at once (each must answer 200).
Usage: requests.py <url> <count> [cookie] [connections=4]"""
import sys, threading, http.client, urllib.parse

url, count = urllib.parse.urlparse(sys.argv[1]), int(sys.argv[2])
cookie = sys.argv[3] if len(sys.argv) > 3 else ""
conns = int(sys.argv[4]) if len(sys.argv) > 4 else 4
headers = {"Cookie": cookie} if cookie else {}
failed = []

def send(n):
    c = http.client.HTTPConnection(url.hostname, url.port, timeout=120)
    for _ in range(n):
        c.request("GET", url.path or "/", headers=headers)
        r = c.getresponse()
        r.read()
        if r.status != 200:
            failed.append(r.status)
            return

threads = [threading.Thread(target=send, args=(count // conns + (i < count % conns),)) for i in range(conns)]
for t in threads:
    t.start()
for t in threads:
    t.join()
if failed:
    sys.exit(f"a request failed with {failed[0]}")
