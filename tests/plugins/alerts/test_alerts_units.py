"""Units of the alerts plugin: rate limits and digests, message building and secret scrubbing,
URL checks, the feed and day watches, and delivery off the loop with retries (real apprise
``json://`` POSTs to a loopback receiver)."""

from __future__ import annotations

import json
import threading
from decimal import Decimal as D
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from loguru import logger

from perpbot.core.config import BotConfig
from perpbot.core.errors import ConfigError
from perpbot.plugins.alerts import messages as msg
from perpbot.plugins.alerts.ratelimit import RateLimiter, TokenBucket
from perpbot.plugins.alerts.sender import Dispatcher, ServiceWorker
from perpbot.plugins.alerts.settings import (
    AlertService,
    check_url,
    collect_secrets,
    load_settings,
    supported_schemes,
    url_label,
    url_secrets,
)
from perpbot.plugins.alerts.watch import DAY_NS, DayTracker, FeedWatch, Marks

NS = 1_000_000_000
T0 = 1_723_161_255 * NS  # 2024-08-08 23:54:15 UTC
MNEMONIC = "abandon ability able about above absent absorb abstract absurd abuse access accident"


class FakeClock:
    """Wall-clock seconds that move only when told."""

    def __init__(self):
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


# -- rate limits ------------------------------------------------------------------------------


def test_token_bucket_bursts_then_refills_at_its_rate():
    clock = FakeClock()
    b = TokenBucket(3, 6, clock)  # 3 at once, then one every 10 s
    assert [b.take() for _ in range(4)] == [True, True, True, False]
    clock.t += 9.9
    assert not b.take()
    clock.t += 0.1
    assert b.take() and not b.take()
    clock.t += 1000  # never more than the capacity
    assert [b.take() for _ in range(4)] == [True, True, True, False]


def test_token_bucket_refuses_a_bad_shape():
    with pytest.raises(ValueError, match="capacity"):
        TokenBucket(0, 6)
    with pytest.raises(ValueError, match="per_min"):
        TokenBucket(1, 0)


def test_a_burst_of_fills_is_coalesced_into_one_digest_counting_every_held_fill():
    clock = FakeClock()
    lim = RateLimiter({"fill": TokenBucket(2, 6, clock)}, TokenBucket(100, 100, clock))
    sent = [lim.offer("fill", f"fill {i}", T0 + i) for i in range(10)]
    assert sent == [True, True] + [False] * 8
    assert lim.release() == []  # no token yet: the digest waits
    clock.t += 10
    (kind, held), = lim.release()
    assert kind == "fill" and held.count == 8 and held.first_ns == T0 + 2
    assert list(held.lines) == [f"fill {i}" for i in range(5, 10)]  # the last five are shown
    assert lim.held == {} and lim.suppressed == {"fill": 8}
    assert lim.offer("fill", "fill 10", T0 + 10) is False  # the digest took the token


def test_held_alerts_keep_their_order_behind_the_digest():
    clock = FakeClock()
    lim = RateLimiter({"fill": TokenBucket(1, 6, clock)}, TokenBucket(100, 100, clock))
    assert lim.offer("fill", "a", 1) and not lim.offer("fill", "b", 2)
    clock.t += 10
    # a token is back, but "c" must not overtake the held "b": it joins the digest
    assert not lim.offer("fill", "c", 3)
    (_, held), = lim.release(force=True)
    assert list(held.lines) == ["b", "c"] and held.count == 2


def test_the_global_cap_limits_every_kind_except_the_exempt_ones():
    clock = FakeClock()
    lim = RateLimiter({"fill": TokenBucket(10, 60, clock), "risk": TokenBucket(10, 60, clock)},
                      TokenBucket(3, 1, clock), exempt=frozenset({"halt", "stop"}))
    got = [lim.offer(k, k, 0) for k in ("fill", "risk", "fill", "risk", "fill")]
    assert got == [True, True, True, False, False]
    assert lim.offer("halt", "halt", 0) and lim.offer("stop", "stop", 0)  # never held by the global cap
    # a kind refused by the global cap kept its own token
    assert lim.buckets["risk"].tokens == 9 and lim.buckets["fill"].tokens == 8


def test_force_release_at_stop_hands_out_every_digest():
    clock = FakeClock()
    lim = RateLimiter({"fill": TokenBucket(1, 1, clock), "feed": TokenBucket(1, 1, clock)}, TokenBucket(100, 100, clock))
    for k in ("fill", "fill", "fill", "feed", "feed"):
        lim.offer(k, k, 0)
    assert lim.release() == []
    out = dict(lim.release(force=True))
    assert out["fill"].count == 2 and out["feed"].count == 1 and lim.held == {}


# -- messages and secrets ---------------------------------------------------------------------

HEAD = msg.RunHeader("84b0193e00b9", "sniper", ("paper",))


def test_fill_message_is_built_from_its_fields():
    a = msg.fill_alert(HEAD, msg.Scrubber([]), ticker="BTC-USD", side="BUY", size=D("0.0162"), price=D("61694.50"),
                       fee=D("0.4997"), liquidity="TAKER", tag="sniper-entry", liquidation=False, ts_ns=T0)
    assert a.kind == "fill" and a.level == "info"
    assert a.title == "perpbot fill: BUY 0.0162 BTC-USD @ 61694.50"
    assert a.body == ("BUY 0.0162 BTC-USD @ 61694.50 (fee 0.50 USD, taker, tag sniper-entry)\n"
                      "market time 2024-08-08 23:54:15 UTC\nrun 84b0193e00b9: sniper on paper")
    assert a.line == "23:54:15 BUY 0.0162 BTC-USD @ 61694.50"


def test_risk_halt_feed_daily_and_digest_messages():
    scrub = msg.Scrubber([])
    r = msg.risk_alert(HEAD, scrub, action="REJECT", policy="max_leverage", ticker="ETH-USD",
                       reason="leverage 6.1 > 5", ts_ns=T0)
    assert (r.kind, r.level, r.title) == ("risk", "warning", "perpbot risk: REJECT ETH-USD by max_leverage")
    h = msg.risk_alert(HEAD, scrub, action="HALT", policy="kill_switch", ticker="", reason="kill file", ts_ns=T0)
    assert (h.kind, h.level) == ("halt", "failure")
    d = msg.feed_down_alert(HEAD, scrub, ticker="ETH-USD", reason="stale data: last event 31.0s ago",
                            since_ns=T0, now_ns=T0 + 61 * NS)
    assert d.title == "perpbot feed down: ETH-USD for 61s" and "since 2024-08-08 23:54:15 UTC" in d.body
    day = msg.DayFigures("2024-08-08", D("9989.96"), D("-10.04"), D("-1.32"), D("10.98"), D(0), 29,
                         (("ETH-USD", D("-0.373")),))
    s = msg.daily_alert(HEAD, day, ts_ns=T0)
    assert s.title == "perpbot daily summary 2024-08-08: -10.04 USD"
    assert "equity 9,989.96 USD, day PnL -10.04 USD" in s.body and "open positions: ETH-USD -0.373" in s.body
    g = msg.digest_alert(HEAD, "fill", 12, T0, ["a", "b"], T0 + NS)
    assert g.title == "perpbot: 12 more fills (rate limit)"
    assert g.body.startswith("12 fills held back by the rate limit since 2024-08-08 23:54:15 UTC")


def test_free_text_is_scrubbed_of_every_known_secret_and_cut(monkeypatch):
    monkeypatch.setenv("DYDX_MNEMONIC", MNEMONIC)
    monkeypatch.setenv("BINANCE_API_KEY", "AKIA9SECRETKEY77")
    cfg = BotConfig(exchanges={"dydx": {"api_secret": "cfgSecret123456"}},
                    alerts={"urls": ["json://127.0.0.1:9/hook"]})
    svc = AlertService("tgram://123456789:AAH9tok3nSecret/5550001")
    scrub = msg.Scrubber(collect_secrets(cfg, [svc]))
    reason = (f"exchange said {MNEMONIC} / key AKIA9SECRETKEY77 / cfgSecret123456 / "
              f"words {' '.join(MNEMONIC.split()[4:7])} / 123456789:AAH9tok3nSecret")
    a = msg.risk_alert(HEAD, scrub, action="REJECT", policy="p", ticker="BTC-USD", reason=reason, ts_ns=T0)
    for secret in (MNEMONIC, "AKIA9SECRETKEY77", "cfgSecret123456", "123456789:AAH9tok3nSecret",
                   " ".join(MNEMONIC.split()[4:7])):
        assert secret not in a.body and secret not in a.title
    assert a.body.count("***") >= 5
    assert len(scrub.clean("x" * 500)) == msg.MAX_TEXT


# -- URLs and settings ------------------------------------------------------------------------


def test_url_labels_show_scheme_and_host_only():
    assert url_label("json://user:pw123456@127.0.0.1:8080/hook/T0KEN123") == "json://127.0.0.1:8080"
    assert url_label("mailtos://me:pass@smtp.example.com") == "mailtos://smtp.example.com"
    # these schemes put a token where the host goes
    assert url_label("tgram://123456789:AAHtok3n/42") == "tgram://***"
    assert url_label("discord://1234567890/abcDEF_ghiJKL") == "discord://***"
    assert {"pw123456", "T0KEN123"} <= url_secrets("json://user:pw123456@127.0.0.1:8080/hook/T0KEN123")
    assert "hook" not in url_secrets("json://127.0.0.1:8080/hook")  # a plain word is not a secret


def test_an_unknown_scheme_names_the_closest_supported_ones():
    schemes = supported_schemes()
    assert {"tgram", "slack", "discord", "mailto", "json", "jsons"} <= schemes
    with pytest.raises(ConfigError) as e:
        check_url("tgramm://123456789:AAHtok3n/42", "--alert #1", schemes)
    text = str(e.value)
    assert "unknown alert scheme 'tgramm'" in text and "tgram" in text.split("closest supported:")[1]
    assert "AAHtok3n" not in text and "\n" not in text
    with pytest.raises(ConfigError, match="apprise cannot read this tgram:// URL"):
        check_url("tgram://x", "--alert #1", schemes)


def test_the_url_file_must_be_owner_only(tmp_path):
    f = tmp_path / "alerts.txt"
    f.write_text("# my webhook\njson://127.0.0.1:9/hook\n\njsons://example.com/x\n")
    f.chmod(0o640)
    with pytest.raises(ConfigError, match=f"mode 0640.*Fix: chmod 600 {f}"):
        load_settings(BotConfig(alerts={"url_file": str(f)}))
    f.chmod(0o600)
    s = load_settings(BotConfig(alerts={"url_file": str(f), "urls": ["json://127.0.0.1:8/a"], "feed_down_s": "5"}))
    assert [x.label for x in s.services] == ["json://127.0.0.1:8", "json://127.0.0.1:9", "jsons://example.com"]
    assert s.params.feed_down_s == D(5)
    assert "127.0.0.1" not in repr(BotConfig(alerts={"urls": ["json://127.0.0.1:9/hook"]}))
    assert repr(s.services[0]) == "AlertService(json://127.0.0.1:8)"


# -- watches ---------------------------------------------------------------------------------------


def test_feed_watch_alerts_once_after_the_delay_and_once_on_recovery():
    w = FeedWatch(60 * NS)
    assert w.update(T0, {"ETH-USD": "stale data"}) == []
    assert w.update(T0 + 59 * NS, {"ETH-USD": "stale data"}) == []
    (down,) = w.update(T0 + 60 * NS, {"ETH-USD": "crossed book"})
    assert (down.kind, down.ticker, down.reason, down.since_ns) == ("down", "ETH-USD", "crossed book", T0)
    assert w.update(T0 + 90 * NS, {"ETH-USD": "stale data"}) == []  # once per spell
    (back,) = w.update(T0 + 95 * NS, {})
    assert (back.kind, back.since_ns, back.now_ns) == ("back", T0, T0 + 95 * NS)
    # a short spell says nothing, and a FeedStatus dates a spell from its own time
    assert w.update(T0 + 100 * NS, {"BTC-USD": "x"}) == [] and w.update(T0 + 101 * NS, {}) == []
    w.status("BTC-USD", False, "book gap", T0 + 200 * NS)
    (down,) = w.update(T0 + 260 * NS, {"BTC-USD": "book gap"})
    assert down.since_ns == T0 + 200 * NS


def test_day_tracker_closes_the_day_at_utc_midnight():
    t = DayTracker()
    start = Marks(D(10000), D(0), D(0), D(0), 0)
    t.begin(T0, start)
    assert not t.crossed(T0 + 300 * NS)  # 23:59:15
    midnight = (T0 // DAY_NS + 1) * DAY_NS
    assert t.crossed(midnight)
    label, delta = t.close_day(midnight, Marks(D("9990"), D("-2"), D("8"), D("0.5"), 12))
    assert label == "2024-08-08" and delta == Marks(D("9990"), D("-2"), D("8"), D("0.5"), 12)
    label, _ = t.close_day(midnight + 3 * DAY_NS, start)  # a gap in the data
    assert label == "2024-08-09 to 2024-08-11"


# -- delivery -------------------------------------------------------------------------------------


class Receiver:
    """A loopback webhook: records apprise's json:// POSTs; answers 500 to the first ``fail`` of them."""

    def __init__(self, fail: int = 0):
        self.bodies: list[dict] = []
        self.fail = fail
        self.calls = 0
        outer = self

        class H(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                outer.calls += 1
                if outer.calls <= outer.fail:
                    self.send_response(500)
                else:
                    outer.bodies.append(json.loads(body))
                    self.send_response(200)
                self.end_headers()

            def log_message(self, *a):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def logs():
    lines: list[str] = []
    sink = logger.add(lambda m: lines.append(str(m)), level="INFO")
    yield lines
    logger.remove(sink)


def _alert(i=0):
    return msg.Alert("fill", "info", f"title {i}", f"body {i}", f"line {i}", T0)


def test_a_failed_send_is_retried_with_apprise_then_delivered():
    rx = Receiver(fail=2)
    try:
        w = ServiceWorker(AlertService(f"json://127.0.0.1:{rx.port}/hook"), msg.Scrubber([]), retries=3,
                          backoff_s=D("0.01"))
        w.start()
        assert w.put(_alert(1))
        w.finish()
        assert w.join(20) == 0
    finally:
        rx.close()
    assert rx.calls == 3 and w.sent == 1 and w.failed == 0
    assert rx.bodies == [{"version": "1.0", "title": "title 1", "message": "body 1", "attachments": [], "type": "info"}]


def test_a_send_that_keeps_failing_is_logged_with_the_service_label_only(logs):
    rx = Receiver(fail=100)
    url = f"json://hookuser:Hunter2Secret@127.0.0.1:{rx.port}/hook/T0KENabc123"
    try:
        w = ServiceWorker(AlertService(url), msg.Scrubber(url_secrets(url)), retries=2, backoff_s=D(0))
        w.start()
        w.put(_alert(2))
        w.finish()
        assert w.join(20) == 0
    finally:
        rx.close()
    assert rx.calls == 3 and w.failed == 1
    (line,) = [x for x in logs if "given up" in x]
    assert f"alert fill to json://127.0.0.1:{rx.port} failed after 3 attempt(s)" in line
    assert "Hunter2Secret" not in line and "T0KENabc123" not in line and "hookuser" not in line


def test_sending_never_blocks_the_caller_and_a_full_queue_says_so():
    release = threading.Event()
    seen = []

    def blocking_sender(service):
        def send(alert):
            release.wait(10)  # a service that hangs (until the test lets it go)
            seen.append(alert.title)
            return True, ""
        return send

    d = Dispatcher([AlertService("json://127.0.0.1:9/a")], msg.Scrubber([]), retries=0, backoff_s=D(0),
                   queue_size=2, sender=blocking_sender)
    d.start()
    # the worker holds alert 0 in flight; the queue takes two more, then refuses without blocking
    results = [d.put(_alert(0))]
    while d.workers[0].pending():
        threading.Event().wait(0.01)
    results += [d.put(_alert(i)) for i in (1, 2, 3)]
    assert results == [True, True, True, False]
    release.set()
    d.close(20)
    assert seen == ["title 0", "title 1", "title 2"]


def test_without_a_url_the_plugin_stays_idle():
    s = load_settings(BotConfig(alerts={"feed_down_s": "30"}))
    assert s.services == () and s.params.feed_down_s == D(30)


def test_the_demo_receiver_prints_what_apprise_posts_and_refuses_a_busy_port(capsys):
    from perpbot.plugins.alerts.receiver import handler, main
    from perpbot.plugins.alerts.sender import apprise_sender

    out: list[str] = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler(out.append))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    try:
        send = apprise_sender(AlertService(f"json://127.0.0.1:{port}/alerts"))
        assert send(msg.Alert("risk", "warning", "perpbot risk: REJECT", "REJECT ETH-USD: why", "x")) == (True, "")
        assert main([f"127.0.0.1:{port}"]) == 2
    finally:
        server.shutdown()
        server.server_close()
    assert out == ["--- /alerts\n[warning] perpbot risk: REJECT\nREJECT ETH-USD: why\n"]
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"error: cannot listen on 127.0.0.1:{port}: ")


def test_alert_flags_and_the_alerts_table_merge_and_validate(tmp_path):
    from perpbot import cli
    from perpbot.core.config import load_config

    (tmp_path / "urls.txt").write_text("json://127.0.0.1:9/b\n")
    cfg_file = tmp_path / "perpbot.toml"
    cfg_file.write_text('[alerts]\nurls = ["json://127.0.0.1:9/a"]\nurl_file = "urls.txt"\nfeed_down_s = 30\n')
    assert load_config(cfg_file).alerts["url_file"] == str(tmp_path / "urls.txt")  # relative to the file
    opts = {k: None for k in ("exchange", "strategy", "ticker", "feed", "data", "speed", "param", "collateral")}
    cfg = cli.build_config({**opts, "config": cfg_file, "alert": ["json://127.0.0.1:9/c"],
                            "alert_param": ["feed_down_s=45", "fill_burst=1"]})
    assert cfg.alerts == {"urls": ["json://127.0.0.1:9/a", "json://127.0.0.1:9/c"], "feed_down_s": "45",
                          "url_file": str(tmp_path / "urls.txt"), "fill_burst": "1"}
    cfg = cli.build_config({**opts, "config": None, "alert_file": tmp_path / "other.txt"})
    assert cfg.alerts == {"url_file": str(tmp_path / "other.txt")}
    cfg_file.write_text('[alerts]\nurls = [1, 2]\n')
    with pytest.raises(ConfigError, match=r"\[alerts\] urls: expected a list of apprise URLs"):
        load_config(cfg_file)
    with pytest.raises(ConfigError, match="--alert-param: expected key=value"):
        cli.build_config({**opts, "config": None, "alert_param": ["feed_down_s"]})
