"""The test IdP itself (tests/node/idp.mjs run by idp.IdP): what the identity
tests rely on, checked against the real oidc-provider. No sluice build
needed. A relying party's checks here are done with python3-cryptography,
independently of sluice's verifier."""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import ssl
import time
import urllib.error
import urllib.request

import pytest

import idp as idp_mod
from idp import IdP, IdPError, TokenRequestError, b64u_decode, decode, generate_jwk


def served_key(idp: IdP, kid: str) -> dict:
    keys = [k for k in idp.served_jwks()["keys"] if k["kid"] == kid]
    assert len(keys) == 1, f"kid {kid} served {len(keys)} times"
    return keys[0]


@pytest.fixture(scope="module")
def own_idp(sandbox, test_ca):
    """An IdP of this module's own, for rotating keys and restarting without
    disturbing the session's."""
    why = idp_mod.unavailable()
    if why:
        pytest.skip(why)
    p = IdP(sandbox / "idp-selftest", test_ca,
            clients=[{"client_id": "rot-rs", "groups": ["g"]},
                     {"client_id": "rot-es", "alg": "ES256"}]).start()
    yield p
    p.stop()


def test_discovery_over_https_with_the_test_ca(idp):
    disc = idp.discovery()
    assert disc["issuer"] == idp.issuer
    assert idp.issuer.startswith("https://localhost:")
    assert disc["jwks_uri"] == idp.jwks_uri == f"{idp.issuer}/jwks"
    assert disc["token_endpoint"] == idp.token_endpoint
    assert "client_credentials" in disc["grant_types_supported"]
    keys = idp.served_jwks()["keys"]
    assert {(k["kty"], k["alg"]) for k in keys} == {("RSA", "RS256"), ("EC", "ES256")}
    assert not any("d" in k for k in keys), "private key material served"
    # The certificate really is checked: without the test CA, TLS fails.
    with pytest.raises(urllib.error.URLError) as e:
        urllib.request.urlopen(f"{idp.issuer}/.well-known/openid-configuration", timeout=5,
                               context=ssl.create_default_context())
    assert isinstance(e.value.reason, ssl.SSLCertVerificationError)


def test_rs256_token_header_and_claims(idp):
    before = int(time.time())
    tok = idp.token("sluicet-a")
    hdr, claims = decode(tok)
    assert hdr == {"alg": "RS256", "typ": "at+jwt", "kid": idp.kids["RS256"]}
    assert served_key(idp, hdr["kid"])["kty"] == "RSA"
    assert claims["iss"] == idp.issuer
    assert claims["aud"] == idp.audience == "urn:sluice"
    assert claims["sub"] == "sluicet-a" == claims["client_id"]
    assert claims["groups"] == ["data-readers", "orders-team"]
    assert before - 1 <= claims["iat"] <= time.time() + 1
    assert claims["exp"] - claims["iat"] == 7200
    assert claims["jti"]
    assert idp.verify(tok) == claims
    assert idp.tamper(tok, sub="sluicet-b") != tok
    with pytest.raises(IdPError, match="bad signature"):
        idp.verify(idp.tamper(tok, sub="sluicet-b"))


def test_es256_client_gets_es256(idp):
    for client, groups in (("sluicet-b", ["data-readers"]), ("sluicet-es", ["data-readers"])):
        tok = idp.token(client)
        hdr, claims = decode(tok)
        assert hdr["alg"] == "ES256" and hdr["kid"] == idp.kids["ES256"]
        assert served_key(idp, hdr["kid"])["crv"] == "P-256"
        assert len(b64u_decode(tok.split(".")[2])) == 64   # r||s, not DER
        assert claims["sub"] == client and claims["groups"] == groups
        assert idp.verify(tok)["sub"] == client


def test_short_lived_client_and_token_errors(idp):
    resp = idp.token_response("sluicet-short")
    assert resp["token_type"] == "Bearer" and resp["expires_in"] == 8
    _, claims = decode(resp["access_token"])
    assert claims["exp"] - claims["iat"] == 8
    # Another resource gives another audience (a real wrong-aud token).
    _, other = decode(idp.token("sluicet-a", resource="urn:elsewhere"))
    assert other["aud"] == "urn:elsewhere"
    with pytest.raises(TokenRequestError) as e:
        idp.token_response("sluicet-a", client_secret="not-the-secret")
    assert e.value.status == 401 and "invalid_client" in e.value.body


def test_oidc_keys(idp):
    assert idp.oidc_keys() == {"issuer": idp.issuer, "audience": "urn:sluice",
                               "ca_file": str(idp.ca_file), "algorithms": "RS256 ES256",
                               "leeway": "2s", "groups_claim": "groups"}
    assert idp.ca_file.is_file()


def test_rotation_is_live_and_changes_kids(own_idp):
    p = own_idp
    pid = p.pid
    old_kids = p.kids
    old_rs, old_es = p.token("rot-rs"), p.token("rot-es")

    new_kids = p.rotate_keys(keep_old=True)
    assert set(new_kids.values()).isdisjoint(old_kids.values())
    assert p.pid == pid, "rotation restarted the provider"
    served = {k["kid"] for k in p.served_jwks()["keys"]}
    assert served == set(old_kids.values()) | set(new_kids.values())
    assert decode(p.token("rot-rs"))[0]["kid"] == new_kids["RS256"]
    assert decode(p.token("rot-es"))[0]["kid"] == new_kids["ES256"]
    p.verify(old_rs), p.verify(old_es)          # old keys still published

    newest = p.rotate_keys(keep_old=False)
    assert {k["kid"] for k in p.served_jwks()["keys"]} == set(newest.values())
    for tok in (old_rs, old_es):
        with pytest.raises(IdPError, match="unknown kid"):
            p.verify(tok)
    fresh = p.token("rot-rs")
    assert decode(fresh)[0]["kid"] == newest["RS256"]
    p.verify(fresh)
    assert [k["kid"] for k in p.retired][:2] == [old_kids["RS256"], old_kids["ES256"]]


def test_restart_and_down_keep_issuer_and_keys(own_idp):
    p = own_idp
    issuer, kids = p.issuer, p.kids
    with p.down():
        assert not p.running()
        with pytest.raises(urllib.error.URLError):
            p.discovery()
    assert p.running() and p.issuer == issuer and p.kids == kids
    p.restart()
    assert p.issuer == issuer
    assert decode(p.token("rot-rs"))[0]["kid"] == kids["RS256"]


def test_forged_tokens(idp):
    c = idp.claims("sluicet-a")
    assert c["sub"] == "sluicet-a" and c["groups"] == ["data-readers", "orders-team"]
    assert c["iss"] == idp.issuer and c["aud"] == idp.audience and c["exp"] > time.time()

    # Signed with the IdP's real keys: a relying party accepts them.
    for alg in ("RS256", "ES256"):
        tok = idp.forge({}, c, key=alg)
        assert decode(tok) == ({"alg": alg, "typ": "at+jwt", "kid": idp.kids[alg]}, c)
        assert idp.verify(tok) == c

    # Overrides: None removes; a future nbf is refused by our verifier.
    assert "sub" not in idp.claims("sluicet-a", sub=None)
    with pytest.raises(IdPError, match="not yet valid"):
        idp.verify(idp.forge({}, idp.claims("sluicet-a", nbf=int(time.time()) + 3600)))
    with pytest.raises(IdPError, match="expired"):
        idp.verify(idp.forge({}, idp.claims("sluicet-a", exp=int(time.time()) - 10)))

    # alg none: header says none, signature empty.
    none = idp.forge({}, c, key=None)
    h, p, s = none.split(".")
    assert s == "" and decode(none)[0] == {"alg": "none", "typ": "at+jwt"}

    # HS256 with the RSA public key's PEM as the HMAC secret.
    pem = idp.public_pem("RS256")
    assert pem.startswith(b"-----BEGIN PUBLIC KEY-----")
    hs = idp.forge({}, c, key=pem)
    h, p, s = hs.split(".")
    assert decode(hs)[0] == {"alg": "HS256", "typ": "at+jwt"}
    assert b64u_decode(s) == hmac.new(pem, f"{h}.{p}".encode(), hashlib.sha256).digest()

    # Header members: added, and removed with None.
    crit = idp.forge({"crit": ["exp"], "kid": None}, c)
    assert decode(crit)[0] == {"alg": "RS256", "typ": "at+jwt", "crit": ["exp"]}

    # A key of the attacker's own, named by jku: a real signature, but not
    # under any key the IdP publishes.
    evil = generate_jwk("RS256")
    jku = idp.forge({"jku": "https://127.0.0.1:1/jwks.json"}, c, key=evil)
    assert decode(jku)[0]["kid"] == evil["kid"]
    assert idp_mod.verify_signature(evil, jku.rsplit(".", 1)[0].encode(),
                                    b64u_decode(jku.split(".")[2]))
    with pytest.raises(IdPError, match="unknown kid"):
        idp.verify(jku)
    # The same key posing under the IdP's kid: the signature does not verify.
    with pytest.raises(IdPError, match="bad signature"):
        idp.verify(idp.forge({"kid": idp.kids["RS256"]}, c, key=evil))

    # Truncated and replaced signatures, raw payloads, oversized tokens.
    good = idp.forge({}, c)
    sig = b64u_decode(good.split(".")[2])
    with pytest.raises(IdPError, match="bad signature"):
        idp.verify(idp.forge({}, c, signature=sig[:-8]))
    assert idp.forge({}, b"not json").split(".")[1] == base64.urlsafe_b64encode(b"not json").rstrip(b"=").decode()
    big = idp.forge({}, idp.claims("sluicet-a", pad="x" * 20000))
    assert len(big) > 20000 and idp.verify(big)["pad"] == "x" * 20000
    assert json.loads(b64u_decode(big.split(".")[0]))["alg"] == "RS256"
