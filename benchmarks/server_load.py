"""Load test of ``spinlens serve`` on loopback; writes docs/benchmarks.md's "## Web server load".

    .venv/bin/python benchmarks/server_load.py                  # 20 clients, 30 s per scenario
    .venv/bin/python benchmarks/server_load.py --clients 4 --duration 2 --no-write   # a smoke run

The server runs in its own process, as ``spinlens serve`` does (the shipped models, loaded
once; analyses in its worker threads; a fresh SQLite store in a temporary SPINLENS_HOME).
``--clients`` concurrent clients then send requests back to back for ``--duration`` seconds
in two scenarios:

- analyse: POST /api/v1/analyses with a pasted article (each one a little different, so each
  is analysed and stored anew);
- read: GET of a stored analysis as JSON, of its report page, and of the history (1:1:1).

Every client runs from 127.0.0.1, so the per-client rate limits are raised for the run: they
are meant for many clients, not for one machine measuring throughput. Any answer but the
expected status, or a connection error, counts as an error.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import platform
import socket
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from docs_section import write_section

ROOT = Path(__file__).resolve().parents[1]
HEADING = "## Web server load"
DEFAULT_ARTICLE = ROOT / "examples" / "site-builder-blog.txt"


def serve(port: int, home: str, workers: int) -> None:
    """The server process: the app as ``spinlens serve`` builds it, with raised rate limits."""
    os.environ["SPINLENS_HOME"] = home
    import uvicorn

    from spinlens.pipeline import default_pipeline
    from spinlens.server import Settings, create_app
    from spinlens.store import Store

    settings = Settings(workers=workers, requests_per_minute=10**9, analyses_per_minute=10**9)
    app = create_app(settings, pipeline=default_pipeline(), store=Store())
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


@dataclass
class Result:
    name: str
    clients: int
    duration: float
    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def requests(self) -> int:
        return len(self.latencies) + len(self.errors)

    def percentile(self, p: float) -> float:
        ordered = sorted(self.latencies)
        if not ordered:
            return float("nan")
        return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))] * 1000


async def run_scenario(
    name: str, base: str, clients: int, duration: float, make_request, expected: int
) -> Result:
    result = Result(name, clients, duration)
    deadline = time.perf_counter() + duration

    async def client(number: int) -> None:
        async with httpx.AsyncClient(base_url=base, timeout=120) as http:
            n = 0
            while time.perf_counter() < deadline:
                n += 1
                started = time.perf_counter()
                try:
                    response = await make_request(http, number, n)
                except httpx.HTTPError as error:
                    result.errors.append(f"{type(error).__name__}: {error}")
                    continue
                if response.status_code == expected:
                    result.latencies.append(time.perf_counter() - started)
                else:
                    result.errors.append(f"{response.status_code}: {response.text[:200]}")

    started = time.perf_counter()
    await asyncio.gather(*(client(i) for i in range(clients)))
    result.duration = time.perf_counter() - started
    return result


async def benchmark(base: str, article: str, clients: int, duration: float) -> list[Result]:
    async def analyse(http: httpx.AsyncClient, number: int, n: int) -> httpx.Response:
        text = f"{article}\n\nLoad test note {number}-{n}."
        return await http.post("/api/v1/analyses", json={"text": text})

    async with httpx.AsyncClient(base_url=base, timeout=120) as http:
        seed = await http.post("/api/v1/analyses", json={"text": article})
        seed.raise_for_status()
        analysis_id = seed.json()["id"]
    paths = (f"/api/v1/analyses/{analysis_id}", f"/analyses/{analysis_id}", "/api/v1/analyses")

    async def read(http: httpx.AsyncClient, number: int, n: int) -> httpx.Response:
        return await http.get(paths[(number + n) % len(paths)])

    return [
        await run_scenario("analyse", base, clients, duration, analyse, 201),
        await run_scenario("read", base, clients, duration, read, 200),
    ]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(base: str, server: multiprocessing.process.BaseProcess, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not server.is_alive():
            raise SystemExit("the server exited before answering (its error is above)")
        try:
            if httpx.get(base + "/healthz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit("the server did not become healthy")


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def section(results: list[Result], workers: int, article: Path, chars: int, load: float) -> str:
    rows = "\n".join(
        f"| {r.name} | {r.clients} | {r.duration:.0f} s | {r.requests} | {len(r.errors)} | "
        f"{len(r.latencies) / r.duration:.1f} | {r.percentile(50):.0f} | {r.percentile(95):.0f} "
        f"| {r.percentile(99):.0f} |"
        for r in results
    )
    return f"""{HEADING}

`benchmarks/server_load.py`: `spinlens serve` on loopback with the shipped models, {workers}
analysis worker threads and its SQLite store; concurrent clients send requests back to back.
**analyse** posts a pasted article (`{article.relative_to(ROOT)}`, {chars:,} characters, each
request a little different so each is analysed and stored); **read** fetches a stored analysis
as JSON, its report page and the history in turn. Machine: {os.cpu_count()} CPU cores
({cpu_name()}), shared by the server and the clients (load average {load:.1f} when the run
started); Python {platform.python_version()}.

| scenario | clients | duration | requests | errors | requests/s | p50 ms | p95 ms | p99 ms |
| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |
{rows}

Analyses are CPU-bound: throughput is bounded by the cores, and with more clients than
workers the extra requests wait in the queue, which is what the latency percentiles show. The
event loop stays free meanwhile (reads are answered while analyses run).
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--duration", type=float, default=30.0, help="seconds per scenario")
    parser.add_argument("--workers", type=int, default=2, help="the server's analysis threads")
    parser.add_argument("--article", type=Path, default=DEFAULT_ARTICLE)
    parser.add_argument("--doc", type=Path, default=ROOT / "docs" / "benchmarks.md")
    parser.add_argument("--no-write", action="store_true", help="print, do not update --doc")
    args = parser.parse_args()

    article = args.article.read_text(encoding="utf-8")
    load = os.getloadavg()[0]
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="spinlens-load-") as home:
        server = multiprocessing.get_context("spawn").Process(
            target=serve, args=(port, home, args.workers), daemon=True
        )
        server.start()
        try:
            wait_for(base, server)
            results = asyncio.run(benchmark(base, article, args.clients, args.duration))
        finally:
            server.terminate()
            server.join(10)
    text = section(results, args.workers, args.article.resolve(), len(article), load)
    print(text)
    for r in results:
        for error in r.errors[:5]:
            print(f"{r.name}: error: {error}", file=sys.stderr)
    if not args.no_write:
        write_section(text, args.doc)
        print(f"updated {args.doc}", file=sys.stderr)
    return 1 if any(r.errors for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
