"""The database schema: every table, on one MetaData, in SQLAlchemy Core.

Types are portable (JSON, Date, DateTime) so that a PostgreSQL URL works as well as SQLite.
This is the head of the schema: every change here needs a revision in ``migrations/versions/`` that
brings existing databases to it (the module docstring of ``migrations`` says how).
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Column,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

# papers.category copies the digest's own Category cell, which has no limit: a longer one is cut to fit (the
# paper's JSON holds it whole), since PostgreSQL, unlike SQLite, refuses a value longer than the column.
CATEGORY_LENGTH = 200

papers = Table(
    "papers",
    metadata,
    Column("arxiv_id", String(64), primary_key=True),
    # The whole paper as canonical JSON text (the shape of `newsletter parse --json`), derived from
    # its listings (see appearances) and rewritten only when content_hash, its SHA-256, changes.
    # One text, not a column per list: a paper is written and read as a whole, and one JSON
    # document costs a fifth of five. Title, category and published are copied out for queries.
    Column("content", Text, nullable=False),
    Column("content_hash", String(64), nullable=False),
    Column("title", Text, nullable=False),
    Column("category", String(CATEGORY_LENGTH)),
    Column("published", Date),
    Column("first_seen", Date, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

days = Table(
    "days",
    metadata,
    Column("date", Date, primary_key=True),
    # When the day's listings last changed (first ingested, re-ingested with changes, pruned).
    Column("ingested_at", DateTime(timezone=True), nullable=False),
)

# One row per listing of a paper: a day, the file it came from, its place there and the text that
# file gave. A paper's row in ``papers`` merges its listings of the newest day, so the result does
# not depend on the order files are ingested in, and re-ingesting one file changes only its rows.
appearances = Table(
    "appearances",
    metadata,
    Column("date", Date, ForeignKey("days.date", ondelete="CASCADE"), primary_key=True),
    Column("source", Text, primary_key=True),
    Column("arxiv_id", String(64), primary_key=True, index=True),
    Column("position", Integer, nullable=False),
    # The listing as canonical JSON text; content_hash is its SHA-256.
    Column("content", Text, nullable=False),
    Column("content_hash", String(64), nullable=False),
    # When this listing last changed: among one day's listings of a paper, the newest one's text wins.
    Column("ingested_at", DateTime(timezone=True), nullable=False),
)

subscribers = Table(
    "subscribers",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    # The address as the subscriber gave it (local part's case kept); ``email_key`` is its
    # lower-cased form, which is what makes Ada@example.org and ada@example.org one subscriber.
    Column("email", String(320), nullable=False),
    Column("email_key", String(320), nullable=False, unique=True),
    Column("name", Text, nullable=False),
    Column("categories", JSON, nullable=False),
    Column("keywords", JSON, nullable=False),
    Column("excluded", JSON, nullable=False),
    # Server defaults: what the rows before editions (revision 0003) got.
    Column("authors", JSON, nullable=False, server_default="[]"),
    # daily | weekly; a weekly subscriber's edition goes out on ``weekday`` (mon ... sun).
    Column("cadence", String(10), nullable=False, server_default="daily"),
    Column("weekday", String(3), nullable=False, server_default="mon"),
    Column("status", String(20), nullable=False, index=True),
    Column("token", String(64), nullable=False, unique=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

# The editions the delivery log has rows for (see models.Edition): their kind and the digest days
# they cover, which is what decides the period of a reader's next weekly edition.
editions = Table(
    "editions",
    metadata,
    Column("key", String(80), primary_key=True),
    Column("kind", String(10), nullable=False),
    Column("first_day", Date, nullable=False),
    Column("last_day", Date, nullable=False),
)

# A rendition's message template (dispatch/mail.py MessageTemplate, as JSON): the message's bytes
# with the per-subscriber values left out, stored once when its edition is planned, so that any
# worker can build any delivery's message from the database alone. Keyed by the plan's day and the
# rendition's key; a replan of the day replaces the template and keeps the id.
renditions = Table(
    "renditions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("date", Date, nullable=False),
    Column("key", Text, nullable=False),
    Column("template", Text, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("date", "key", name="uq_renditions_date_key"),
)

# The delivery log: one row per (edition, subscriber); ``date`` is the day the send ran for, which
# every edition planned on it is due on. State moves pending -> sending (leased to one
# send process until lease_until) -> sent | retry (next_attempt_at) | failed | bounced | unknown, or
# cancelled when the subscriber left the day's plan before being mailed. No foreign key to subscribers: the
# log outlives a removed subscriber, and ``email`` keeps the address that was mailed.
deliveries = Table(
    "deliveries",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("date", Date, nullable=False),
    Column("edition", String(80), nullable=False),
    Column("subscriber_id", Integer, nullable=False),
    Column("email", String(320), nullable=False),
    Column("message_id", String(255), nullable=False),
    Column("state", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    # Attempts after which the server kept silent: the message may have arrived (see dispatch/delivery.py).
    Column("unknown_outcomes", Integer, nullable=False, default=0, server_default="0"),
    Column("next_attempt_at", DateTime(timezone=True)),
    Column("lease_until", DateTime(timezone=True)),
    Column("lease_owner", String(255)),
    Column("last_reply", Text),
    Column("sent_at", DateTime(timezone=True)),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    # The message's rendition, and its one personal sentence besides the subscriber's own values (the
    # followed authors' papers it marks). NULL for rows planned before renditions were stored.
    Column("rendition_id", Integer),
    Column("followed_note", Text, nullable=False, server_default=""),
    UniqueConstraint("edition", "subscriber_id", name="uq_deliveries_edition_subscriber"),
    Index("ix_deliveries_date_state", "date", "state"),
    Index("ix_deliveries_subscriber", "subscriber_id"),
    # Workers claim by state across every open edition, in id order.
    Index("ix_deliveries_state_id", "state", "id"),
)

# Why an edition did not go out (no digest, nothing selected, skipped on purpose), for `newsletter
# status`: today only a day's daily edition is noted (key daily/DAY), and ``date`` is that day.
edition_notes = Table(
    "edition_notes",
    metadata,
    Column("edition", String(80), primary_key=True),
    Column("date", Date, nullable=False, index=True),
    Column("reason", Text, nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
)

# What each digest file held when it was last ingested, so that an unchanged file (same bytes, same
# classifier settings) is not parsed and compared again.
sources = Table(
    "sources",
    metadata,
    Column("path", Text, primary_key=True),
    Column("fingerprint", String(64), nullable=False),
    Column("dates", JSON, nullable=False),
    Column("arxiv_ids", JSON, nullable=False),
    Column("warnings", JSON, nullable=False),
    Column("ingested_at", DateTime(timezone=True), nullable=False),
)

# A digest file's own note for its day (a cards page's "Today's Reading Tips"), per (day, file) like
# appearances: re-ingesting a file replaces its note. ``translations`` maps a language code to the note
# in that language.
source_notes = Table(
    "source_notes",
    metadata,
    Column("date", Date, ForeignKey("days.date", ondelete="CASCADE"), primary_key=True),
    Column("source", Text, primary_key=True),
    Column("note", Text, nullable=False),
    Column("translations", JSON, nullable=False),
)

# How each digest file's layout held up when it was last parsed (see models.FileHealth): the paper
# count that judges a short day against the usual one, and the drift counts `ingest --json` reports.
source_health = Table(
    "source_health",
    metadata,
    Column("path", Text, primary_key=True),
    Column("format", String(20), nullable=False),
    Column("line", Integer, nullable=False),
    Column("blocks", Integer, nullable=False),
    Column("papers", Integer, nullable=False),
    Column("size", Integer, nullable=False),
    Column("drift", JSON, nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
)

# The last ingests' summaries (files, papers, warnings, drift totals), for `newsletter status`.
ingest_runs = Table(
    "ingest_runs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("finished_at", DateTime(timezone=True), nullable=False),
    Column("summary", JSON, nullable=False),
)

# How many times each subscriber's status changed. A confirmation link carries the count it was made
# at and works only while it is unchanged, so it works once and never after an unsubscribe. A table
# of its own (absent row: 0), so that the subscribers table needs no migration.
status_changes = Table(
    "status_changes",
    metadata,
    Column("subscriber_id", Integer, primary_key=True),
    Column("count", Integer, nullable=False),
)

# Roles one process at a time may hold, such as the scheduler's leader among daemons sharing this store
# (store/leadership.py): the holder renews its lease; another takes the role once the lease has run out.
leader_leases = Table(
    "leader_leases",
    metadata,
    Column("role", String(64), primary_key=True),
    Column("owner", String(255), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("since", DateTime(timezone=True), nullable=False),
)

# What every send to one relay (host:port) shares, whichever machine it runs on (store/limits.py): the
# next send slot of the rate limit (seconds since the epoch), refusals in a row, and the last pause.
relay_limits = Table(
    "relay_limits",
    metadata,
    Column("relay", String(300), primary_key=True),
    Column("next_slot_at", Float, nullable=False),
    Column("refused_in_a_row", Integer, nullable=False),
    Column("paused_at", DateTime(timezone=True)),
    Column("pause_reason", Text),
)

# Each subscriber's private feed token (``/private/TOKEN.atom``). A table of its own, so that the
# subscribers table needs no migration. A request is looked up by ``token_hash`` (SHA-256 of the
# token), so that no database comparison ever runs on the secret itself; ``token`` is kept to put the
# URL in emails and on the preferences page.
feed_tokens = Table(
    "feed_tokens",
    metadata,
    Column("subscriber_id", Integer, primary_key=True),
    Column("token", String(64), nullable=False),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
)
