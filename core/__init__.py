"""perpbot's framework core.

Nothing in this package imports ``exchanges``, ``strategies`` or ``plugins``
(``tests/test_layering.py`` enforces it). Plugin authors import from
:mod:`perpbot`, the one public API module, not from here.
"""

__version__ = "0.1.0"
