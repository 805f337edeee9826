"""Built-in cross-cutting plugins: risk policies, position sizers, journal, dashboard, report.

What lives here: ``risk`` (one module per risk policy; the default chain), ``sizers``
(position sizers), ``journal`` (the SQLite journal: every order, fill and checkpoint, and
resume after a restart), ``dashboard`` (the live terminal view) and ``report`` (the
end-of-run and ``runbot report`` analytics). Each is a plugin registered through the same
hooks a third-party package would use (see :mod:`perpbot.core.hookspecs` and :mod:`perpbot`).

What they may import: :mod:`perpbot` (the public API), ``perpbot.core`` and their own
package. Never ``perpbot.exchanges`` or ``perpbot.strategies``: a plugin sees the run
through the hooks' arguments (the read-only run view, orders, fills, the summary).
"""
