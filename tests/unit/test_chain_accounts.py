import pytest

from fedchain.chain.accounts import dev_account, from_keystore, resolve_account, write_keystore
from fedchain.errors import ConfigError


def test_dev_accounts_match_anvil_defaults():
    assert dev_account(0).address == "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
    assert dev_account(1).address == "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"


def test_keystore_round_trip_with_password_from_environment(tmp_path, monkeypatch):
    path = write_keystore(dev_account(3), tmp_path / "key.json", "s3cret")
    monkeypatch.setenv("FEDCHAIN_KEYSTORE_PASSWORD", "s3cret")
    assert from_keystore(path).address == dev_account(3).address


def test_keystore_wrong_password_is_a_clear_error(tmp_path, monkeypatch):
    path = write_keystore(dev_account(3), tmp_path / "key.json", "s3cret")
    monkeypatch.setenv("FEDCHAIN_KEYSTORE_PASSWORD", "nope")
    with pytest.raises(ConfigError, match="wrong password"):
        from_keystore(path)


def test_keystore_without_password_names_the_variable(tmp_path, monkeypatch):
    path = write_keystore(dev_account(3), tmp_path / "key.json", "s3cret")
    monkeypatch.delenv("FEDCHAIN_KEYSTORE_PASSWORD", raising=False)
    with pytest.raises(ConfigError) as err:
        from_keystore(path)
    assert "FEDCHAIN_KEYSTORE_PASSWORD" in err.value.hint


def test_resolve_account_requires_exactly_one_source():
    with pytest.raises(ConfigError, match="no signing key"):
        resolve_account()
    with pytest.raises(ConfigError, match="only one"):
        resolve_account(dev_index=1, private_key="0x" + "11" * 32)


def test_secure_keys_without_cryptography_name_the_package_and_the_fix(monkeypatch):
    import sys

    import pytest

    from fedchain.chain.accounts import dev_account, secure_keys
    from fedchain.errors import ConfigError

    for name in [m for m in sys.modules if m == "cryptography" or m.startswith("cryptography.")]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "cryptography", None)
    with pytest.raises(ConfigError) as exc:
        secure_keys(dev_account(1))
    assert "cryptography" in exc.value.message and "fedchain[node]" in (exc.value.hint or "")
