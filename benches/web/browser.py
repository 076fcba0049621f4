#!/usr/bin/env python3
"""Keeps a headless chromium open on the hopdns dashboard while benches/web/cost.sh measures.

    browser.py URL READY_FILE

Starts chromedriver (port chosen by itself) and one chromium session on URL, waits until the
page's event stream is live, writes READY_FILE, then stays until SIGTERM. On exit it prints
one line, `browser_ticks=N browser_live=yes|no` (server-sent events the page received, and
whether the stream was still live), closes the session and kills chromedriver's process group
(chromedriver and the chromium it started, nothing else). Only the standard library; the browser reaches only
loopback (a dead proxy for everything else, no name resolution).
"""

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request

WAIT = 60


def main():
    url, ready = sys.argv[1], sys.argv[2]
    driver = subprocess.Popen(
        ["chromedriver", "--port=0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    stop = {"now": False}
    signal.signal(signal.SIGTERM, lambda *_: stop.update(now=True))
    try:
        port = None
        while port is None:
            line = driver.stdout.readline()
            if not line:
                sys.exit("browser.py: chromedriver ended before naming its port")
            m = re.search(r"started successfully on port (\d+)", line)
            if m:
                port = int(m.group(1))

        def call(method, path, body=None):
            req = urllib.request.Request(
                f"http://127.0.0.1:{port}{path}",
                method=method,
                data=None if body is None else json.dumps(body).encode(),
                headers={"Content-Type": "application/json"},
            )
            with urllib.request.urlopen(req, timeout=WAIT) as r:
                return json.load(r)["value"]

        args = [
            "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            "--disable-background-networking", "--disable-component-update", "--no-first-run",
            "--window-size=1280,900", "--proxy-server=http://127.0.0.1:9",
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.*",
        ]
        session = call("POST", "/session", {"capabilities": {"alwaysMatch": {
            "goog:chromeOptions": {"args": args}}}})["sessionId"]

        def js(code):
            return call("POST", f"/session/{session}/execute/sync", {"script": code, "args": []})

        conn = "const c = document.getElementById('conn'); "
        call("POST", f"/session/{session}/url", {"url": url})
        start = time.time()
        while js(conn + "return c !== null && c.textContent === 'live'") is not True:
            if time.time() - start > WAIT:
                sys.exit(f"browser.py: the page's event stream did not go live within {WAIT} s")
            time.sleep(0.2)
        with open(ready, "w") as f:
            f.write("ready\n")
        while not stop["now"]:
            time.sleep(0.2)
        ticks = js(conn + "return Number(c.dataset.ticks || 0)")
        live = js(conn + "return c.textContent === 'live'")
        print(f"browser_ticks={ticks} browser_live={'yes' if live else 'no'}", flush=True)
        call("DELETE", f"/session/{session}")
    finally:
        try:
            os.killpg(driver.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        driver.wait()


if __name__ == "__main__":
    main()
