"""Issue 12.6: ``runbot.py dydx deposit | withdraw | transfer`` against the loopback fakes (the
client's own deposit / withdraw / transfer, amounts before and after, ``--live`` on mainnet,
one ``error:`` line for bad input)."""

from __future__ import annotations

import threading

import pytest
from typer.testing import CliRunner

import perpbot.exchanges.dydx.cli_funds  # noqa: F401 (attaches deposit / withdraw / transfer)
from perpbot.exchanges.dydx.cli_keys import DYDX_APP
from tests.exchanges.dydx.conftest import FAST  # noqa: F401 (fast settings for the fakes' users)

USDC_DENOM = "ibc/8E27BA2D5493AF5636760E354E46004562C46AB7EC0CC4C1CA14E9E20E2545B5"


@pytest.fixture
def env(monkeypatch):
    from tests.fakes import TEST_MNEMONIC

    monkeypatch.setenv("DYDX_MNEMONIC", TEST_MNEMONIC)
    from dydx_v4_client.wallet import Wallet

    from perpbot.exchanges.dydx.secrets import Secret, key_pair_from

    return Wallet(key_pair_from(Secret(TEST_MNEMONIC)), 0, 0).address


def _on_loop(dx, fn):
    done = threading.Event()
    dx.indexer.call_soon_threadsafe(lambda: (fn(), done.set()))
    assert done.wait(5)


def _figures(out: str) -> list[str]:
    """The before -> after lines of a command's output (log lines may be mixed in)."""
    return [ln for ln in out.splitlines() if ln.startswith(("  wallet", "  subaccount"))]


def _run(*args):
    r = CliRunner().invoke(DYDX_APP, list(args))
    return r.exit_code, r.output


def test_deposit_transfer_withdraw_show_amounts_before_and_after(env, tmp_path):
    from tests.fakes import FakeDydx

    address = env
    with FakeDydx(indexer_kwargs={"batch_interval": 0.02}) as dx:
        dx.node.balances[address] = {USDC_DENOM: 500_000_000}  # 500 USDC in the wallet
        _on_loop(dx, lambda: dx.indexer.ensure_subaccount(address, 0, "1000"))
        net = ["--network", "custom", "--indexer-rest", dx.rest_url, "--indexer-ws", dx.ws_url, "--node", dx.node_url]
        code, out = _run("deposit", "--amount", "120.5", *net)
        assert code == 0, out
        assert "deposit of 120.5 USDC" in out and "done" in out
        lines = _figures(out)
        assert lines[0].split()[-4:] == ["500", "->", "379.5", "USDC"]  # the wallet, before -> after
        assert lines[1].split() == ["subaccount", "0", "1000", "->", "1120.5", "USDC"]
        assert dx.node.balances[address][USDC_DENOM] == 379_500_000
        code, out = _run("transfer", "--amount", "20", "--from", "0", "--to", "128", *net)
        assert code == 0, out
        lines = _figures(out)
        assert lines[1].split() == ["subaccount", "0", "1120.5", "->", "1100.5", "USDC"]
        assert lines[2].split() == ["subaccount", "128", "0", "->", "20", "USDC"]
        assert dx.indexer.usdc_balance(address, 128) == 20
        code, out = _run("withdraw", "--amount", "100", *net)
        assert code == 0, out
        assert dx.node.balances[address][USDC_DENOM] == 479_500_000
        assert dx.indexer.usdc_balance(address, 0) == 1000.5
        # a withdrawal larger than the free collateral: one line, nothing sent
        n = len(dx.node.broadcasts)
        code, out = _run("withdraw", "--amount", "5000", *net)
        errors = [ln for ln in out.splitlines() if ln.startswith("error:")]
        assert code != 0 and len(errors) == 1 and errors[0].startswith("error: --amount 5000: more than the free "
                                                                      "collateral of subaccount 0")
        code, out = _run("deposit", "--amount", "1000", *net)
        assert code != 0 and "more than the wallet's 479.5 USDC" in out
        assert len(dx.node.broadcasts) == n
        kinds = [type(m).__name__ for r in dx.node.broadcasts for m in r.messages]
        assert kinds == ["MsgDepositToSubaccount", "MsgCreateTransfer", "MsgWithdrawFromSubaccount"]


@pytest.mark.parametrize("args, line", [
    (["withdraw", "--amount", "abc"], "error: --amount: 'abc' is not a number of USDC"),
    (["withdraw", "--amount", "0"], "error: --amount: '0' must be a positive number of USDC"),
    (["deposit", "--amount", "1.0000001"], "error: --amount: '1.0000001' has more than 6 decimals"),
    (["transfer", "--amount", "5", "--from", "0", "--to", "0"], "error: --to 0: the same subaccount as --from"),
    (["transfer", "--amount", "5", "--from", "0", "--to", "200000"], "error: --to: subaccount 200000 must be 0..128000"),
    (["deposit", "--amount", "5"], "error: this moves USDC on a dYdX mainnet account: pass --live to confirm"),
])
def test_bad_input_is_one_line(env, args, line):
    code, out = _run(*args)  # mainnet by default: refused before any connection
    assert code != 0 and out.strip() == line or out.startswith(line), out
    assert out.count("\n") == 1
