"""newsletter: daily AI-paper digests as Atom feeds and category-filtered emails."""

# The one place the version is written: pyproject.toml reads it from here ([tool.setuptools.dynamic]).
# A literal, not importlib.metadata: that import alone costs a third of `newsletter --help`.
__version__ = "0.1.0"
