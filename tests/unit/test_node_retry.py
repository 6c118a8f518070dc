import httpx
import pytest

from fedchain.errors import ConfigError, RpcUnavailable
from node.retry import with_retry


def test_retries_transient_failures_with_backoff_and_messages():
    calls, sleeps, logs = [], [], []

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise RpcUnavailable("http://127.0.0.1:8545", "ConnectionError")
        return "ok"

    assert with_retry(flaky, "getRound", log=logs.append, sleep=sleeps.append) == "ok"
    assert sleeps == [0.5, 1.0]
    assert len(logs) == 2 and "getRound failed" in logs[0] and "retrying in 0.5 s (attempt 1/8)" in logs[0]
    assert "cannot reach the chain at http://127.0.0.1:8545" in logs[0]


def test_gives_up_after_the_last_attempt():
    sleeps = []

    def down():
        raise httpx.ConnectError("refused")

    with pytest.raises(httpx.ConnectError):
        with_retry(down, "upload", attempts=4, log=lambda m: None, sleep=sleeps.append)
    assert sleeps == [0.5, 1.0, 2.0]


def test_does_not_retry_permanent_errors():
    calls = []

    def bad():
        calls.append(1)
        raise ConfigError("bad key")

    with pytest.raises(ConfigError):
        with_retry(bad, "x", log=lambda m: None, sleep=lambda s: None)
    assert len(calls) == 1
