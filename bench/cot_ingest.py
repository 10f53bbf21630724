#!/usr/bin/env python3
"""CoT ingest: deconflict against FreeTAKServer, pytak senders on loopback.

N plain-TCP connections each send M Cursor-on-Target position events
(made with pytak's ``gen_cot_xml``, each with its own time so that every
one is a new position, spread over
``--uids`` entities per connection): to deconflict as fast as it takes
them; to FreeTAKServer at ``--fts-rate`` events/s per connection, because
FTS reads a connection until it has been idle for 1 ms (or 4 s), parses
what it got as one document, and drops it all and disconnects the client
when that ends inside an event, which an unpaced stream always does. Each
server is started here, in a temporary directory, and stopped at the end;
the run is bounded by ``--seconds`` per server and stops by itself.

What is counted, and why it differs:

- deconflict (``deconflict serve --cot-plain-listen``, the loopback
  listener bound to one party): events *processed*, that is applied to
  the track watch (proximity, zones, alerts), read from ``/metrics``
  (``deconflict_track_reports_total{source="cot"}`` and ``…_refused_total``).
- FreeTAKServer (CoT port, plain TCP): events *handled* by its core (it
  logs "executed a-f-G-U-C" for each), and, apart, those *forwarded* to one
  more connected client (what FTS does with position events: it routes
  them to the other clients), counted by that client.

Prints events/s processed (first event sent to the last one counted, or
to the time bound), the server's CPU time (its whole process tree) per
1,000 events, and the ratio. Exit status 0 when deconflict processed every
event within the time bound, 1 when it did not, 2 when it could not run.
FreeTAKServer not finishing within the bound, or not starting, is a
result, printed, not a failure.

  python3 bench/cot_ingest.py --deconflict target/release/deconflict \\
      [--fts-python /path/to/venv/bin/python] [--connections 4] [--events 25000]
"""

import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import xml.etree.ElementTree as ET

try:
    import pytak
except ImportError:  # reported by main(), which needs it
    pytak = None

CLK_TCK = os.sysconf("SC_CLK_TCK")


def tree_cpu_s(pid):
    """CPU seconds of process `pid`, its reaped children and its live descendants."""
    stats = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # fields[0] is the state; ppid is fields[1]; utime, stime, cutime, cstime are 11..14.
        stats[int(entry)] = (int(fields[1]), sum(int(x) for x in fields[11:15]))
    total, frontier = 0, [pid]
    while frontier:
        p = frontier.pop()
        if p in stats:
            total += stats[p][1]
            frontier.extend(c for c, (ppid, _) in stats.items() if ppid == p)
    return total / CLK_TCK


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, deadline):
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return True
        except OSError:
            time.sleep(0.2)
    return False


def events(connection, count, uids):
    """`count` CoT events of connection `connection`, as bytes."""
    base = int(time.time())
    out = []
    for k in range(count):
        uid = f"bench-{connection}-{k % uids}"
        lat = 33.0 + (k % uids) * 0.01
        lon = 40.0 + connection * 0.5 + (k // uids) * 1e-5
        event = pytak.gen_cot_xml(lat=lat, lon=lon, ce=10, hae=0, le=10, uid=uid, stale=120,
                                  cot_type="a-f-G-U-C", callsign=uid)
        # Each report of an entity 1 ms after its previous one, so none is a
        # duplicate (and the last stays within the servers' clock tolerance).
        ms = k // uids
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(base + ms // 1000)) + ".%03dZ" % (ms % 1000)
        event.set("time", stamp)
        event.set("start", stamp)
        out.append(ET.tostring(event))
    return out


def hello(connection):
    """The first event of a connection, sent before the clock starts: FTS
    registers a client from its first event and expects it alone."""
    event = pytak.gen_cot_xml(lat=33.0, lon=40.0, uid=f"bench-{connection}", stale=600,
                              cot_type="a-f-G-U-C", callsign=f"bench-{connection}")
    return ET.tostring(event)


async def stream(writer, payload, rate):
    # One event per write, as pytak's sender does; `rate` events/s when given.
    started = time.monotonic()
    for k, event in enumerate(payload):
        if rate:
            delay = started + k / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
        writer.write(event)
        await writer.drain()


async def run_senders(port, payloads, count, seconds, rate=None):
    """Connects one client per payload and announces each; then, with the
    clock running, streams every payload and polls count() until all have
    arrived or the time is up. Returns (seconds, counted)."""
    writers = []
    for c in range(len(payloads)):
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(hello(c))
        await writer.drain()
        writers.append(writer)
    await asyncio.sleep(1)
    base = await count()
    total = sum(len(p) for p in payloads)
    started = time.monotonic()
    sending = asyncio.gather(*(stream(w, p, rate) for w, p in zip(writers, payloads)))
    counted = 0
    while time.monotonic() - started < seconds:
        counted = await count() - base
        if counted >= total:
            break
        if sending.done() and sending.exception() is not None:
            print(f"a sender failed: {sending.exception()!r}", file=sys.stderr)
            break
        await asyncio.sleep(0.05)
    elapsed = time.monotonic() - started
    sending.cancel()
    try:
        await sending
    except (asyncio.CancelledError, OSError):
        pass  # stopped at the bound, or the server closed the connection
    for w in writers:
        w.close()
    return elapsed, counted


def http(method, url, token=None, body=None):
    request = urllib.request.Request(url, method=method, data=None if body is None else json.dumps(body).encode())
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    if body is not None:
        request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=10) as answer:
        return answer.read().decode()


def start_deconflict(binary, data, extra):
    process = subprocess.Popen(
        [binary, "serve", "--data", data, "--listen", "127.0.0.1:0", *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    for line in process.stdout:
        found = re.search(r"listening on (http://\S+)", line)
        if found:
            return process, found.group(1)
    raise RuntimeError(f"{binary} serve exited ({process.wait()}) before listening")


def stop(process, sig=signal.SIGINT):
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def bench_deconflict(args, payloads):
    data = tempfile.mkdtemp(prefix="deconflict-cot-")
    try:
        # First start: create the party the plain listener speaks for.
        process, url = start_deconflict(args.deconflict, data, [])
        try:
            admin = open(os.path.join(data, "admin.token")).read().strip()
            party = json.loads(http("POST", f"{url}/v1/parties", admin, {"name": "Bench", "kind": "military"}))
        finally:
            stop(process)
        port = free_port()
        process, url = start_deconflict(
            args.deconflict,
            data,
            [
                "--cot-plain-listen", f"127.0.0.1:{port}",
                "--cot-plain-party", str(party["id"]),
                # The per-connection rate limit protects a real service; here it
                # would measure the limit, not the ingest.
                "--cot-events-per-s", "1000000000",
                "--max-entities-per-party", "1000000",
            ],
        )
        try:
            if not wait_port(port, time.monotonic() + 30):
                raise RuntimeError("the plain CoT listener did not open")

            def counters():
                text = http("GET", f"{url}/metrics")
                total = 0
                for name in ("deconflict_track_reports_total", "deconflict_track_reports_refused_total"):
                    found = re.search(name + r'\{source="cot"\} (\d+)', text)
                    total += int(found.group(1)) if found else 0
                refused = re.search(r'deconflict_track_reports_refused_total\{source="cot"\} (\d+)', text)
                return total, int(refused.group(1)) if refused else 0

            async def count_done():
                return (await asyncio.to_thread(counters))[0]

            cpu_before = tree_cpu_s(process.pid)
            elapsed, counted = asyncio.run(run_senders(port, payloads, count_done, args.seconds))
            cpu = tree_cpu_s(process.pid) - cpu_before
            refused = counters()[1]
        finally:
            stop(process)
        return {"elapsed_s": elapsed, "counted": counted, "cpu_s": cpu, "refused": refused,
                "what": "applied to the track watch (/metrics)"}
    finally:
        shutil.rmtree(data, ignore_errors=True)


def bench_fts(args, payloads):
    home = tempfile.mkdtemp(prefix="fts-")
    port = free_port()
    env = dict(os.environ)
    env.update({
        "FTS_FIRST_START": "false",  # no interactive configuration wizard
        "FTS_PERSISTENCE_PATH": home,
        "FTS_DB_PATH": os.path.join(home, "FTSDataBase.db"),
        "FTS_LOGFILE_PATH": os.path.join(home, "Logs"),
        "FTS_CERTS_PATH": os.path.join(home, "certs"),
        "FTS_DP_ADDRESS": "127.0.0.1",
        "FTS_USER_ADDRESS": "127.0.0.1",
        "FTS_API_ADDRESS": "127.0.0.1",
        "FTS_COT_PORT": str(port),
    })
    for sub in ("Logs", "certs"):
        os.makedirs(os.path.join(home, sub), exist_ok=True)
    log = open(os.path.join(home, "fts.log"), "w")
    process = subprocess.Popen(
        [args.fts_python, "-m", "FreeTAKServer.controllers.services.FTS", "-AutoStart", "True"],
        env=env, cwd=home, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True,  # FTS forks workers: stop the whole group we started
    )
    try:
        if not wait_port(port, time.monotonic() + args.fts_start_seconds):
            raise RuntimeError(f"FreeTAKServer did not open its CoT port within {args.fts_start_seconds} s (log: {home}/fts.log)")
        time.sleep(2)  # its routing workers start after the socket opens
        received = {"events": 0}

        async def listen():
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            # Announce ourselves, as a TAK client does, so that FTS routes to us.
            writer.write(hello("listener"))
            await writer.drain()
            while True:
                chunk = await reader.read(1 << 16)
                if not chunk:
                    return
                received["events"] += chunk.count(b"</event>")

        async def main():
            listener = asyncio.create_task(listen())
            await asyncio.sleep(1)

            async def count_done():
                return received["events"]

            result = await run_senders(port, payloads, count_done, args.seconds, args.fts_rate or None)
            listener.cancel()
            return result

        cpu_before = tree_cpu_s(process.pid)
        elapsed, forwarded = asyncio.run(main())
        cpu = tree_cpu_s(process.pid) - cpu_before
        # FTS logs each event its core has handled ("executed a-f-G-U-C",
        # the event's type); that is the count comparable to deconflict's.
        with open(os.path.join(home, "fts.log"), errors="replace") as f:
            handled = f.read().count("executed a-f-G-U-C")
        return {"elapsed_s": elapsed, "counted": handled, "cpu_s": cpu, "refused": 0,
                "what": f"handled by its core (its log), {forwarded:,} of them forwarded to another client within the bound"}
    finally:
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=10)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        log.close()
        if not args.keep:
            shutil.rmtree(home, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--deconflict", help="the deconflict binary (cargo build --release -p deconflict-cli)")
    parser.add_argument("--fts-python", help="a Python with FreeTAKServer installed")
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--events", type=int, default=25_000, help="events per connection")
    parser.add_argument("--uids", type=int, default=100, help="entities per connection")
    parser.add_argument("--seconds", type=float, default=120, help="time bound per server")
    parser.add_argument("--fts-start-seconds", type=float, default=120)
    parser.add_argument("--fts-rate", type=float, default=25,
                        help="events/s per connection sent to FTS (0: as fast as it takes them, which it cannot parse)")
    parser.add_argument("--keep", action="store_true", help="keep FTS's directory and log")
    args = parser.parse_args()
    if pytak is None:
        print("error: pytak is not installed (pip install pytak)", file=sys.stderr)
        return 2
    if not (args.connections > 0 and args.events > 0 and args.uids > 0 and args.seconds > 0):
        print("error: --connections, --events, --uids and --seconds must be positive", file=sys.stderr)
        return 2
    payloads = [events(c, args.events, args.uids) for c in range(args.connections)]
    total = args.connections * args.events
    results = {}
    for name, runner, enabled in (("deconflict", bench_deconflict, args.deconflict), ("FreeTAKServer", bench_fts, args.fts_python)):
        if not enabled:
            print(f"{name}: skipped (no --{'deconflict' if name == 'deconflict' else 'fts-python'})", file=sys.stderr)
            continue
        print(f"{name}: {args.connections} connections × {args.events} events", file=sys.stderr)
        try:
            results[name] = runner(args, payloads)
        except Exception as error:  # a server that cannot start is a result, reported
            print(f"{name}: could not run: {error}", file=sys.stderr)
            results[name] = None
    print(f"CoT ingest, plain TCP on loopback: {args.connections} connections × {args.events:,} events = {total:,}; load average {open('/proc/loadavg').read().split()[:3]}")
    print()
    print("| server | counted | what is counted | events/s | server CPU s per 1,000 events |")
    print("|---|---|---|---|---|")
    for name, r in results.items():
        if r is None:
            print(f"| {name} | — | could not run | | |")
            continue
        rate = r["counted"] / r["elapsed_s"]
        per_1000 = f"{1000 * r['cpu_s'] / r['counted']:.3f}" if r["counted"] else f"— ({r['cpu_s']:.1f} s in all)"
        print(f"| {name} | {r['counted']:,} of {total:,} in {r['elapsed_s']:.1f} s ({r['refused']} refused) | {r['what']} | {rate:,.0f} | {per_1000} |")
    ok = [r for r in results.values() if r]
    if len(ok) == 2:
        d, f = results["deconflict"], results["FreeTAKServer"]
        print()
        if f["counted"]:
            print(f"deconflict ahead by {(d['counted'] / d['elapsed_s']) / (f['counted'] / f['elapsed_s']):,.0f}× in events/s, "
                  f"{(f['cpu_s'] / f['counted']) / (d['cpu_s'] / d['counted']):,.0f}× in server CPU per event")
        else:
            print("FreeTAKServer handled no event within the bound: no ratio")
    if "deconflict" not in results:
        return 0
    if results["deconflict"] is None:
        return 2
    return 0 if results["deconflict"]["counted"] >= total else 1


if __name__ == "__main__":
    sys.exit(main())
