"""A proof's jwk in one encoding only (RFC 7518 §6.2.1.2-3): EC coordinates of the curve's full
size, base64url without padding. Another spelling of the same key would have another RFC 7638
thumbprint, so one key would answer to two cnf.jkt. Tokens from oidc-provider (its dPoP feature),
bound to the thumbprint of the spelling the proof carries, so that only the proof's check can
refuse; proofs made here with real keys (tests/integration/dpop.py)."""
import pytest
import requests

from dpop import DPoPKey, b64url
from httpd import challenges, protected

PAGE = "/protected/index.html"


def short_key(member):
    """A P-256 key whose coordinate member has a leading zero byte, sent without it."""
    for _ in range(20000):
        key = DPoPKey()
        nums = key.key.public_key().public_numbers()
        value = nums.x if member == "x" else nums.y
        if value < 1 << 248:
            key.jwk = dict(key.jwk, **{member: b64url(value.to_bytes(31, "big"))})
            return key
    raise AssertionError("no key with a leading zero byte")


def respelled(member, how):
    key = DPoPKey()
    text = key.jwk[member]
    assert len(text) == 43                       # 32 bytes: two spare bits in the last digit
    if how == "padded":
        key.jwk = dict(key.jwk, **{member: text + "="})
    else:
        alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
        last = alphabet[alphabet.index(text[-1]) + 1]   # a spare bit set: the same 32 bytes
        key.jwk = dict(key.jwk, **{member: text[:-1] + last})
    return key


@pytest.mark.parametrize("make", [
    pytest.param(lambda: short_key("x"), id="x-31-bytes"),
    pytest.param(lambda: short_key("y"), id="y-31-bytes"),
    pytest.param(lambda: respelled("x", "padded"), id="x-padded"),
    pytest.param(lambda: respelled("y", "spare-bit"), id="y-spare-bit"),
])
def test_another_spelling_of_a_key_is_an_invalid_proof(httpd, oidc, make):
    key = make()
    token = oidc.mint_access(sub="dpop-user", jkt=key.jkt)
    httpd.start(protected("/protected/", oidc))
    r = requests.get(httpd.url(PAGE), timeout=30, allow_redirects=False,
                     headers={"Authorization": f"DPoP {token}",
                              "DPoP": key.proof("GET", httpd.url(PAGE), token)})
    assert r.status_code == 401
    dpop = [c for c in challenges(r) if c.startswith("DPoP")]
    assert dpop and 'error="invalid_dpop_proof"' in dpop[0], challenges(r)
    assert "OT0701: DPoP proof refused: its jwk lacks a member, has one that is not base64url" \
        in httpd.error_log()
