"""Permissioned trading keys: dYdX ``x/accountplus`` authenticators, read, built and checked here.

A trading key is a second secp256k1 key that the main account authorises, on chain, to
sign only some messages. The main wallet adds an authenticator (``MsgAddAuthenticator``,
v4-chain ``proto/dydxprotocol/accountplus/tx.proto``); the chain gives it a global id
(``protocol/x/accountplus/keeper/authenticators.go``: ``AddAuthenticator`` takes the next
id of one counter shared by all accounts). A transaction signed by the trading key names
that id in its ``TxExtension.selected_authenticators`` (one id per message; dydx-v4-client
1.1.5 ``node/builder.py`` ``TxOptions`` fills it), and the ante handler runs the
authenticator instead of the account's own key (``protocol/x/accountplus/ante/ante.go``).

The authenticator types (v4-chain ``protocol/x/accountplus/authenticator/*.go``, main
@ ``84d4664``) and how :meth:`AuthNode.refusal` mirrors them:

- ``SignatureVerification``: config = the 33-byte compressed public key; the tx must be
  signed by it (``signature_authenticator.go``).
- ``MessageFilter``: config = type URLs separated by ``,``; the message's type URL must be
  one of them (``message_filter.go``).
- ``ClobPairIdFilter`` / ``SubaccountFilter``: config = numbers separated by ``,``; every
  clob pair id (subaccount number) of a ``MsgPlaceOrder`` / ``MsgCancelOrder`` /
  ``MsgBatchCancel`` must be listed; other messages are not looked at
  (``clob_pair_id_filter.go``, ``subaccount_filter.go``; a later branch makes the clob
  filter refuse non-clob messages: keys built here always carry a ``MessageFilter``, which
  decides those first).
- ``AllOf`` / ``AnyOf``: config = a JSON list of ``{"type", "config"}`` with ``config``
  base64 (Go ``[]byte`` in JSON), at least 2 entries (``all_of.go``, ``any_of.go``,
  ``composite.go``); all / any of them must pass.

The trading key built by ``runbot.py dydx add-trading-key`` is
``AllOf[SignatureVerification(key), MessageFilter(place, cancel, batch cancel),
ClobPairIdFilter(...)?, SubaccountFilter(...)?]``; the data must stay within 1024 bytes
(``types/message_add_authenticator.go`` ``AUTHENTICATOR_DATA_MAX_LENGTH``).

The key file (``--trading-key-file``) is JSON, owner-only (mode 600; anything looser is
refused with the ``chmod`` to run)::

    {"kind": "dydx-trading-key", "address": "dydx1<main account>", "authenticator_id": 7,
     "chain_id": "dydx-testnet-4", "private_key": "<64 hex digits>"}
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from pathlib import Path
from typing import Iterable, Sequence

import attrs

from perpbot.core.errors import ConfigError, SecretError
from perpbot.core.secrets import check_owner_only

MSG_PLACE_ORDER = "/dydxprotocol.clob.MsgPlaceOrder"
MSG_CANCEL_ORDER = "/dydxprotocol.clob.MsgCancelOrder"
MSG_BATCH_CANCEL = "/dydxprotocol.clob.MsgBatchCancel"
MSG_CREATE_TRANSFER = "/dydxprotocol.sending.MsgCreateTransfer"
#: what a trading key may sign: order placement and cancellation (single and batch)
TRADING_MESSAGES = (MSG_PLACE_ORDER, MSG_CANCEL_ORDER, MSG_BATCH_CANCEL)
#: the messages the clob-pair and subaccount filters look at
CLOB_MESSAGES = frozenset(TRADING_MESSAGES)
#: registered authenticator types (v4-chain ``protocol/app/app.go``, ``AuthenticatorManager``)
TYPES = ("AllOf", "AnyOf", "SignatureVerification", "MessageFilter", "ClobPairIdFilter", "SubaccountFilter")
#: ``AUTHENTICATOR_DATA_MAX_LENGTH`` (v4-chain ``protocol/x/accountplus/types/message_add_authenticator.go``)
MAX_DATA_BYTES = 1024
KEY_FILE_KIND = "dydx-trading-key"


class AuthenticatorFormatError(ValueError):
    """An authenticator's stored config cannot be read (bad JSON, base64 or number)."""


@attrs.frozen
class AuthNode:
    """One authenticator (a leaf, or a composite with ``children``), as the chain stores it.

    ``type`` is one of :data:`TYPES`; ``config`` the raw bytes of a leaf (empty for a
    composite). The parsed leaf values are ``pubkey`` (SignatureVerification),
    ``messages`` (MessageFilter) and ``numbers`` (ClobPairIdFilter, SubaccountFilter).
    """

    type: str
    config: bytes = b""
    children: tuple["AuthNode", ...] = ()
    pubkey: bytes = b""
    messages: frozenset = frozenset()
    numbers: frozenset = frozenset()

    def refusal(self, msg_type: str, clob_pair_ids: Sequence[int] = (), subaccount: int | None = None,
                pubkey: bytes | None = None) -> str | None:
        """Why this authenticator would refuse the message, or None when it allows it.

        :param msg_type: the message's type URL, e.g. :data:`MSG_PLACE_ORDER`.
        :param clob_pair_ids: the clob pair ids the message names (a batch cancel: several).
        :param subaccount: the subaccount number it acts on (None: not a clob message).
        :param pubkey: the signing key's compressed public key (None: not checked).
        :returns: one short reason naming the failing filter, in the chain's terms.
        """
        t = self.type
        if t == "SignatureVerification":
            if pubkey is not None and pubkey != self.pubkey:
                return f"SignatureVerification: signed by key {pubkey.hex()[:16]}..., not {self.pubkey.hex()[:16]}..."
            return None
        if t == "MessageFilter":
            if msg_type not in self.messages:
                return f"MessageFilter allows only {', '.join(sorted(self.messages))}, not {msg_type}"
            return None
        if t in ("ClobPairIdFilter", "SubaccountFilter"):
            if msg_type not in CLOB_MESSAGES:
                return None
            values = list(clob_pair_ids) if t == "ClobPairIdFilter" else ([] if subaccount is None else [subaccount])
            what = "clob pair id" if t == "ClobPairIdFilter" else "subaccount"
            for v in values:
                if int(v) not in self.numbers:
                    return f"{t} allows {what}s {_nums(self.numbers)}, not {v}"
            return None
        if t == "AllOf":
            for child in self.children:
                reason = child.refusal(msg_type, clob_pair_ids, subaccount, pubkey)
                if reason:
                    return reason
            return None
        if t == "AnyOf":
            reasons = [child.refusal(msg_type, clob_pair_ids, subaccount, pubkey) for child in self.children]
            if all(reasons):
                return "AnyOf: every branch refuses (" + "; ".join(str(r) for r in reasons) + ")"
            return None
        return f"unknown authenticator type {t}"

    def allows(self, msg_type: str, clob_pair_ids: Sequence[int] = (), subaccount: int | None = None,
               pubkey: bytes | None = None) -> bool:
        """True when :meth:`refusal` finds nothing (same arguments)."""
        return self.refusal(msg_type, clob_pair_ids, subaccount, pubkey) is None

    def signature_keys(self) -> list[bytes]:
        """Every public key a SignatureVerification in this tree names."""
        if self.type == "SignatureVerification":
            return [self.pubkey]
        return [k for c in self.children for k in c.signature_keys()]

    def describe(self) -> str:
        """A one-line summary, e.g. ``AllOf[key 02ab12..., messages MsgPlaceOrder|MsgCancelOrder,
        clob pairs 0,1]``."""
        t = self.type
        if t == "SignatureVerification":
            return f"key {self.pubkey.hex()[:12]}..."
        if t == "MessageFilter":
            return "messages " + "|".join(sorted(m.rsplit(".", 1)[-1] for m in self.messages))
        if t == "ClobPairIdFilter":
            return f"clob pairs {_nums(self.numbers)}"
        if t == "SubaccountFilter":
            return f"subaccounts {_nums(self.numbers)}"
        return f"{t}[" + ", ".join(c.describe() for c in self.children) + "]"


def _nums(values: Iterable[int]) -> str:
    return ",".join(str(v) for v in sorted(values))


def _numbers(config: bytes, t: str) -> frozenset:
    out = set()
    for part in config.decode("utf-8", "replace").split(","):
        try:
            n = int(part)
        except ValueError:
            raise AuthenticatorFormatError(f"{t}: {part!r} is not a number") from None
        if not 0 <= n < 2 ** 32:
            raise AuthenticatorFormatError(f"{t}: {n} is not a uint32")
        out.add(n)
    return frozenset(out)


def parse_authenticator(auth_type: str, config: bytes) -> AuthNode:
    """Read an authenticator as the chain stores it (``AccountAuthenticator.type/.config``).

    :raises AuthenticatorFormatError: unknown type, bad JSON/base64/number, a composite with
        fewer than 2 entries, a public key that is not 33 bytes.
    """
    t = str(auth_type)
    if t not in TYPES:
        raise AuthenticatorFormatError(f"unknown authenticator type {t!r} (known: {', '.join(TYPES)})")
    config = bytes(config)
    if t in ("AllOf", "AnyOf"):
        try:
            entries = json.loads(config.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise AuthenticatorFormatError(f"{t}: config is not a JSON list") from None
        if not isinstance(entries, list) or len(entries) < 2:
            raise AuthenticatorFormatError(f"{t}: needs at least 2 sub-authenticators")
        children = []
        for e in entries:
            if not isinstance(e, dict) or "type" not in e or "config" not in e:
                raise AuthenticatorFormatError(f"{t}: entry {e!r} lacks type/config")
            raw = e["config"]
            try:
                sub = base64.b64decode(raw, validate=True) if isinstance(raw, str) else bytes(raw)
            except (binascii.Error, ValueError, TypeError):
                raise AuthenticatorFormatError(f"{t}: a sub-authenticator config is not base64") from None
            children.append(parse_authenticator(str(e["type"]), sub))
        return AuthNode(t, b"", tuple(children))
    if t == "SignatureVerification":
        if len(config) != 33:
            raise AuthenticatorFormatError(f"SignatureVerification: public key of {len(config)} bytes, expected 33")
        return AuthNode(t, config, pubkey=config)
    if t == "MessageFilter":
        return AuthNode(t, config, messages=frozenset(config.decode("utf-8", "replace").split(",")))
    return AuthNode(t, config, numbers=_numbers(config, t))


def trading_authenticator(pubkey: bytes, *, clob_pair_ids: Sequence[int] | None = None,
                          subaccounts: Sequence[int] | None = None, allow_transfers: bool = False):
    """The authenticator of a trading key, as dydx-v4-client 1.1.5 objects
    (``dydx_v4_client.node.authenticators.Authenticator``; ``NodeClient.add_authenticator``
    sends it).

    :param pubkey: the trading key's 33-byte compressed public key.
    :param clob_pair_ids: limit orders to these markets (None: every market).
    :param subaccounts: limit orders to these subaccount numbers (None: every subaccount).
    :param allow_transfers: also allow ``MsgCreateTransfer`` (collateral moves for isolated
        markets). Risky: a transfer may name ANY recipient subaccount.
    :raises ConfigError: a bad key, an empty list, or data over 1024 bytes.
    """
    from dydx_v4_client.node.authenticators import Authenticator, AuthenticatorType

    if len(pubkey) != 33:
        raise ConfigError(f"trading key: public key of {len(pubkey)} bytes, expected 33 (compressed secp256k1)")
    messages = list(TRADING_MESSAGES) + ([MSG_CREATE_TRANSFER] if allow_transfers else [])
    subs = [Authenticator.signature_verification(pubkey), Authenticator.message_filter(",".join(messages))]
    if clob_pair_ids is not None:
        if not clob_pair_ids:
            raise ConfigError("--markets: name at least one market")
        subs.append(Authenticator.clob_pair_id_filter(sorted(set(int(c) for c in clob_pair_ids))))
    if subaccounts is not None:
        if not subaccounts:
            raise ConfigError("--subaccounts: name at least one subaccount number")
        subs.append(Authenticator.subaccount_filter(sorted(set(int(s) for s in subaccounts))))
    auth = Authenticator.compose(AuthenticatorType.AllOf, subs)
    if len(auth.config) > MAX_DATA_BYTES:
        raise ConfigError(f"trading key: authenticator data of {len(auth.config)} bytes is over the chain's "
                          f"{MAX_DATA_BYTES}; name fewer markets")
    return auth


# ---------------------------------------------------------------------------------- key file


@attrs.frozen(repr=False)
class TradingKey:
    """A trading key loaded from its file: the MAIN account it trades for, the authenticator
    id, the chain id, and the private key (hidden: ``repr`` never shows it)."""

    address: str
    authenticator_id: int
    chain_id: str
    _private_hex: object = attrs.field(alias="private_hex")  # a secrets.Secret

    def __repr__(self) -> str:
        return f"TradingKey(address={self.address}, authenticator_id={self.authenticator_id}, chain_id={self.chain_id})"

    def key_pair(self):
        """The dydx-v4-client ``KeyPair`` of the trading key.

        :raises SecretError: the private key is not valid hex / not a valid secp256k1 key.
        """
        from dydx_v4_client.key_pair import KeyPair

        failure = None
        try:
            pair = KeyPair.from_hex(self._private_hex.reveal())
        except Exception as exc:  # noqa: BLE001 - replaced by a line that cannot carry the key
            failure = type(exc).__name__
        if failure is not None:
            raise SecretError(f"trading key: the private key is not a valid secp256k1 key ({failure})")
        return pair

    @property
    def public_key(self) -> bytes:
        """The 33-byte compressed public key."""
        return self.key_pair().public_key_bytes


def check_key_file_mode(path: Path) -> None:
    """Refuse a key file that is not a regular file of ours with no group/other bits
    (:func:`perpbot.core.secrets.check_owner_only`).

    :raises SecretError: one line naming the file and, for loose permissions, the
        ``chmod 600`` to run.
    """
    check_owner_only(path, "trading-key file")


def load_trading_key(path: Path | str) -> TradingKey:
    """Read and check a trading-key file (format in the module docstring).

    :raises SecretError: a loose mode, a missing/unreadable file, bad JSON, a missing or
        wrong field (the message names the field, never the key).
    """
    from perpbot.exchanges.dydx.secrets import Secret

    p = Path(path).expanduser()
    check_key_file_mode(p)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        raise SecretError(f"trading-key file {p}: not a JSON trading-key file") from None
    if not isinstance(data, dict) or data.get("kind") != KEY_FILE_KIND:
        raise SecretError(f"trading-key file {p}: kind must be {KEY_FILE_KIND!r}")
    addr = data.get("address")
    if not isinstance(addr, str) or not addr.startswith("dydx1"):
        raise SecretError(f"trading-key file {p}: address must be a dydx1... address, got {addr!r}")
    auth_id = data.get("authenticator_id")
    if isinstance(auth_id, bool) or not isinstance(auth_id, int) or auth_id < 0:
        raise SecretError(f"trading-key file {p}: authenticator_id must be a whole number >= 0, got {auth_id!r}")
    chain_id = data.get("chain_id")
    if not isinstance(chain_id, str) or not chain_id:
        raise SecretError(f"trading-key file {p}: chain_id missing")
    hexkey = data.get("private_key")
    if not isinstance(hexkey, str) or len(hexkey) != 64 or any(c not in "0123456789abcdefABCDEF" for c in hexkey):
        raise SecretError(f"trading-key file {p}: private_key must be 64 hex digits")
    _register(hexkey)
    key = TradingKey(addr, auth_id, chain_id, private_hex=Secret(hexkey.lower()))
    key.key_pair()  # a bad key fails here, not at the first order
    return key


def _register(value: str) -> None:
    from perpbot.core.logs import register_secret

    register_secret(value)
    register_secret(value.lower())


def new_private_key_hex() -> str:
    """A fresh random secp256k1 private key, 64 hex digits (coincurve's generator, OS randomness)."""
    from coincurve import PrivateKey

    value = PrivateKey().to_hex()
    _register(value)
    return value


def write_trading_key(path: Path | str, *, address: str, authenticator_id: int, chain_id: str,
                      private_hex: str) -> Path:
    """Create the key file with mode 600 from the start (``O_EXCL``: never overwrites).

    :raises ConfigError: the file exists or cannot be created.
    """
    p = Path(path).expanduser()
    data = {"kind": KEY_FILE_KIND, "address": address, "authenticator_id": int(authenticator_id),
            "chain_id": chain_id, "private_key": private_hex}
    try:
        fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise ConfigError(f"--out: {p} exists; choose a new file") from None
    except OSError as exc:
        raise ConfigError(f"--out: {p} cannot be created: {exc.strerror}") from None
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=1)
        fh.write("\n")
        fh.flush()
        os.fsync(fh.fileno())
    return p


def key_allows(node: AuthNode | None, msg_type_url: str, clob_pair_id: int | None = None,
               subaccount: int | None = None, pubkey: bytes | None = None) -> bool:
    """Would the chain let this authenticator sign the message? (None: no trading key, the
    main key signs everything: True.) Arguments as :meth:`AuthNode.refusal`."""
    if node is None:
        return True
    ids = () if clob_pair_id is None else (int(clob_pair_id),)
    return node.allows(msg_type_url, ids, subaccount, pubkey)


def load_signer(settings):
    """What signs the bot's transactions: the trading key when ``settings.trading_key_file``
    is set (then no mnemonic is read at all), else the mnemonic
    (:func:`perpbot.exchanges.dydx.secrets.load_mnemonic`).

    :param settings: :class:`~perpbot.exchanges.dydx.config.DydxSettings`.
    :returns: a :class:`TradingKey` or a :class:`~perpbot.exchanges.dydx.secrets.Secret`.
    :raises SecretError: an unsafe/bad key file, a key for another chain or another
        ``dydx.address``, or no mnemonic.
    """
    from perpbot.exchanges.dydx.secrets import load_mnemonic

    if settings.trading_key_file is None:
        return load_mnemonic(settings.mnemonic_env, settings.mnemonic_file)
    key = load_trading_key(settings.trading_key_file)
    chain = settings.endpoints.chain_id
    if key.chain_id != chain:
        raise SecretError(f"trading-key file {settings.trading_key_file} is for chain {key.chain_id}, "
                          f"but the network's chain is {chain}")
    if settings.address and settings.address != key.address:
        raise SecretError(f"trading-key file {settings.trading_key_file} trades for {key.address}, "
                          f"but dydx.address is {settings.address}")
    return key


def transfer_refusal(gateway, sender: int, recipient: int) -> str | None:
    """The one line saying why ``gateway`` (a :class:`~perpbot.exchanges.dydx.node.NodeGateway`)
    cannot move collateral from subaccount ``sender`` to ``recipient`` with
    ``MsgCreateTransfer``, or None when it can (the mnemonic, or a key added with
    ``--allow-transfers``; such a key must send it with ``gateway.tx_options(wallet)``)."""
    reason = gateway.key_refusal(MSG_CREATE_TRANSFER)
    if reason is None:
        return None
    return (f"the trading key (authenticator {gateway.trading_key.authenticator_id}) cannot sign the "
            f"MsgCreateTransfer {sender} -> {recipient} ({reason}): pre-fund subaccount {recipient} with the main "
            f"wallet, or use a key added with --allow-transfers")


def guard_send_message(client, gateway) -> None:
    """Route ``client.send_message`` (dydx-v4-client 1.1.5 ``NodeClient``; its ``transfer``,
    ``deposit``, ``withdraw``, ``send_token`` ... all go through it, without ``TxOptions``)
    through the trading key: a message its authenticator would refuse raises
    :class:`~perpbot.exchanges.dydx.node.KeyNotAllowed` before anything is sent (for a
    transfer: with what to do instead); any other is broadcast with
    ``tx_options=gateway.tx_options(wallet)``. Installed by the gateway at connect when it
    signs with a trading key."""
    broadcast_message = client.broadcast_message

    async def send_message(wallet, message, mode=None):
        url = "/" + message.DESCRIPTOR.full_name
        hint = ("; pre-fund the child subaccount with the main wallet, or use a key added with --allow-transfers"
                if url == MSG_CREATE_TRANSFER else "")
        gateway.check_message(url, message.DESCRIPTOR.name, hint)
        kw = {} if mode is None else {"mode": mode}
        return await broadcast_message(wallet, message, tx_options=gateway.tx_options(wallet), **kw)

    client.send_message = send_message
