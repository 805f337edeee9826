"""``python runbot.py ...``: the same command-line interface as the ``runbot`` console script.

The CLI lives in :mod:`perpbot.cli`; this file only lets a clone run it as written in the
README (``python runbot.py --exchange paper --strategy sniper --ticker BTC,ETH``).
"""

from perpbot.cli import main

if __name__ == "__main__":
    main()
