"""Built-in cross-cutting plugins: risk policies, position sizers, journal, dashboard, report.

Each module here is a plugin registered through the same hooks a third-party
package would use (see :mod:`perpbot.core.hookspecs` and :mod:`perpbot`).
"""
