"""fedchain.address.to_checksum_address against the reference, eth_utils.to_checksum_address."""

from __future__ import annotations

import random

import pytest
from eth_utils import to_checksum_address as reference

from fedchain.address import to_checksum_address


def _cases() -> list[str]:
    rng = random.Random(55)
    out = ["0x" + "00" * 20, "0x" + "ff" * 20, "0x" + "52" * 20, "0xde709f2102306220921060314715629080e2fb77"]
    for _ in range(2000):
        raw = "".join(rng.choice("0123456789abcdef") for _ in range(40))
        # every case form: lower, upper, and a random mix (a wrong checksum is normalised, not refused)
        out += ["0x" + raw, "0x" + raw.upper(), "0x" + "".join(c.upper() if rng.random() < 0.5 else c for c in raw)]
    return out


def test_every_plain_address_in_any_case_gets_the_reference_checksum():
    for value in _cases():
        assert to_checksum_address(value) == reference(value), value


@pytest.mark.parametrize("value", ["52" * 20, b"\x52" * 20, "0X" + "52" * 20])
def test_other_accepted_forms_give_the_reference_answer(value):
    assert to_checksum_address(value) == reference(value)


@pytest.mark.parametrize("value", ["0x" + "52" * 19, "0x" + "52" * 21, "0x" + "5g" * 20, "0x" + "52" * 20 + " ", "",
                                   None, 12])
def test_invalid_input_gets_the_reference_error(value):
    with pytest.raises(Exception) as ours:
        to_checksum_address(value)
    with pytest.raises(Exception) as theirs:
        reference(value)
    assert type(ours.value) is type(theirs.value) and str(ours.value) == str(theirs.value)
