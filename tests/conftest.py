"""Shared fixtures. The real digest corpus lives beside the project, never inside it."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from browser_helpers import CHROMEDRIVER, CHROMIUM, FLAGS
from newsletter.config import STORE_URL_ENV
from simultaneous import StoreUrls

PROJECT_ROOT = Path(__file__).resolve().parent.parent
CORPUS_DIR = PROJECT_ROOT.parent / "shared" / "corpus"

# Speed is measured in bench/, not in tests: no per-example deadline, which a busy 2-core machine can
# overrun. With CI set (.ci/run sets it) each test's examples are fixed, so a run is repeatable;
# elsewhere they vary from run to run and keep looking for new failures.
settings.register_profile("local", deadline=None)
settings.register_profile("ci", settings.get_profile("local"), derandomize=True)
settings.load_profile("ci" if os.environ.get("CI") else "local")


@pytest.fixture(scope="session")
def corpus_dir() -> Path:
    if not CORPUS_DIR.is_dir():
        pytest.skip(f"the digest corpus is not at {CORPUS_DIR}; clone the project beside ../shared to run this")
    return CORPUS_DIR


@pytest.fixture(scope="session")
def seed_files(corpus_dir: Path) -> list[Path]:
    return sorted((corpus_dir / "seeds").glob("*.txt"))


@pytest.fixture(scope="session")
def daily_files(corpus_dir: Path) -> list[Path]:
    return sorted((corpus_dir / "daily-ai-papers").rglob("*.md"))


# --- PostgreSQL: a real server for the store tests --------------------------------------------------
# NEWSLETTER_TEST_POSTGRES_URL names a server to use. Otherwise, where Debian's pg_virtualenv is installed
# (package postgresql-common with a postgresql server), the session starts a throwaway cluster with it and
# drops it at the end; pg_virtualenv also works as root. Without either, the PostgreSQL cases skip and say so.
POSTGRES_URL_VARIABLE = "NEWSLETTER_TEST_POSTGRES_URL"
NO_POSTGRES = (
    f"no PostgreSQL server: install Debian's postgresql (for pg_virtualenv) or set {POSTGRES_URL_VARIABLE}"
)


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A server URL (``postgresql+psycopg://…/postgres``) for the whole session."""
    given = os.environ.get(POSTGRES_URL_VARIABLE)
    if given:
        yield given
        return
    if shutil.which("pg_virtualenv") is None:
        pytest.skip(NO_POSTGRES)
    try:
        import psycopg  # noqa: F401  (the driver comes with the test extras)
    except ImportError:
        pytest.skip("the PostgreSQL driver is missing: pip install -e '.[test]' installs psycopg")
    cluster, env = _start_cluster(tmp_path_factory)
    try:
        user, password = env.get("PGUSER", "postgres"), env.get("PGPASSWORD", "")
        host, port = env.get("PGHOST", "localhost"), env.get("PGPORT", "5432")
        yield f"postgresql+psycopg://{user}:{password}@{host}:{port}/postgres"
    finally:
        _stop_cluster(cluster)


def _start_cluster(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.Popen[bytes], dict[str, str]]:
    """pg_virtualenv's cluster and its environment. Other test runs on this machine start clusters too:
    each try takes a port free at that moment, and a try that lost the port to another run is repeated."""
    said = ""
    for _attempt in range(3):
        env_file = tmp_path_factory.mktemp("postgres") / "env"
        # The cluster lives as long as the `sleep`; killing it lets pg_virtualenv drop the cluster.
        publish_env = f'env > "{env_file}.tmp" && mv "{env_file}.tmp" "{env_file}" && exec sleep 86400'
        cluster = subprocess.Popen(
            # -t: the cluster's configuration in a temporary folder even as root, so that two test runs at
            # once (or one left over from a killed run) do not collide on the cluster name.
            ["pg_virtualenv", "-t", "sh", "-c", publish_env], env={**os.environ, "PGPORT": str(_free_port())},
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
        )
        env, said = _wait_for_cluster(cluster, env_file)
        if env is not None:
            return cluster, env
    pytest.skip(f"pg_virtualenv could not start a PostgreSQL cluster: {said.strip()[-500:]}")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_for_cluster(cluster: subprocess.Popen[bytes], env_file: Path) -> tuple[dict[str, str] | None, str]:
    """The cluster's environment, or None and what pg_virtualenv said when it gave up."""
    deadline = time.monotonic() + 120
    while not env_file.exists():
        if cluster.poll() is not None:
            return None, cluster.stderr.read().decode(errors="replace") if cluster.stderr else ""
        if time.monotonic() > deadline:
            pytest.skip("pg_virtualenv did not start a PostgreSQL cluster within 120 s")
        time.sleep(0.1)
    lines = env_file.read_text(encoding="utf-8").splitlines()
    return dict(line.split("=", 1) for line in lines if "=" in line), ""


def _stop_cluster(cluster: subprocess.Popen[bytes]) -> None:
    # Only the `sleep` gets the signal: pg_virtualenv must live on to drop the cluster.
    for child in _children(cluster.pid):
        for grandchild in _children(child):
            os.kill(grandchild, signal.SIGTERM)
        os.kill(child, signal.SIGTERM)
    try:
        cluster.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(cluster.pid, signal.SIGKILL)
        cluster.wait()


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


@contextlib.contextmanager
def _fresh_database(server: str) -> Iterator[str]:
    """A new, empty database on ``server``, dropped on leaving."""
    import psycopg

    name = f"newsletter_test_{uuid.uuid4().hex[:12]}"
    admin = server.replace("postgresql+psycopg://", "postgresql://", 1)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield server.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def postgres_url(postgres_server: str) -> Iterator[str]:
    """A new, empty database on the session's server, dropped after the test."""
    with _fresh_database(postgres_server) as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each store test runs on a real SQLite file and on a real PostgreSQL server."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture(params=["sqlite", "postgresql"])
def store_backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Runs a test that opens the store through a config (``write_config``, the CLI, a subprocess) on both
    backends: on SQLite with the config's own file; on PostgreSQL with a fresh database, through
    $NEWSLETTER_STORE_URL, which overrides [store] url in every config the test loads or hands to a process."""
    if request.param == "postgresql":
        monkeypatch.setenv(STORE_URL_ENV, request.getfixturevalue("postgres_url"))
    return str(request.param)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def module_store_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """The store URL for a module-wide site (one server for the module's tests), on both backends: the
    default SQLite file beside the config, or a fresh PostgreSQL database that lives as long as the module."""
    if request.param == "sqlite":
        yield "sqlite:///var/test.db"
        return
    with _fresh_database(request.getfixturevalue("postgres_server")) as url:
        yield url


@pytest.fixture(scope="module")
def both_store_urls(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[StoreUrls]:
    """A store URL per backend for a module's scenarios run on both at once (``tests/simultaneous.py``): a new
    SQLite file, and a fresh PostgreSQL database while the module runs, or why there is none."""
    urls = StoreUrls(available={"sqlite": f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'store.db'}"})
    try:
        server = request.getfixturevalue("postgres_server")
    except pytest.skip.Exception as skipped:
        urls.missing["postgresql"] = skipped.msg
        yield urls
        return
    with _fresh_database(server) as url:
        urls.available["postgresql"] = url
        yield urls


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[object]:
    """Headless Chromium under selenium, with a throwaway profile in tmp_path."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path / 'chromium-profile'}")
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(tmp_path / "chromium-profile", ignore_errors=True)
