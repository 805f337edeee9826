"""The README stays true: its config example loads, and it names every hook."""

import re
from pathlib import Path

from perpbot.core import hookspecs
from perpbot.core.config import load_config

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def test_readme_config_example_loads(tmp_path):
    block = re.search(r"```toml\n(\[bot\].*?)```", README, re.S).group(1)
    path = tmp_path / "perpbot.toml"
    path.write_text(block)
    cfg = load_config(path)
    assert cfg.strategy == "sniper" and cfg.tickers == ("BTC-USD", "ETH-USD")
    assert "seed_thresholds" in cfg.risk_policies


def test_readme_names_every_hook():
    hooks = [n for n, f in vars(hookspecs).items() if callable(f) and hasattr(f, "perpbot_spec")]
    missing = [h for h in hooks if f"`{h}`" not in README]
    assert not missing, f"README does not mention hooks: {missing}"


def test_readme_setup_is_two_commands():
    setup = re.search(r"## Set-up \(two commands\).*?```bash\n(.*?)```", README, re.S).group(1)
    lines = [l for l in setup.splitlines() if l.strip()]
    assert len(lines) == 2
    assert "runbot.py --exchange paper --strategy sniper --ticker BTC,ETH" in lines[0]
    assert lines[1] == "python -m pytest"
    ci = (Path(__file__).resolve().parents[1] / ".ci" / "run").read_text()
    assert "\npython -m pytest\n" in ci  # CI runs exactly the README's test command
