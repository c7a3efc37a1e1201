"""Time private feeds served by `newsletter serve` over real HTTP: 1,000 distinct feeds requested once
each, then again with If-None-Match (a feed reader's poll), from a real HTTP client (requests).

The whole corpus is ingested into a temporary SQLite store, with the default feed window (30 digest
days), and N subscribers are added with filters drawn (seeded) from categories, keywords and
exclusions, some with none; none of this is timed. `newsletter serve` runs as its own process. One
warm-up feed first pays for rendering the window's papers, which happens once per store change and
is shared by every feed; its time is printed apart. Targets: first request p99 under 50 ms, 304 p99
under 5 ms.

    .venv/bin/python bench/private_feeds.py [SUBSCRIBERS] [CORPUS_DIR]
"""

from __future__ import annotations

import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests
from machine import describe

from newsletter.config import load_settings
from newsletter.ingest import ingest_files
from newsletter.links import private_feed_url
from newsletter.models import Subscriber
from newsletter.parsing import expand_paths
from newsletter.store import Store

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CORPUS = ROOT.parent / "shared" / "corpus"
SECRET_ENV = "NEWSLETTER_BENCH_SECRET"
KEYWORDS = ["diffusion", "agent*", "reasoning", "benchmark", "video", "robot*", "language model", "reward",
            "retrieval", "quantization", "3d", "speech", "graph", "transformer*", "safety"]
TARGETS = {"first request": 0.050, "If-None-Match (304)": 0.005}


def config(folder: Path, corpus: Path) -> Path:
    path = folder / "config.toml"
    path.write_text(f"""
[site]
base_url = "https://papers.example.org"
[digests]
paths = ["{corpus}"]
[store]
url = "sqlite:///store.db"
[email]
from = "Papers <papers@example.org>"
[web]
secret_env = "{SECRET_ENV}"
threads = 4
""", encoding="utf-8")
    return path


def readers(count: int, categories: list[str]) -> list[Subscriber]:
    pick = random.Random(16)
    found = []
    for n in range(count):
        shape = n % 4  # a quarter each: everything, categories, keywords, both with an exclusion
        found.append(Subscriber(
            email=f"reader{n}@example.org",
            categories=pick.sample(categories, pick.randint(1, 2)) if shape in (1, 3) else [],
            keywords=pick.sample(KEYWORDS, pick.randint(1, 3)) if shape in (2, 3) else [],
            excluded_keywords=[pick.choice(KEYWORDS)] if shape == 3 else []))
    return found


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def serve(config_path: Path, port: int) -> subprocess.Popen[bytes]:
    env = dict(os.environ, **{SECRET_ENV: "bench-secret-" + "b" * 40})
    process = subprocess.Popen([sys.executable, "-m", "newsletter", "--config", str(config_path), "serve",
                                "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            requests.get(f"http://127.0.0.1:{port}/", timeout=2)
            return process
        except requests.ConnectionError:
            time.sleep(0.1)
    process.kill()
    sys.exit("newsletter serve did not answer within 60 s")


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def timed_get(session: requests.Session, url: str, headers: dict[str, str], status: int) -> tuple[float, str, int]:
    start = time.perf_counter()
    response = session.get(url, headers=headers, timeout=30)
    elapsed = time.perf_counter() - start
    assert response.status_code == status, (url, response.status_code)
    return elapsed, response.headers["ETag"], len(response.content)


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    corpus = Path(sys.argv[2]) if len(sys.argv) > 2 else DEFAULT_CORPUS
    if not corpus.is_dir():
        sys.exit(f"no corpus at {corpus}; pass its folder as the second argument")
    print(describe())
    with tempfile.TemporaryDirectory() as tmp:
        config_path = config(Path(tmp), corpus)
        settings = load_settings(config_path)
        with Store.from_settings(settings) as store:
            report = ingest_files(settings, store, expand_paths([str(corpus)]))
            stored = [s for s, _ in store.upsert_subscribers(readers(count + 1, settings.categories.names))]
        print(f"{report.counts.new} papers over {report.counts.days} days; feed window "
              f"{settings.feeds.window_days} digest days; {count} subscribers (+1 warm-up)")
        port = free_port()
        local = f"http://127.0.0.1:{port}"
        urls = [private_feed_url(settings, s.feed_token).replace(settings.site.base_url, local) for s in stored]
        subprocess.run([sys.executable, "-m", "newsletter", "--config", str(config_path), "feeds"], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        process = serve(config_path, port)
        try:
            with requests.Session() as session:
                warm, _, _ = timed_get(session, urls[0], {}, 200)
                print(f"warm-up feed (renders the window's papers once per store change): {warm * 1000:.0f} ms")
                first, etags, sizes = [], [], []
                for url in urls[1:]:
                    elapsed, etag, size = timed_get(session, url, {}, 200)
                    first.append(elapsed)
                    etags.append(etag)
                    sizes.append(size)
                again = [timed_get(session, url, {"If-None-Match": etag}, 304)[0]
                         for url, etag in zip(urls[1:], etags, strict=True)]
                # Side by side: the same poll of a public feed file (no store query at all).
                public = f"{local}/feeds/papers.atom"
                _, public_etag, _ = timed_get(session, public, {}, 200)
                public_again = [timed_get(session, public, {"If-None-Match": public_etag}, 304)[0] for _ in urls[1:]]
        finally:
            process.terminate()
            process.wait(timeout=30)
    print(f"feed sizes: median {statistics.median(sizes) / 1024:.0f} KB, largest {max(sizes) / 1024:.0f} KB")
    for label, values in (("first request", first), ("If-None-Match (304)", again),
                          ("public feed file, 304", public_again)):
        p99 = percentile(values, 0.99)
        target = TARGETS.get(label)
        verdict = "" if target is None else (
            f" ({'meets' if p99 < target else 'misses'} the p99 target of {target * 1000:.0f} ms)")
        print(f"{label:>22}: median {statistics.median(values) * 1000:6.2f} ms, p99 {p99 * 1000:6.2f} ms, "
              f"max {max(values) * 1000:6.2f} ms over {len(values)} requests{verdict}")


if __name__ == "__main__":
    main()
