"""Signing keys: a keystore file (password from the environment), a raw key, or an anvil dev account."""

from __future__ import annotations

import json
import os
from pathlib import Path

from eth_account import Account
from eth_account.signers.local import LocalAccount

from fedchain.errors import ConfigError

#: anvil's (and hardhat's) well-known development mnemonic. Only ever used for local dev chains.
DEV_MNEMONIC = "test test test test test test test test test test test junk"
PASSWORD_ENV = "FEDCHAIN_KEYSTORE_PASSWORD"

Account.enable_unaudited_hdwallet_features()


def dev_account(index: int) -> LocalAccount:
    if index < 0:
        raise ConfigError(f"dev account index must be >= 0, got {index}")
    return Account.from_mnemonic(DEV_MNEMONIC, account_path=f"m/44'/60'/0'/0/{index}")


def from_private_key(key: str) -> LocalAccount:
    try:
        return Account.from_key(key)
    except Exception as exc:
        raise ConfigError("the private key is not a valid 32-byte hex key", hint="pass 0x + 64 hex digits") from exc


def from_keystore(path: Path, password: str | None = None) -> LocalAccount:
    password = password if password is not None else os.environ.get(PASSWORD_ENV)
    if password is None:
        raise ConfigError(
            f"no password for keystore {path}", hint=f"set {PASSWORD_ENV} in the environment"
        )
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError as exc:
        raise ConfigError(f"keystore file {path} not found") from exc
    except (OSError, ValueError) as exc:
        raise ConfigError(f"keystore file {path} is not a JSON keystore ({exc})") from exc
    try:
        key = Account.decrypt(data, password)
    except ValueError as exc:
        raise ConfigError(f"cannot decrypt keystore {path}: wrong password?", hint=f"check {PASSWORD_ENV}") from exc
    return Account.from_key(key)


def write_keystore(account: LocalAccount, path: Path, password: str) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(Account.encrypt(account.key, password)))
    path.chmod(0o600)
    return path


def resolve_account(
    *, private_key: str | None = None, keystore: Path | None = None, dev_index: int | None = None,
    password: str | None = None,
) -> LocalAccount:
    """Pick exactly one key source; raise ConfigError naming the options otherwise."""
    given = [x is not None for x in (private_key, keystore, dev_index)]
    if sum(given) > 1:
        raise ConfigError("give only one of --private-key, --keystore and --dev-account")
    if private_key is not None:
        return from_private_key(private_key)
    if keystore is not None:
        return from_keystore(keystore, password)
    if dev_index is not None:
        return dev_account(dev_index)
    raise ConfigError(
        "no signing key given",
        hint="pass --keystore FILE (password in FEDCHAIN_KEYSTORE_PASSWORD), or --dev-account N on a local anvil chain",
    )


def secure_keys(account: LocalAccount) -> tuple[bytes, bytes]:
    """The node's X25519 key pair for secure aggregation, derived from its signing key
    (HKDF-SHA256(key, "fedchain/x25519/v1")): (private, public). The public half is what the
    registry holds as the node's ``publicKey``; the private half never leaves the node."""
    try:
        from fedchain.secure.keys import private_key_from_seed, public_key

        private = private_key_from_seed(bytes(account.key))
        return private, public_key(private)
    except ImportError as exc:  # the cryptography package: part of fedchain[node]
        raise ConfigError(f"secure aggregation needs the {exc.name or 'cryptography'} package, which is not installed",
                          hint="pip install 'fedchain[node]' (it pins cryptography)") from None
