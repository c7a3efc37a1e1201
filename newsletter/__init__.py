"""newsletter: daily AI-paper digests as Atom feeds and category-filtered emails."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("newsletter")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"
