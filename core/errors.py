"""One error tree. Each class says what the user should do about it.

The CLI turns any :class:`PerpbotError` into one line on stderr and a non-zero
exit code (a traceback only with ``--verbose``). Messages name the offending
field and value, and never contain secrets.
"""

from __future__ import annotations


class PerpbotError(Exception):
    """Base of every error this framework raises on purpose."""

    exit_code = 1


class ConfigError(PerpbotError):
    """A setting, CLI flag or parameter is wrong: fix the named key and run again."""

    exit_code = 2


class DataError(PerpbotError):
    """A data file or market-data message is missing, malformed or inconsistent."""

    exit_code = 3


class PluginError(PerpbotError):
    """A plugin failed to load or register: fix or disable the named plugin."""

    exit_code = 4


class ExchangeError(PerpbotError):
    """The exchange refused or failed a request. Not retried automatically."""

    exit_code = 5


class TemporaryExchangeError(ExchangeError):
    """A network or exchange failure that may succeed if retried (timeouts, 429, 5xx)."""


class OrderRejected(ExchangeError):
    """The venue (or the simulator acting like it) rejected an order; ``reason`` says why."""

    def __init__(self, reason: str, *, client_id: int | None = None):
        super().__init__(reason)
        self.reason = reason
        self.client_id = client_id


class InvalidOrder(OrderRejected):
    """An order breaks a market rule (step, tick, minimum size, flags) before it is sent."""


class InsufficientMargin(OrderRejected):
    """An order would leave the account below its initial margin requirement."""


class InsufficientBalance(PerpbotError):
    """Not enough free collateral for the requested size (``required``/``available`` in USD)."""

    def __init__(self, message: str, *, required, available):
        super().__init__(message)
        self.required = required
        self.available = available


class InsufficientLeverage(PerpbotError):
    """Not enough leverage headroom for the requested size (``required``/``available``, x)."""

    def __init__(self, message: str, *, required, available):
        super().__init__(message)
        self.required = required
        self.available = available


class StrategyError(PerpbotError):
    """A strategy raised. The bot contains it, reports it and keeps its state consistent."""


class SecretError(ConfigError):
    """A secret (mnemonic, key) is missing or stored unsafely; the message says how to fix it."""


class LiveTradingNotConfirmed(ConfigError):
    """Real-money trading was requested without the explicit ``--live`` opt-in."""
