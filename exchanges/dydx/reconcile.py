"""Reconciliation: the subaccount as REST describes it, folded into the account state.

At connect, after every reconnect of the stream and every ``reconcile_interval_s`` (and
at each funding hour + 30 s), :meth:`Reconciler.reconcile` reads:

- the subaccount (``GET /v4/addresses/{a}/subaccountNumber/{n}``): USDC, positions;
- every order that may still be live (:meth:`Reconciler.live_orders`, paged by
  good-til cursors); ours that the list did not show are looked up by id
  (:class:`~perpbot.exchanges.dydx.outcomes.OutcomeResolver`);
- the fills newer than the last reconciliation's newest fill height
  (:meth:`Reconciler.fills_since_watermark`, paged by height, then by ``page`` within one
  block);
- funding payments (``GET /v4/fundingPayments``; an indexer without it: funding comes
  from positions only).

Paging follows comlink (v4-chain ``indexer/services/comlink/src/controllers/api/v4/``
``orders-controller.ts`` and ``fills-controller.ts``; postgres
``indexer/packages/postgres/src/stores/fill-table.ts`` ``findAll``). Page size: comlink's
limit (``API_LIMIT_V4``) was 100 on older indexers, 1000 now; :data:`ORDERS_PAGE` and
:data:`FILLS_PAGE` ask for 100.

:meth:`Reconciler.run` is the exchange's maintenance task: expiry of short-term orders
by height, look-ups, reconciliation with backoff on failure.

Imports :mod:`perpbot.core` (errors), the dYdX account/rest/config/client-id/outcome
types, :mod:`perpbot.exchanges.dydx.orders` (``MAX_STATEFUL_S``) and
:mod:`perpbot.exchanges.dydx.values` only.
"""

from __future__ import annotations

import asyncio
import datetime as _dt
import time
from typing import Any, Callable

from loguru import logger

from decimal import Decimal

from perpbot.core.errors import ExchangeError
from perpbot.core.model import ZERO, Fill
from perpbot.exchanges.dydx.account import AccountState
from perpbot.exchanges.dydx.client_ids import ClientIdStore
from perpbot.exchanges.dydx.config import DydxSettings
from perpbot.exchanges.dydx.orders import MAX_STATEFUL_S
from perpbot.exchanges.dydx.outcomes import OutcomeResolver
from perpbot.exchanges.dydx.rest import IndexerRest, NotFound
from perpbot.exchanges.dydx.values import D, parse_iso_ns

NS = 1_000_000_000
#: rows per REST page: comlink's limit (``API_LIMIT_V4``) was 100 on older indexers, 1000 now
ORDERS_PAGE = 100
FILLS_PAGE = 100


def iso(epoch_s: int) -> str:
    """Unix seconds -> ``YYYY-MM-DDTHH:MM:SS.000Z`` (the indexer's time format; no '+' to
    escape in a query)."""
    return _dt.datetime.fromtimestamp(int(epoch_s), _dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")


class Reconciler:
    """Reads the subaccount's orders, fills and funding from REST into the account state.

    :param rest: the indexer REST client.
    :param account: the account state the rows are folded into.
    :param ids: the client-id store (other clients' dYdX ids are reserved at connect).
    :param resolver: asks for our orders the paged list did not show.
    :param settings: ``subaccount``, ``reconcile_interval_s``, ``retry_base_s``.
    :param address: the subaccount's owner (bech32).
    :param counters: the exchange's counters (``reconciles``, ``reconcile_failures``).
    :param now_ns: clock (ns).
    :param height: the exchange's latest block height (or None).
    """

    def __init__(self, rest: IndexerRest, account: AccountState, ids: ClientIdStore, resolver: OutcomeResolver,
                 settings: DydxSettings, address: str, *, counters: dict[str, int], now_ns: Callable[[], int],
                 height: Callable[[], int | None]):
        self.rest = rest
        self.account = account
        self.ids = ids
        self.resolver = resolver
        self.settings = settings
        self.address = address
        self.counters = counters
        self.now_ns = now_ns
        self.height = height
        #: subaccount -> the newest fill height reconciliation read there (absent before the first)
        self.watermarks: dict[int, int] = {}
        #: isolated children (set by the exchange) and the callback that puts a child found on
        #: the indexer in use
        self.children: Any = None
        self.watch: Callable[[int], None] | None = None
        #: divergences healed, by kind (see :meth:`reconcile`)
        self.divergences: dict[str, int] = {}

    async def reconcile(self, first: bool = False) -> None:
        """One reconciliation (see the module docstring) of the parent subaccount and every
        isolated child. ``first``: at connect (fills and funding payments found are history,
        not reported and not divergences; other clients' ids are reserved).

        Every difference between what the stream had told and what REST says is a divergence
        (:meth:`divergence`: logged with its cause, counted by kind in :attr:`divergences`):
        ``fill`` (a fill the stream never brought: booked now), ``order`` (one of our orders
        whose status REST changes, e.g. gone from the venue: marked so), ``position`` and
        ``collateral`` (the stream's position / USDC differed: REST's is kept), ``funding``
        (a position's ``netFunding`` on the stream differed from REST's: REST's is kept).
        Funding payments themselves come from ``GET /v4/fundingPayments`` (the subaccount
        stream carries no payment rows, only each position's ``netFunding``; a change of it
        wakes a reconciliation at once, see the exchange).

        :raises ExchangeError: when the indexer cannot be read (the caller retries).
        """
        s = self.settings
        acct = self.account
        numbers = await self._subaccount_numbers()
        before = self._stream_view(numbers)
        orders_before = {cid: o.status for cid, o in acct.orders.items()}
        seen_rows: dict[str, dict] = {}
        for n in numbers:
            sub = await self.rest.subaccount(self.address, n)
            if self.children is not None:
                self.children.apply_subaccount(n, sub)
            else:
                acct.apply_subaccount(sub)
            rows = await self.live_orders(n)
            seen_rows.update(rows)
            for row in rows.values():
                acct.apply_order_row(row)
        # ours that the paged lists did not show: ask for each by id
        for cid, o in list(acct.orders.items()):
            if not o.status.is_terminal and o.exchange_order_id and o.exchange_order_id not in seen_rows:
                acct.lookups.add(cid)
        await self.resolver.resolve(force=True)
        if first:
            self.ids.reserve(int(o.client_id) for o in acct.foreign.values()
                             if self.ids.our_id(int(o.client_id)) is None)
        for n in numbers:
            ledger = self._ledger(n)
            fills = await self.fills_since_watermark(n)
            new_fills = ledger.apply_rest_fills(fills, emit=not first)
            try:
                payments = await self.rest.funding_payments(self.address, n, limit=100)
            except ExchangeError as exc:  # an indexer without the endpoint: funding then comes from positions only
                payments = []
                if first:
                    logger.warning(f"dYdX funding payments unavailable: {exc}")
            ledger.apply_funding_payments(payments, emit=not first)  # the indexer streams none: REST is the source
            if not first and new_fills:
                self.divergence("fill", f"subaccount {n}: {new_fills} fill(s) the stream never brought; booked now")
        if not first:
            self._compare(before, self._stream_view(numbers), orders_before)
        self.counters["reconciles"] += 1

    @property
    def fill_watermark(self) -> int | None:
        """The newest fill height read on the configured subaccount (None before the first read)."""
        return self.watermarks.get(self.settings.subaccount)

    def divergence(self, kind: str, cause: str) -> None:
        """Count (``divergences[kind]``, ``counters["divergences"]``) and log one divergence."""
        self.divergences[kind] = self.divergences.get(kind, 0) + 1
        self.counters["divergences"] = self.counters.get("divergences", 0) + 1
        logger.warning(f"dYdX reconciliation: {kind} divergence healed: {cause}")

    def _ledger(self, n: int):
        return self.children.ledger(n) if self.children is not None else self.account.ledger

    async def _subaccount_numbers(self) -> list[int]:
        """The parent and every child to reconcile: the children the bot knows, and those the
        indexer's ``/addresses/{a}/parentSubaccountNumber/{p}`` lists with USDC, a position or
        equity (comlink ``addresses-controller.ts``); an indexer without that route: the known ones."""
        parent = self.settings.subaccount
        if self.children is None or self.watch is None:
            return [parent]
        rest = self.rest
        try:
            data = await rest.call(f"parent subaccount {self.address}/{parent}",
                                   rest.client.account.get_parent_subaccount, self.address, parent)
        except NotFound:
            data = {}
        except ExchangeError as exc:
            logger.debug(f"dYdX parent subaccount view unavailable ({exc}); reconciling the known children")
            data = {}
        for child in ((data or {}).get("subaccount") or {}).get("childSubaccounts") or ():
            try:
                n = int(child.get("subaccountNumber"))
            except (TypeError, ValueError):
                continue
            busy = child.get("openPerpetualPositions") or any(
                D(a.get("size") or "0") != 0 for a in (child.get("assetPositions") or {}).values())
            if n != parent and busy and n not in self.children.ledgers:
                logger.info(f"dYdX child subaccount {n} found on the indexer: reconciled from now on")
                self.watch(n)
        return self.children.numbers()

    def _stream_view(self, numbers: list[int]) -> dict[int, tuple[Decimal, dict[str, tuple[Decimal, Decimal]]]]:
        return {n: (self._ledger(n).usdc, {t: (p.size, p.funding) for t, p in self._ledger(n).positions.items()})
                for n in numbers}

    def _compare(self, before: dict, after: dict, orders_before: dict) -> None:
        for n, (usdc, pos) in before.items():
            usdc2, pos2 = after.get(n, (usdc, pos))
            for t in sorted(set(pos) | set(pos2)):
                (size, fund), (size2, fund2) = pos.get(t, (ZERO, ZERO)), pos2.get(t, (ZERO, ZERO))
                if size != size2:
                    self.divergence("position", f"subaccount {n} {t}: the stream said {size}, "
                                                f"the indexer says {size2}; the indexer's is kept")
                elif fund != fund2:
                    self.divergence("funding", f"subaccount {n} {t}: net funding {fund} on the stream, "
                                               f"{fund2} on the indexer; the indexer's is kept")
            if usdc != usdc2:
                self.divergence("collateral", f"subaccount {n}: the stream said {usdc} USDC, the indexer says "
                                              f"{usdc2}; the indexer's is kept")
        for cid, status in orders_before.items():
            now = self.account.orders.get(cid)
            if now is not None and now.status is not status:
                self.divergence("order", f"order {cid} {now.ticker}: {status.value} on the stream, "
                                         f"{now.status.value} on the venue; marked {now.status.value}")

    async def live_orders(self, number: int | None = None) -> dict[str, dict]:
        """Every order row of subaccount ``number`` (default: the configured one) that may still
        be live, all pages, by indexer id.

        ``GET /v4/orders`` has no created-before cursor (comlink ``orders-controller.ts``): it
        is sorted by good-til-block / good-til-block-time, newest first, and continued with
        ``goodTilBlockTimeBeforeOrAt`` (stateful orders) and ``goodTilBlockBeforeOrAt``
        (short-term orders), both inclusive. Two passes page down those cursors until a short
        page, a page with nothing new, or a good-til that has passed (an order whose
        good-til-block(-time) passed is no longer on the chain). No status filter: comlink
        filters status AFTER its database limit, so a filtered page may stop early.

        :raises ExchangeError: when a page cannot be read.
        """
        s = self.settings
        sub = s.subaccount if number is None else number
        out: dict[str, dict] = {}
        now_s = self.now_ns() // NS
        height = self.height()
        for stateful in (True, False):
            if stateful:
                cursor: Any = iso(now_s + MAX_STATEFUL_S + 86_400)
                floor: Any = now_s - 60
            else:
                cursor = (height + 10_000) if height else 2**53
                floor = (height - 1) if height else 0
            while True:
                kw = ({"good_til_block_time_before_or_at": cursor} if stateful
                      else {"good_til_block_before_or_at": cursor})
                page = await self.rest.orders(self.address, sub, limit=ORDERS_PAGE, **kw)
                new = 0
                keys = []
                for row in page:
                    rid = str(row.get("id") or "")
                    if rid and rid not in out:
                        new += 1
                    if rid:
                        out[rid] = row
                    try:
                        if stateful and row.get("goodTilBlockTime"):
                            keys.append((parse_iso_ns(str(row["goodTilBlockTime"])) // NS, row["goodTilBlockTime"]))
                        elif not stateful and row.get("goodTilBlock") is not None:
                            keys.append((int(row["goodTilBlock"]), int(row["goodTilBlock"])))
                    except (TypeError, ValueError):
                        continue
                if len(page) < ORDERS_PAGE or not new or not keys:
                    break
                low, nxt = min(keys)
                if (stateful and low < floor) or (not stateful and low < floor):
                    break  # the rest of the list is past its good-til: no longer on the chain
                if nxt == cursor:
                    logger.warning(
                        f"dYdX orders: more than {ORDERS_PAGE} orders share good-til {nxt}; the indexer cannot page "
                        f"past them (the stream and look-ups by id cover the rest)"
                    )
                    break
                cursor = nxt
        return out

    async def fills_since_watermark(self, number: int | None = None) -> list[dict]:
        """Every fill of subaccount ``number`` (default: the configured one) newer than the last
        reconciliation's newest fill height there, all pages.

        ``GET /v4/fills`` is newest first by ``createdAtHeight`` and continued with the
        inclusive ``createdBeforeOrAtHeight`` (comlink ``fills-controller.ts``, postgres
        ``fill-table.ts findAll``); rows repeated at a page boundary are merged by fill id.
        A block's fills are written together (ender processes a block in one transaction),
        so a height seen once is complete. When one height holds a whole page, that height
        is read with ``page`` (newer indexers: ``eventId`` order, ``totalResults``).
        On the first reconciliation of a subaccount (no watermark yet) only the newest page is read:
        older fills are history (:meth:`fills_since` reads them on demand).

        :raises ExchangeError: when a page cannot be read.
        """
        sub = self.settings.subaccount if number is None else number
        rows: dict[str, dict] = {}
        wm = self.watermarks.get(sub)
        cursor: int | None = None
        while True:
            page = await self.rest.fills(self.address, sub, limit=FILLS_PAGE,
                                         created_before_or_at_height=cursor)
            heights = []
            for row in page:
                rows[str(row.get("id"))] = row
                try:
                    heights.append(int(row.get("createdAtHeight")))
                except (TypeError, ValueError):
                    pass
            if wm is None or len(page) < FILLS_PAGE or not heights:
                break
            low = min(heights)
            if low <= wm:
                break  # everything above the watermark is in
            if low == max(heights) and low == cursor:
                await self._fills_at_height(low, rows, sub)
                cursor = low - 1
                continue
            cursor = low
        heights = [int(r["createdAtHeight"]) for r in rows.values() if str(r.get("createdAtHeight", "")).isdigit()]
        if heights:
            self.watermarks[sub] = max(heights + ([wm] if wm is not None else []))
        elif wm is None:
            self.watermarks[sub] = 0
        return list(rows.values())

    async def _fills_at_height(self, height: int, rows: dict[str, dict], sub: int) -> None:
        """All fills of one block when there are more than a page of them (``page`` paging)."""
        page_no = 1
        while True:
            data = await self.rest.fills_page(self.address, sub, limit=FILLS_PAGE,
                                              created_before_or_at_height=height, page=page_no)
            got = [r for r in (data.get("fills") or []) if str(r.get("createdAtHeight")) == str(height)]
            for row in got:
                rows[str(row.get("id"))] = row
            total = data.get("totalResults")
            if total is None:
                logger.warning(f"dYdX fills: more than {FILLS_PAGE} fills at height {height} and this indexer "
                               f"has no page parameter; the stream is the only source for the rest")
                return
            if page_no * FILLS_PAGE >= int(total) or not data.get("fills"):
                return
            page_no += 1

    async def fills_since(self, ts_ns: int) -> list[Fill]:
        """Fills at or after ``ts_ns`` (ns) from REST, oldest first, deduplicated by fill id
        (paged by ``createdBeforeOrAt``, newest first, at most 10 pages of 100). Rows of an
        unexpected shape are skipped; nothing is stored or reported.

        :raises ExchangeError: when a page cannot be read.
        """
        out = []
        before = None
        for _ in range(10):
            rows = await self.rest.fills(self.address, self.settings.subaccount, limit=100,
                                         created_before_or_at=before)
            if not rows:
                break
            oldest_ns = None
            for row in rows:
                try:
                    f = self.account.fill_from_row(row)
                except (KeyError, TypeError, ValueError, ArithmeticError):
                    continue
                oldest_ns = f.ts_ns if oldest_ns is None else min(oldest_ns, f.ts_ns)
                if f.ts_ns >= ts_ns:
                    out.append(f)
            oldest = rows[-1].get("createdAt")
            if len(rows) < 100 or not oldest or oldest_ns is None or oldest_ns < ts_ns:
                break
            before = oldest
        seen = set()
        uniq = []
        for f in sorted(out, key=lambda f: f.ts_ns):
            if f.fill_id not in seen:
                seen.add(f.fill_id)
                uniq.append(f)
        return uniq

    async def run(self, reconcile_now: asyncio.Event) -> None:
        """The maintenance loop (runs until cancelled): about once a second, expire short-term
        orders past their good-til-block and resolve due look-ups; reconcile when
        ``reconcile_now`` is set (a reconnect), every ``reconcile_interval_s`` and at each
        funding hour + 30 s. A failed reconciliation is logged, counted in
        ``reconcile_failures`` and retried with exponential backoff (``retry_base_s * 2**n``,
        at most ``reconcile_interval_s``)."""
        s = self.settings
        next_reconcile = time.monotonic() + s.reconcile_interval_s
        hour = 3600 * NS
        next_funding_ns = (self.now_ns() // hour + 1) * hour + 30 * NS
        failures = 0
        while True:
            try:
                async with asyncio.timeout(min(1.0, s.reconcile_interval_s / 2)):
                    await reconcile_now.wait()
            except TimeoutError:
                pass
            now = time.monotonic()
            height = self.height()
            if height is not None:
                self.account.expire_short_term(height)
            if self.account.lookups:
                try:
                    await self.resolver.resolve()
                except asyncio.CancelledError:
                    raise
                except ExchangeError as exc:
                    logger.warning(f"dYdX order look-up failed ({exc}); retrying")
            due = reconcile_now.is_set() or now >= next_reconcile or self.now_ns() >= next_funding_ns
            if not due:
                continue
            reconcile_now.clear()
            if self.now_ns() >= next_funding_ns:
                next_funding_ns += hour
            try:
                await self.reconcile()
                failures = 0
                next_reconcile = time.monotonic() + s.reconcile_interval_s
            except asyncio.CancelledError:
                raise
            except ExchangeError as exc:
                failures += 1
                self.counters["reconcile_failures"] += 1
                logger.warning(f"dYdX account reconciliation failed ({exc}); retrying")
                next_reconcile = time.monotonic() + min(s.reconcile_interval_s, s.retry_base_s * 2 ** min(failures, 6))
