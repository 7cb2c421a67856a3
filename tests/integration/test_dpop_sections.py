"""One URL, two DPoP lifetimes. The same URL can be served under two sections that set
OfftokDPoPMaxAge or OfftokClockSkew differently (an <If> block, IP-based virtual hosts of one
name): a proof recorded under the shorter lifetime must stay refused under the longer one, so the
replay table keeps every proof for the longest OfftokDPoPMaxAge + OfftokClockSkew + 1 in effect
anywhere (the defaults count only where the main server leaves a value unset). Tokens from
oidc-provider (its dPoP feature), proofs made here with a real key (tests/integration/dpop.py)."""
import os
import time

import requests

from dpop import bound, key  # noqa: F401 (fixtures)
from httpd import protected

PAGE = "/protected/index.html"
# The main server's values: a proof passes 1 s (plus the second it is in); with no <If> the
# replay table would keep it 2 s.
SHORT = "OfftokClockSkew 0\nOfftokDPoPMaxAge 1\n"
LONG_IF = """<If "%{HTTP:X-Long} == 'yes'">
        OfftokDPoPMaxAge 30
    </If>"""


def send(httpd, session, token, proof, long=False):
    headers = {"Authorization": f"DPoP {token}", "DPoP": proof}
    if long:
        headers["X-Long"] = "yes"
    return session.get(httpd.url(PAGE), timeout=30, allow_redirects=False, headers=headers)


def first_accepted(httpd, session, key, token):
    """A fresh proof sent until one is young enough when it arrives (a 1 s max age, a loaded
    machine): the proof accepted (200)."""
    deadline = time.monotonic() + 20
    proof = key.proof("GET", httpd.url(PAGE), token)
    while send(httpd, session, token, proof).status_code != 200:
        assert time.monotonic() < deadline, "no proof passed the 1 s max age"
        proof = key.proof("GET", httpd.url(PAGE), token)
    return proof


def test_a_proof_seen_under_the_shorter_lifetime_is_a_replay_under_the_longer(httpd, oidc, key,
                                                                             bound):
    """Under the <If> a proof passes until it is 30 s old; elsewhere until 1 s. A proof used
    outside the <If>, then 3 s later inside it (still young enough there), is a replay: the
    table kept it 31 s, not the 2 s of the section it passed under."""
    httpd.start(protected("/protected/", oidc, extra=LONG_IF), server=SHORT)
    with requests.Session() as s:
        proof = first_accepted(httpd, s, key, bound)
        time.sleep(3)
        # Too old outside the <If> now (the control: the lifetimes do differ) ...
        assert send(httpd, s, bound, proof).status_code == 401
        # ... and seen before inside it.
        again = send(httpd, s, bound, proof, long=True)
    assert again.status_code == 401, again.status_code
    assert "OT0703: DPoP proof refused: its jti was used before (a replay)" in httpd.error_log()
    # A fresh proof passes inside the <If>: the refusal above is the replay, nothing else.
    with requests.Session() as s:
        fresh = key.proof("GET", httpd.url(PAGE), bound)
        assert send(httpd, s, bound, fresh, long=True).status_code == 200


def test_the_defaults_count_only_where_the_main_server_leaves_a_value_unset(httpd, oidc, key,
                                                                            bound):
    """The main server sets both values, so the defaults (60 s, 30 s) are in effect nowhere and
    do not lengthen the records: a restart to a longer max age says it grows from 11 s, not 91.
    With the skew left unset it is in effect (30 s) and counts."""
    site = protected("/protected/", oidc)
    httpd.start(site, server="OfftokClockSkew 0\nOfftokDPoPMaxAge 10\n")
    httpd.render(site, server="OfftokClockSkew 0\nOfftokDPoPMaxAge 20\n")
    httpd.graceful()
    assert "OT0813: a DPoP proof may now pass for up to 21 s (OfftokDPoPMaxAge + " \
        "OfftokClockSkew + 1, was 11 s)" in httpd.error_log()
    httpd.render(site, server="OfftokDPoPMaxAge 20\n")
    httpd.graceful()
    assert "OT0813: a DPoP proof may now pass for up to 51 s (OfftokDPoPMaxAge + " \
        "OfftokClockSkew + 1, was 21 s)" in httpd.error_log()


def test_an_htaccess_file_cannot_lengthen_the_max_age(httpd, oidc, key, bound):
    """AllowOverrideList lets an .htaccess file use a directive whatever its context: there,
    OfftokDPoPMaxAge would let a directory accept a proof for longer than the replay table keeps
    it (its lifetime is counted when the configuration is read, before any .htaccess file). A
    proof used while the directory has none, then after its author writes one with a longer max
    age, would pass twice; the directive is refused there instead (500, as any .htaccess error)."""
    ht = os.path.join(httpd.root, "htdocs", "protected", ".htaccess")
    httpd.allow_errors(r"OfftokDPoPMaxAge cannot occur within htaccess files")
    httpd.start(protected("/protected/", oidc), server=SHORT + f"""
<Directory "{httpd.root}/htdocs/protected">
    AllowOverrideList OfftokDPoPMaxAge OfftokClockSkew
</Directory>
""")
    with requests.Session() as s:
        proof = first_accepted(httpd, s, key, bound)
        with open(ht, "w") as f:
            f.write("OfftokDPoPMaxAge 30\n")
        os.chmod(ht, 0o644)
        time.sleep(3)
        again = send(httpd, s, bound, proof)
    assert again.status_code == 500, again.status_code
    assert "OfftokDPoPMaxAge cannot occur within htaccess files" in httpd.error_log()
