#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-3.0-or-later
"""The front door under attack: the proxy's RSS and CPU while each attack of issue 9 runs.

A benchmark (it prints figures; CTest never runs it). For each attack it starts a fresh
llm-proxy (--in-memory, loopback, against fake-openai), measures it idle for a few seconds, runs
the attack for --seconds (default 30) and prints what the attacker got back and what it cost the
proxy: resident memory idle -> peak -> end, and CPU seconds. Then the pipelining cost per
request at 1,000 and 10,000 requests on one connection.

    tests/bench/attacks.py --build build-rel [--seconds 30] [--only NAME,...]

Everything stays on 127.0.0.1; every loop is bounded in time.
"""
import argparse
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time

PAGE = os.sysconf("SC_PAGE_SIZE")
TICKS = os.sysconf("SC_CLK_TCK")


def rss_mib(pid):
    with open(f"/proc/{pid}/statm") as f:
        return int(f.read().split()[1]) * PAGE / 2**20


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


class Proxy:
    def __init__(self, build, upstream, env_key=True, extra=()):
        self.home = tempfile.TemporaryDirectory(prefix="attacks-")
        env = dict(os.environ, HOME=self.home.name, XDG_CONFIG_HOME=self.home.name + "/config",
                   XDG_DATA_HOME=self.home.name + "/data")
        env.pop("OPENAI_API_KEY", None)
        if env_key:
            env["OPENAI_API_KEY"] = "sk-bench-configured"
        self.proc = subprocess.Popen(
            [f"{build}/app/llm-proxy", "--no-gui", "--in-memory", "--listen", "127.0.0.1:0",
             "--upstream", upstream, "--batch-window", "1s", "--poll-interval", "1s", *extra],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        line = self.proc.stdout.readline()
        m = re.search(r"127\.0\.0\.1:(\d+)/v1", line)
        if not m:
            raise SystemExit(f"llm-proxy did not start: {line!r}")
        self.port = int(m.group(1))

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.home.cleanup()


def connect(port, timeout=1):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def read_statuses(sock, count, deadline):
    """Reads `count` answers (status line + headers + Content-Length body); their statuses."""
    buf = b""
    statuses = []
    while len(statuses) < count and time.monotonic() < deadline:
        while True:
            head_end = buf.find(b"\r\n\r\n")
            if head_end < 0:
                break
            head = buf[:head_end].decode("latin-1")
            m = re.search(r"(?im)^content-length:\s*(\d+)", head)
            length = int(m.group(1)) if m else 0
            if len(buf) < head_end + 4 + length:
                break
            statuses.append(int(head.split(" ", 2)[1]))
            buf = buf[head_end + 4 + length:]
        if len(statuses) >= count:
            break
        try:
            chunk = sock.recv(1 << 16)
        except (socket.timeout, OSError):
            break
        if not chunk:
            break
        buf += chunk
    return statuses


def request_loop(port, make_request, stop_at, tally):
    """One keep-alive connection sending make_request() until stop_at; counts statuses."""
    while time.monotonic() < stop_at:
        try:
            s = connect(port)
        except OSError:
            tally["connect_failed"] = tally.get("connect_failed", 0) + 1
            time.sleep(0.01)
            continue
        with s:
            while time.monotonic() < stop_at:
                try:
                    s.sendall(make_request())
                except OSError:
                    break
                got = read_statuses(s, 1, time.monotonic() + 1)
                if not got:  # accepted and waiting for its batch (or cut off): hang up
                    tally["held"] = tally.get("held", 0) + 1
                    break
                tally[got[0]] = tally.get(got[0], 0) + 1


def flood(make_request, clients=4):
    def attack(port, stop_at):
        tally = {}
        threads = [threading.Thread(target=request_loop, args=(port, make_request, stop_at, tally))
                   for _ in range(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return tally
    return attack


CHAT = b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}'


def post(path, body, headers=b""):
    return (b"POST " + path + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            + headers + b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)


def chunk_overflow(port, stop_at):
    """One chunked POST whose second chunk claims 2^63-1 bytes, then bytes as fast as taken."""
    tally = {"sent_mib": 0}
    with connect(port) as s:
        s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                  b"Transfer-Encoding: chunked\r\nContent-Type: application/json\r\n\r\n"
                  b"1\r\n{\r\n7fffffffffffffff\r\n")
        block = b"x" * (1 << 16)
        s.settimeout(1)
        while time.monotonic() < stop_at:
            try:
                s.sendall(block)
                tally["sent_mib"] += 1 / 16
            except (socket.timeout, OSError):
                break
        got = read_statuses(s, 1, time.monotonic() + 2)
        tally["answer"] = got[0] if got else "none (closed)"
    tally["sent_mib"] = round(tally["sent_mib"], 1)
    return tally


def slow_headers(port, stop_at, clients=500):
    """Slowloris: clients trickle a header block one byte a second."""
    socks = []
    for _ in range(clients):
        try:
            socks.append(connect(port))
        except OSError:
            break
    head = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 4096
    i = 0
    while time.monotonic() < stop_at and socks:
        for s in list(socks):
            try:
                s.send(head[i % len(head):i % len(head) + 1])
            except OSError:
                socks.remove(s)
        i += 1
        time.sleep(1)
    tally = {"opened": clients, "still_open": len(socks)}
    for s in socks:
        s.close()
    return tally


def slow_body(port, stop_at, clients=100):
    """A body at 10 bytes/s: the proxy should drop it after its first 20 s."""
    socks = []
    for _ in range(clients):
        s = connect(port)
        s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                  b"Content-Type: application/json\r\nContent-Length: 1000000\r\n\r\n")
        socks.append(s)
    while time.monotonic() < stop_at and socks:
        for s in list(socks):
            try:
                s.send(b"x" * 10)
            except OSError:
                socks.remove(s)
        time.sleep(1)
    tally = {"opened": clients, "still_open": len(socks)}
    for s in socks:
        s.close()
    return tally


def many_connections(port, stop_at):
    socks = []
    refused = 0
    while time.monotonic() < stop_at and len(socks) < 20000:
        try:
            socks.append(connect(port, timeout=1))
        except OSError:
            refused += 1
            if refused > 1000:
                break
    time.sleep(max(0.0, min(5.0, stop_at - time.monotonic())))
    statuses = {}
    for s in socks[-100:]:
        try:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            got = read_statuses(s, 1, time.monotonic() + 2)
            key = got[0] if got else "closed"
        except OSError:
            key = "closed"
        statuses[key] = statuses.get(key, 0) + 1
    tally = {"opened": len(socks), "connect_failed": refused, "last_100": statuses}
    for s in socks:
        s.close()
    return tally


def pipelined(port, count):
    with connect(port, timeout=60) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" * count)
        return read_statuses(s, count, time.monotonic() + 120)


ATTACKS = {
    # 1. a web page's "simple" cross-site POST
    "cross-site": (dict(), flood(lambda: post(
        b"/v1/chat/completions", CHAT, b"Origin: http://evil.example\r\n"
        b"Sec-Fetch-Site: cross-site\r\n"))),
    # 2. DNS rebinding: a name of the attacker's in Host
    "rebinding": (dict(), flood(lambda: b"GET /stats HTTP/1.1\r\nHost: evil.example:3030\r\n\r\n")),
    # 3. paths leaving /v1
    "dot-segments": (dict(), flood(lambda: b"GET /v1/%2e%2e/x HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")),
    # 5. chunk size overflow
    "chunk-overflow": (dict(), chunk_overflow),
    # 7. slow clients
    "slow-headers": (dict(), slow_headers),
    "slow-body": (dict(), slow_body),
    # connection limits
    "many-connections": (dict(), many_connections),
    # 8. random bearer tokens (no configured key: each is a client's own key)
    "random-keys": (dict(env_key=False), flood(lambda: post(
        b"/v1/chat/completions", CHAT,
        b"Authorization: Bearer sk-" + os.urandom(12).hex().encode() + b"\r\n"))),
    # 9. one Idempotency-Key, many bodies
    "idempotency-reuse": (dict(), flood(lambda: post(
        b"/v1/chat/completions", CHAT.replace(b"hi", os.urandom(6).hex().encode()),
        b"Idempotency-Key: same\r\n"))),
    # 10. duplicate members
    "duplicate-model": (dict(), flood(lambda: post(
        b"/v1/chat/completions", CHAT[:-1] + b',"model":"gpt-4o"}'))),
}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--build", required=True, help="a build tree with app/llm-proxy and "
                        "tests/support/fake-openai")
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--idle-seconds", type=float, default=3)
    parser.add_argument("--only", default="", help="comma-separated attack names")
    args = parser.parse_args()

    fake = subprocess.Popen([f"{args.build}/tests/support/fake-openai", "--port", "0",
                             "--processing-delay-ms", "3600000"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    upstream = fake.stdout.readline().split()[-1]  # the fake names its /v1 base URL
    print(f"# attacks.py: {args.seconds:.0f} s per attack, fake provider at {upstream}")
    print(f"{'attack':<18} {'RSS idle -> peak -> end (MiB)':<30} {'CPU s (idle/s)':<16} "
          "what the attacker got")
    try:
        wanted = [n for n in args.only.split(",") if n] or list(ATTACKS)
        for name in wanted:
            options, attack = ATTACKS[name]
            proxy = Proxy(args.build, upstream, **options)
            try:
                pid = proxy.proc.pid
                cpu0 = cpu_seconds(pid)
                time.sleep(args.idle_seconds)
                idle_cpu = (cpu_seconds(pid) - cpu0) / args.idle_seconds
                idle_rss = rss_mib(pid)
                peak = [idle_rss]
                done = threading.Event()

                def sample():
                    while not done.wait(0.2):
                        try:
                            peak[0] = max(peak[0], rss_mib(pid))
                        except OSError:
                            return

                sampler = threading.Thread(target=sample)
                sampler.start()
                cpu1 = cpu_seconds(pid)
                result = attack(proxy.port, time.monotonic() + args.seconds)
                done.set()
                sampler.join()
                cpu = cpu_seconds(pid) - cpu1
                alive = proxy.proc.poll() is None
                end_rss = rss_mib(pid) if alive else float("nan")
                print(f"{name:<18} {idle_rss:6.1f} -> {peak[0]:7.1f} -> {end_rss:7.1f}       "
                      f"{cpu:6.2f} ({idle_cpu:.3f})   {result}"
                      + ("" if alive else "  PROXY DIED"), flush=True)
            finally:
                proxy.stop()

        proxy = Proxy(args.build, upstream)
        try:
            pid = proxy.proc.pid
            for count in (1000, 10000):
                cpu0 = cpu_seconds(pid)
                start = time.monotonic()
                statuses = pipelined(proxy.port, count)
                wall = time.monotonic() - start
                cpu = cpu_seconds(pid) - cpu0
                ok = sum(1 for s in statuses if s == 200)
                print(f"pipelining {count:>6} on one connection: {ok} answered 200 in "
                      f"{wall:.2f} s, proxy CPU {cpu:.2f} s = {cpu / count * 1e6:.0f} us "
                      "per request", flush=True)
        finally:
            proxy.stop()
    finally:
        fake.terminate()
        fake.wait()


if __name__ == "__main__":
    sys.exit(main())
