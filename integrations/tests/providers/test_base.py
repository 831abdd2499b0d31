"""The helpers `integrations/providers/base.py` offers every provider's webhook verifier."""

from integrations.providers.base import hmac_sha256, signature_matches

# RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
RFC_4231_KEY, RFC_4231_DATA = "Jefe", b"what do ya want for nothing?"
RFC_4231_HEX = "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"


def test_hmac_sha256_is_the_rfc_4231_digest():
    assert hmac_sha256(RFC_4231_KEY, RFC_4231_DATA).hex() == RFC_4231_HEX


def test_any_expected_signature_may_match_any_received_one():
    assert signature_matches(expected=["old", "new"], received=["bad", "new"])
    assert signature_matches(expected=iter(["only"]), received=["only"])  # one pass over a generator is enough


def test_no_match_no_secret_or_no_signature_is_false():
    assert not signature_matches(expected=["a", "b"], received=["c"])
    assert not signature_matches(expected=[], received=["a"])
    assert not signature_matches(expected=["a"], received=[])


def test_a_non_ascii_received_signature_is_refused_not_an_error():
    assert not signature_matches(expected=["abc"], received=["äbc"])
