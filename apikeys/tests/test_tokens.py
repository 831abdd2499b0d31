import re

import pytest

from apikeys import tokens


def test_key_has_prefix_public_id_secret_and_checksum():
    raw = tokens.generate("AbCdEfGh1234")
    assert re.fullmatch(r"jwl_AbCdEfGh1234_[0-9A-Za-z]{49}", raw)
    assert len(raw) == tokens.KEY_LENGTH == 66


def test_generated_keys_parse_to_their_public_id():
    raw = tokens.generate("AbCdEfGh1234")
    assert tokens.parse(raw) == tokens.ParsedKey(public_id="AbCdEfGh1234")


def test_secret_part_differs_every_time():
    assert len({tokens.generate("AbCdEfGh1234") for _ in range(50)}) == 50


def test_secret_encodes_at_least_256_bits():
    assert 62**tokens.SECRET_LENGTH >= 2**256
    assert tokens.SECRET_BITS == 256


def _swap_first_differing_pair(raw: str, *, start: int) -> str:
    """`raw` with two neighbouring, different characters swapped (swapping equal ones would change nothing)."""
    i = next(i for i in range(start, len(raw) - 1) if raw[i] != raw[i + 1])
    return raw[:i] + raw[i + 1] + raw[i] + raw[i + 2 :]


@pytest.mark.parametrize(
    "mangle",
    [
        lambda raw: raw[:-1],  # truncated
        lambda raw: raw + "x",  # too long
        lambda raw: raw[:20] + ("a" if raw[20] != "a" else "b") + raw[21:],  # one character mistyped
        lambda raw: _swap_first_differing_pair(raw, start=30),  # two characters swapped
        lambda raw: "jwx_" + raw[4:],  # wrong prefix
        lambda raw: raw.replace("_", "-"),
        lambda raw: "",
    ],
)
def test_mistyped_or_truncated_keys_fail_the_checksum(mangle):
    raw = tokens.generate("AbCdEfGh1234")
    mangled = mangle(raw)
    assert mangled != raw
    assert tokens.parse(mangled) is None


def test_hash_is_hmac_sha256_hex_and_verifies_in_constant_time(settings):
    settings.APIKEYS_PEPPER = "pepper-one"
    raw = tokens.generate("AbCdEfGh1234")
    digest = tokens.key_hash(raw)
    assert re.fullmatch(r"[0-9a-f]{64}", digest)
    assert raw not in digest
    assert tokens.matches(raw, digest)
    assert not tokens.matches(tokens.generate("AbCdEfGh1234"), digest)


def test_a_different_pepper_gives_a_different_hash(settings):
    raw = tokens.generate("AbCdEfGh1234")
    settings.APIKEYS_PEPPER = "pepper-one"
    first = tokens.key_hash(raw)
    settings.APIKEYS_PEPPER = "pepper-two"
    assert tokens.key_hash(raw) != first


def test_unset_pepper_is_derived_from_secret_key(settings):
    raw = tokens.generate("AbCdEfGh1234")
    settings.APIKEYS_PEPPER = ""
    settings.SECRET_KEY = "secret-a"
    first = tokens.key_hash(raw)
    assert tokens.key_hash(raw) == first
    settings.SECRET_KEY = "secret-b"
    assert tokens.key_hash(raw) != first
