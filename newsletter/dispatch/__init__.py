"""Sending email: the plan of a day's send, the MIME it builds, the dry-run outbox, the
delivery log's run over SMTP, and the site's own emails (confirmations).

``send.DaySend`` is the one way a day's issue is sent, from `newsletter send` and the publish pipeline
alike; ``mail`` builds every message the project sends.
"""
