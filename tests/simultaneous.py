"""One scenario per store backend, both running at the same time.

For the tests whose time goes to waiting on the wall clock (a daemon firing at a real cron minute): run one
after the other, the SQLite and PostgreSQL cases each wait their own minute; run in two threads, the waits
overlap. A module fixture made by ``scenario_fixture`` starts the scenario on both backends; each case of a test
parametrized by ``BACKENDS`` takes its own backend's outcome and makes its assertions there, so a failure names
the backend.

A scenario must not use click's ``CliRunner`` (it swaps ``sys.stdout`` for the whole process): it runs the
CLI as a process instead (``schedule_helpers.newsletter_process``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Generic, TypeVar

import pytest

BACKENDS = ("sqlite", "postgresql")
Outcome = TypeVar("Outcome")


@dataclass
class StoreUrls:
    """A store URL per available backend, and for each missing one why it is missing."""

    available: dict[str, str] = field(default_factory=dict)
    missing: dict[str, str] = field(default_factory=dict)


class Simultaneous(Generic[Outcome]):
    """The outcome of ``scenario(folder, store_url)`` on each backend, all started at once."""

    def __init__(self, futures: dict[str, Future[Outcome]], missing: dict[str, str]) -> None:
        self._futures = futures
        self._missing = missing

    def outcome(self, backend: str) -> Outcome:
        """This backend's outcome once its scenario is over (re-raising what it raised); skips, with the
        reason, when the backend is not available."""
        if backend in self._missing:
            pytest.skip(self._missing[backend])
        return self._futures[backend].result()


@contextmanager
def on_every_backend(urls: StoreUrls, folder: Callable[[str], Path],
                     scenario: Callable[[Path, str], Outcome]) -> Iterator[Simultaneous[Outcome]]:
    """Starts ``scenario`` in a thread per available backend, each in its own ``folder(backend)``; on
    leaving, waits for every scenario to end."""
    with ThreadPoolExecutor(max_workers=len(BACKENDS), thread_name_prefix="backend") as pool:
        futures = {backend: pool.submit(scenario, folder(backend), url) for backend, url in urls.available.items()}
        yield Simultaneous(futures, urls.missing)


def scenario_fixture(scenario: Callable[[Path, str], Outcome]) -> Callable[..., Iterator[Simultaneous[Outcome]]]:
    """A module fixture (named by the module attribute it is assigned to) that starts ``scenario`` on every
    backend, in stores from ``both_store_urls`` (tests/conftest.py)."""

    @pytest.fixture(scope="module")
    def started(both_store_urls: StoreUrls,
                tmp_path_factory: pytest.TempPathFactory) -> Iterator[Simultaneous[Outcome]]:
        with on_every_backend(both_store_urls, tmp_path_factory.mktemp, scenario) as runs:
            yield runs

    return started
