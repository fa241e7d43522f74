"""A real OpenID Provider for the integration tests, and tokens good and bad.

Plain Python (no pytest here). IdP runs tests/node/idp.mjs (the npm package
oidc-provider 8.x, installed by scripts/lib/node.sh from the committed
lockfile) on 127.0.0.1 over HTTPS with a certificate from the session's
TestCA, issuing client-credentials JWT access tokens:

    idp = IdP(directory, test_ca, clients=[
        {"client_id": "sluicet-a", "groups": ["data-readers"], "alg": "RS256"},
        {"client_id": "sluicet-short", "ttl": 8},
    ]).start()
    tok = idp.token("sluicet-a")         # a real token, fetched over HTTPS
    idp.oidc_keys()                       # the keys of a sluice.conf [oidc]

A token's header is {"alg": "RS256" | "ES256", "typ": "at+jwt", "kid"}; its
claims are iss (idp.issuer), aud (idp.audience, "urn:sluice"), sub (the
client_id: oidc-provider names the client itself when no end user is
involved), client_id, groups (the client's list, under groups_claim), jti,
iat and exp = iat + the client's ttl (300 s unless set).

Keys live in <directory>/jwks.json (private JWKs, 0600), made here with
Debian's python3-cryptography: one RSA-2048 key (RS256) and one P-256 key
(ES256). rotate_keys() writes new ones first (the first key of each type
signs) and sends the provider SIGHUP; it swaps keys without closing its
listener, so an agent polling it never sees it down.

The forging helpers (claims, forge, tamper, generate_jwk, public_pem) make
the attack tokens: signed with the IdP's real private keys, with a key of
the test's own, with an HMAC secret, or not at all.
"""
from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import os
import secrets
import shutil
import signal
import ssl
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional, Union

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature, encode_dss_signature,
)

SRCDIR = Path(os.environ.get("SLUICE_SRCDIR") or Path(__file__).resolve().parents[2])
NODE_DIR = SRCDIR / "tests" / "node"
IDP_SCRIPT = NODE_DIR / "idp.mjs"
ALGORITHMS = ("RS256", "ES256")
DEFAULT_AUDIENCE = "urn:sluice"
DEFAULT_TTL = 300
_KTY = {"RS256": "RSA", "ES256": "EC"}

# The clients of the session's IdP (conftest's `idp` fixture): each client_id
# is also the name of the local account its tokens are for.
# The accounts' own clients issue 2-hour tokens, so a session outlives the
# 1-hour grants the tests ask for (a grant's TTL is capped by its session).
TEST_CLIENTS = (
    {"client_id": "sluicet-a", "groups": ["data-readers", "orders-team"], "alg": "RS256", "ttl": 7200},
    {"client_id": "sluicet-b", "groups": ["data-readers"], "alg": "ES256", "ttl": 7200},
    {"client_id": "sluicet-short", "groups": ["data-readers"], "alg": "RS256", "ttl": 8},
    {"client_id": "sluicet-es", "groups": ["data-readers"], "alg": "ES256"},
)


def node_binary() -> Optional[str]:
    return shutil.which("node") or (os.access("/usr/bin/node", os.X_OK) and "/usr/bin/node") or None


def unavailable() -> Optional[str]:
    """Why the IdP cannot run here (for a skip message), or None."""
    if node_binary() is None:
        return "node is not installed (scripts/check installs Debian's nodejs)"
    if not (NODE_DIR / "node_modules" / "oidc-provider" / "package.json").is_file():
        return f"{NODE_DIR}/node_modules is missing (scripts/check runs npm ci there)"
    return None


# --- JOSE helpers (python3-cryptography) ----------------------------------------

def b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64u_decode(s: str) -> bytes:
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def _int_b64u(n: int, length: Optional[int] = None) -> str:
    return b64u(n.to_bytes(length or (n.bit_length() + 7) // 8, "big"))


def _b64u_int(s: str) -> int:
    return int.from_bytes(b64u_decode(s), "big")


def _json(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def jwk_thumbprint(jwk: Mapping[str, str]) -> str:
    """RFC 7638 thumbprint (SHA-256), the kid used for generated keys."""
    members = ("e", "kty", "n") if jwk["kty"] == "RSA" else ("crv", "kty", "x", "y")
    canon = json.dumps({m: jwk[m] for m in members}, separators=(",", ":"), sort_keys=True)
    return b64u(hashlib.sha256(canon.encode()).digest())


def generate_jwk(alg: str) -> dict:
    """A fresh private JWK for alg ("RS256": RSA-2048, "ES256": P-256), with
    kid (its thumbprint), alg and use."""
    if alg == "RS256":
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pn = key.private_numbers()
        jwk = {"kty": "RSA", "n": _int_b64u(pn.public_numbers.n), "e": _int_b64u(pn.public_numbers.e),
               "d": _int_b64u(pn.d), "p": _int_b64u(pn.p), "q": _int_b64u(pn.q),
               "dp": _int_b64u(pn.dmp1), "dq": _int_b64u(pn.dmq1), "qi": _int_b64u(pn.iqmp)}
    elif alg == "ES256":
        key = ec.generate_private_key(ec.SECP256R1())
        pn = key.private_numbers()
        jwk = {"kty": "EC", "crv": "P-256", "x": _int_b64u(pn.public_numbers.x, 32),
               "y": _int_b64u(pn.public_numbers.y, 32), "d": _int_b64u(pn.private_value, 32)}
    else:
        raise ValueError(f"generate_jwk: {alg} is not RS256 or ES256")
    jwk.update(kid=jwk_thumbprint(jwk), alg=alg, use="sig")
    return jwk


def public_jwk(jwk: Mapping[str, str]) -> dict:
    """The public half of a JWK (what jwks_uri serves)."""
    drop = {"d", "p", "q", "dp", "dq", "qi"}
    return {k: v for k, v in jwk.items() if k not in drop}


def private_key(jwk: Mapping[str, str]):
    """A cryptography private key object from a private JWK."""
    if jwk["kty"] == "RSA":
        pub = rsa.RSAPublicNumbers(_b64u_int(jwk["e"]), _b64u_int(jwk["n"]))
        return rsa.RSAPrivateNumbers(
            _b64u_int(jwk["p"]), _b64u_int(jwk["q"]), _b64u_int(jwk["d"]),
            _b64u_int(jwk["dp"]), _b64u_int(jwk["dq"]), _b64u_int(jwk["qi"]), pub).private_key()
    if jwk["kty"] == "EC" and jwk.get("crv") == "P-256":
        pub = ec.EllipticCurvePublicNumbers(_b64u_int(jwk["x"]), _b64u_int(jwk["y"]), ec.SECP256R1())
        return ec.EllipticCurvePrivateNumbers(_b64u_int(jwk["d"]), pub).private_key()
    raise ValueError(f"unsupported JWK kty={jwk.get('kty')} crv={jwk.get('crv')}")


def public_key(jwk: Mapping[str, str]):
    """A cryptography public key object from a (public or private) JWK."""
    if jwk["kty"] == "RSA":
        return rsa.RSAPublicNumbers(_b64u_int(jwk["e"]), _b64u_int(jwk["n"])).public_key()
    if jwk["kty"] == "EC" and jwk.get("crv") == "P-256":
        return ec.EllipticCurvePublicNumbers(_b64u_int(jwk["x"]), _b64u_int(jwk["y"]),
                                             ec.SECP256R1()).public_key()
    raise ValueError(f"unsupported JWK kty={jwk.get('kty')} crv={jwk.get('crv')}")


def sign(jwk: Mapping[str, str], data: bytes) -> bytes:
    """JWS signature of data with a private JWK: RS256 (PKCS#1 v1.5, SHA-256)
    for RSA, ES256 (r||s, 32 bytes each) for P-256."""
    key = private_key(jwk)
    if jwk["kty"] == "RSA":
        return key.sign(data, padding.PKCS1v15(), hashes.SHA256())
    r, s = decode_dss_signature(key.sign(data, ec.ECDSA(hashes.SHA256())))
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def verify_signature(jwk: Mapping[str, str], data: bytes, sig: bytes) -> bool:
    """Does sig sign data under the JWK's public key (RS256 / ES256)?"""
    from cryptography.exceptions import InvalidSignature
    key = public_key(jwk)
    try:
        if jwk["kty"] == "RSA":
            key.verify(sig, data, padding.PKCS1v15(), hashes.SHA256())
        else:
            if len(sig) != 64:
                return False
            der = encode_dss_signature(int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big"))
            key.verify(der, data, ec.ECDSA(hashes.SHA256()))
        return True
    except InvalidSignature:
        return False


def decode(token: str) -> tuple[dict, dict]:
    """(header, claims) of a compact JWS, NOT verified."""
    h, p, _ = token.split(".")
    return json.loads(b64u_decode(h)), json.loads(b64u_decode(p))


def _apply(base: dict, overrides: Mapping[str, Any]) -> dict:
    """base updated with overrides; an override of None removes the key."""
    out = dict(base)
    for k, v in overrides.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = v
    return out


def compact(header: Union[Mapping, bytes, str], claims: Union[Mapping, bytes, str],
            signature: bytes) -> str:
    """header.claims.signature; dicts are JSON-encoded, bytes/str are taken
    as the raw (not yet base64url-encoded) segment."""
    def seg(x):
        if isinstance(x, Mapping):
            return b64u(_json(x))
        return b64u(x.encode() if isinstance(x, str) else x)
    return f"{seg(header)}.{seg(claims)}.{b64u(signature)}"


# --- the IdP ----------------------------------------------------------------------

class IdPError(RuntimeError):
    pass


class TokenRequestError(IdPError):
    def __init__(self, status: int, body: str):
        super().__init__(f"token endpoint answered {status}: {body}")
        self.status = status
        self.body = body


def _client(spec: Mapping[str, Any]) -> dict:
    c = {"client_id": spec["client_id"],
         "client_secret": spec.get("client_secret") or secrets.token_urlsafe(24),
         "groups": list(spec.get("groups", [])),
         "alg": spec.get("alg", "RS256"),
         "ttl": int(spec.get("ttl", DEFAULT_TTL)),
         "claims": dict(spec.get("claims", {}))}
    if c["alg"] not in ALGORITHMS:
        raise ValueError(f"client {c['client_id']}: alg {c['alg']} is not RS256 or ES256")
    return c


class IdP:
    """oidc-provider on https://localhost:PORT (listening on 127.0.0.1).

    IdP(directory, ca, clients=[{client_id, groups=[], alg="RS256",
        ttl=300, client_secret=random, claims={}}], audience="urn:sluice",
        groups_claim="groups", issuer_host="localhost")

    start() / stop() / restart()   the process (restart keeps port and keys)
    with idp.down(): ...           stopped inside the block, started after
    running(), pid                 is it up, its process id
    issuer, port, ca_file, audience, groups_claim, jwks_uri, token_endpoint
    token(client_id, resource=None) -> str       a real access token
    token_response(client_id, ...) -> dict       the whole JSON answer
    client_secret(client_id)
    write_token(path, client_id, owner=None)     token into a 0600 file
    oidc_keys(leeway="2s") -> dict                a sluice.conf [oidc] section
    kids -> {"RS256": kid, "ES256": kid}         the current signing keys
    served_jwks() -> dict                        GET jwks_uri now
    rotate_keys(keep_old=True) -> kids           new signing keys, live
    private_jwk(alg), public_pem(alg), retired   keys for forging
    claims(client_id, **over), forge(...), tamper(...)   attack tokens
    verify(token) -> claims                      a relying party's check
    log()                                        the provider's stderr
    """

    def __init__(self, directory: Path, ca, clients: Iterable[Mapping[str, Any]], *,
                 audience: str = DEFAULT_AUDIENCE, groups_claim: str = "groups",
                 issuer_host: str = "localhost"):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.dir, 0o755)
        self.ca = ca
        self.audience = audience
        self.groups_claim = groups_claim
        self.issuer_host = issuer_host
        self.clients = {c["client_id"]: c for c in map(_client, clients)}
        self.port = 0
        self.issuer: Optional[str] = None
        self.config_path = self.dir / "config.json"
        self.jwks_path = self.dir / "jwks.json"
        self.state_path = self.dir / "state.json"
        self.log_path = self.dir / "idp.log"
        self.retired: list[dict] = []   # private JWKs rotated out of signing
        self._keys: list[dict] = []     # private JWKs published; first per type signs
        self._proc: Optional[subprocess.Popen] = None
        self._cert: Optional[Path] = None
        self._key: Optional[Path] = None
        self._ssl = None

    # --- process -------------------------------------------------------------

    @property
    def ca_file(self) -> Path:
        return Path(self.ca.cert)

    @property
    def jwks_uri(self) -> str:
        return f"{self.issuer}/jwks"

    @property
    def token_endpoint(self) -> str:
        return f"{self.issuer}/token"

    def _write_config(self) -> None:
        cfg = {"listen_host": "127.0.0.1", "port": self.port, "issuer_host": self.issuer_host,
               "tls_cert": str(self._cert), "tls_key": str(self._key),
               "jwks_file": str(self.jwks_path), "audience": self.audience,
               "groups_claim": self.groups_claim, "state_file": str(self.state_path),
               "clients": list(self.clients.values())}
        _write_private(self.config_path, json.dumps(cfg, indent=1))

    def _write_jwks(self) -> None:
        _write_private(self.jwks_path, json.dumps({"keys": self._keys}, indent=1))

    def _state(self) -> Optional[dict]:
        try:
            return json.loads(self.state_path.read_text())
        except (FileNotFoundError, ValueError):
            return None

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> Optional[int]:
        """The provider's process id while it runs (only its own process:
        signal it through stop()/rotate_keys(), never by name)."""
        return self._proc.pid if self.running() else None

    def start(self, timeout: float = 30) -> "IdP":
        if self.running():
            return self
        why = unavailable()
        if why:
            raise IdPError(why)
        if self._cert is None:
            self._cert, self._key = self.ca.issue_server("idp", dns=("localhost",), ips=("127.0.0.1",))
            self._ssl = ssl.create_default_context(cafile=str(self.ca_file))
        if not self._keys:
            self._keys = [generate_jwk(a) for a in ALGORITHMS]
            self._write_jwks()
        self._write_config()
        try:
            self.state_path.unlink()
        except FileNotFoundError:
            pass
        with open(self.log_path, "ab") as log:
            self._proc = subprocess.Popen([node_binary(), str(IDP_SCRIPT), str(self.config_path)],
                                          cwd=str(NODE_DIR), stdin=subprocess.DEVNULL,
                                          stdout=log, stderr=log)
        deadline = time.monotonic() + timeout
        while True:
            st = self._state()
            if st and st.get("pid") == self._proc.pid:
                break
            if self._proc.poll() is not None:
                self._proc = None
                raise IdPError(f"idp.mjs exited at start:\n{self.log()[-3000:]}")
            if time.monotonic() > deadline:
                self.stop()
                raise IdPError(f"idp.mjs did not start in {timeout}s:\n{self.log()[-3000:]}")
            time.sleep(0.05)
        self.port = st["port"]
        self.issuer = st["issuer"]
        # Fixed from now on: a restart must come back with the same issuer.
        self._write_config()
        disc = self.discovery()
        if disc.get("issuer") != self.issuer:
            raise IdPError(f"discovery names issuer {disc.get('issuer')!r}, expected {self.issuer!r}")
        return self

    def stop(self) -> Optional[int]:
        """SIGTERM (SIGKILL after 10 s); returns the exit status."""
        if self._proc is None:
            return None
        proc, self._proc = self._proc, None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        return proc.returncode

    def restart(self, timeout: float = 30) -> "IdP":
        """Stop and start again: same port, issuer, keys and clients."""
        self.stop()
        return self.start(timeout=timeout)

    @contextlib.contextmanager
    def down(self):
        """with idp.down(): ...   the IdP is stopped inside, started again
        (same issuer and keys) after, even when the block raises."""
        self.stop()
        try:
            yield self
        finally:
            self.start()

    # --- HTTP ------------------------------------------------------------------

    def _get_json(self, url: str, timeout: float = 10) -> dict:
        with urllib.request.urlopen(url, timeout=timeout, context=self._ssl) as r:
            return json.loads(r.read())

    def discovery(self) -> dict:
        """GET {issuer}/.well-known/openid-configuration (over HTTPS, trusting ca)."""
        return self._get_json(f"{self.issuer}/.well-known/openid-configuration")

    def served_jwks(self) -> dict:
        """GET jwks_uri: the public keys the provider publishes right now."""
        return self._get_json(self.jwks_uri)

    def client_secret(self, client_id: str) -> str:
        return self.clients[client_id]["client_secret"]

    def token_response(self, client_id: str, *, resource: Optional[str] = None,
                       scope: Optional[str] = None, client_secret: Optional[str] = None,
                       timeout: float = 10) -> dict:
        """POST {issuer}/token, grant_type=client_credentials, client_secret_basic.
        Raises TokenRequestError on a non-200 answer."""
        form = {"grant_type": "client_credentials"}
        if resource is not None:
            form["resource"] = resource
        if scope is not None:
            form["scope"] = scope
        secret = client_secret if client_secret is not None else self.client_secret(client_id)
        basic = base64.b64encode(f"{urllib.parse.quote(client_id, safe='')}:"
                                 f"{urllib.parse.quote(secret, safe='')}".encode()).decode()
        req = urllib.request.Request(self.token_endpoint, data=urllib.parse.urlencode(form).encode(),
                                     headers={"Authorization": f"Basic {basic}",
                                              "Content-Type": "application/x-www-form-urlencoded"},
                                     method="POST")
        try:
            with urllib.request.urlopen(req, timeout=timeout, context=self._ssl) as r:
                return json.loads(r.read())
        except urllib.error.HTTPError as e:
            raise TokenRequestError(e.code, e.read().decode(errors="replace")) from None

    def token(self, client_id: str, *, resource: Optional[str] = None) -> str:
        """A real access token for client_id (a JWS; see the module docstring).
        resource="urn:other" gets one whose aud is "urn:other"."""
        return self.token_response(client_id, resource=resource)["access_token"]

    def write_token(self, path: Path, client_id: str, *, owner=None, mode: int = 0o600,
                    token: Optional[str] = None) -> Path:
        """Write a fresh token (or token) to path, created 0600 (owner: an
        Account from sluice_fixtures, to make it that account's), replaced
        atomically so a reader never sees half a token."""
        path = Path(path)
        tmp = path.with_name(f".{path.name}.tmp")
        _write_private(tmp, (token or self.token(client_id)) + "\n", mode)
        if owner is not None:
            os.chown(tmp, owner.uid, owner.gid)
        os.replace(tmp, path)
        return path

    def oidc_keys(self, *, leeway: str = "2s", algorithms: str = "RS256 ES256") -> dict:
        """The keys of a sluice.conf [oidc] section for this IdP. The leeway is
        small so expiry tests need not wait a minute."""
        return {"issuer": self.issuer, "audience": self.audience, "ca_file": str(self.ca_file),
                "algorithms": algorithms, "leeway": leeway, "groups_claim": self.groups_claim}

    # --- keys ------------------------------------------------------------------

    @property
    def kids(self) -> dict:
        """{"RS256": kid, "ES256": kid}: the keys signing new tokens."""
        return {alg: self.private_jwk(alg)["kid"] for alg in ALGORITHMS}

    def private_jwk(self, alg: str = "RS256") -> dict:
        """The private JWK signing alg tokens now (a copy)."""
        for k in self._keys:
            if k["kty"] == _KTY[alg]:
                return dict(k)
        raise KeyError(alg)

    def public_jwks(self) -> dict:
        """What jwks_uri should serve: the public halves of the published keys."""
        return {"keys": [public_jwk(k) for k in self._keys]}

    def public_pem(self, alg: str = "RS256") -> bytes:
        """The public key of alg as PEM (SubjectPublicKeyInfo): the "HMAC
        secret" of the classic HS256 key-confusion attack."""
        return private_key(self.private_jwk(alg)).public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)

    def rotate_keys(self, *, keep_old: bool = True, timeout: float = 15) -> dict:
        """New RS256 and ES256 signing keys, live (SIGHUP, no downtime): tokens
        issued from now on carry the new kids. keep_old=True keeps the old
        public keys in jwks_uri (tokens already issued still verify);
        keep_old=False drops them. The old private JWKs go to self.retired.
        Returns the new kids."""
        new = [generate_jwk(a) for a in ALGORITHMS]
        old = self._keys
        self.retired.extend(old)
        self._keys = new + (old if keep_old else [])
        self._write_jwks()
        want = self.kids
        if self.running():
            self._proc.send_signal(signal.SIGHUP)
            expect = sorted(k["kid"] for k in self._keys)
            deadline = time.monotonic() + timeout
            while True:
                st = self._state()
                if st and st.get("kids") == want:
                    served = sorted(k["kid"] for k in self.served_jwks()["keys"])
                    if served == expect:
                        break
                if time.monotonic() > deadline or not self.running():
                    raise IdPError(f"rotation did not take effect:\n{self.log()[-3000:]}")
                time.sleep(0.05)
        return want

    # --- forging -----------------------------------------------------------------

    def claims(self, client_id: str, **overrides: Any) -> dict:
        """The claims a real token of client_id would carry, issued now;
        overrides replace them (None removes one): claims("sluicet-a",
        nbf=int(time.time()) + 3600, sub=None)."""
        c = self.clients[client_id]
        now = int(time.time())
        base = {**c["claims"], "jti": secrets.token_urlsafe(16), "sub": client_id, "iat": now,
                "exp": now + c["ttl"], "client_id": client_id, "iss": self.issuer,
                "aud": self.audience, self.groups_claim: list(c["groups"])}
        return _apply(base, overrides)

    def forge(self, header: Mapping[str, Any], claims: Union[Mapping[str, Any], bytes, str], *,
              key: Union[str, Mapping[str, str], bytes, None] = "RS256",
              signature: Optional[bytes] = None) -> str:
        """A compact JWS made by hand.

        key:  "RS256" / "ES256"  the IdP's current private key of that alg
              a dict             any private JWK (generate_jwk(), self.retired[i])
              bytes              an HMAC secret: HS256/384/512 after header's alg
                                 (e.g. key=idp.public_pem())
              None               no key: the signature is empty
        header: merged over the defaults {"alg", "typ": "at+jwt", "kid"} of
              the key (alg "none" and no kid when key is None; no kid for an
              HMAC secret); a value of None removes that member.
        claims: a dict (see claims()), or bytes/str taken as the raw payload.
        signature: use these bytes as the signature instead of signing.

        forge({}, idp.claims("sluicet-a"))                          valid RS256
        forge({"alg": "none"}, c, key=None)                         alg none
        forge({"alg": "HS256"}, c, key=idp.public_pem())            key confusion
        forge({"crit": ["exp"]}, c)                                 crit header
        forge({"jku": "https://evil/jwks"}, c, key=generate_jwk("RS256"))
        """
        if isinstance(key, str):
            jwk = self.private_jwk(key)
            defaults = {"alg": key, "typ": "at+jwt", "kid": jwk["kid"]}
        elif isinstance(key, Mapping):
            jwk = dict(key)
            defaults = {"alg": jwk.get("alg") or ("RS256" if jwk["kty"] == "RSA" else "ES256"),
                        "typ": "at+jwt", "kid": jwk.get("kid")}
        elif isinstance(key, (bytes, bytearray)):
            jwk = None
            defaults = {"alg": "HS256", "typ": "at+jwt"}
        elif key is None:
            jwk = None
            defaults = {"alg": "none", "typ": "at+jwt"}
        else:
            raise TypeError(f"forge: key of type {type(key).__name__}")
        hdr = _apply({k: v for k, v in defaults.items() if v is not None}, header)
        payload = b64u(_json(claims)) if isinstance(claims, Mapping) else \
            b64u(claims.encode() if isinstance(claims, str) else claims)
        signing_input = f"{b64u(_json(hdr))}.{payload}".encode()
        if signature is None:
            if jwk is not None:
                signature = sign(jwk, signing_input)
            elif key is not None:
                digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384,
                          "HS512": hashlib.sha512}.get(hdr.get("alg"), hashlib.sha256)
                signature = hmac.new(bytes(key), signing_input, digest).digest()
            else:
                signature = b""
        return f"{signing_input.decode()}.{b64u(signature)}"

    @staticmethod
    def tamper(token: str, **overrides: Any) -> str:
        """token with its payload changed (None removes a claim) and the
        original header and signature kept: a tampered token."""
        h, _, s = token.split(".")
        _, claims = decode(token)
        return f"{h}.{b64u(_json(_apply(claims, overrides)))}.{s}"

    def verify(self, token: str, jwks: Optional[Mapping[str, Any]] = None) -> dict:
        """Check token against jwks (default: what jwks_uri serves now) the way
        a relying party must (alg from the key, signature first, then
        iss/aud/exp/nbf); returns the claims or raises IdPError. For the
        fixture's own tests."""
        hdr, claims = decode(token)
        h, p, s = token.split(".")
        keys = {k["kid"]: k for k in (jwks or self.served_jwks())["keys"]}
        jwk = keys.get(hdr.get("kid"))
        if jwk is None:
            raise IdPError(f"unknown kid {hdr.get('kid')!r}")
        if hdr.get("alg") != jwk["alg"]:
            raise IdPError(f"alg {hdr.get('alg')!r} does not match key {jwk['alg']}")
        if not verify_signature(jwk, f"{h}.{p}".encode(), b64u_decode(s)):
            raise IdPError("bad signature")
        now = time.time()
        if claims.get("iss") != self.issuer:
            raise IdPError(f"iss {claims.get('iss')!r}")
        aud = claims.get("aud")
        if self.audience not in (aud if isinstance(aud, list) else [aud]):
            raise IdPError(f"aud {aud!r}")
        if not isinstance(claims.get("exp"), int) or claims["exp"] <= now:
            raise IdPError("expired")
        if claims.get("nbf", 0) > now:
            raise IdPError("not yet valid")
        return claims


def _write_private(path: Path, text: str, mode: int = 0o600) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC | os.O_NOFOLLOW, mode)
    try:
        os.fchmod(fd, mode)
        os.write(fd, text.encode())
    finally:
        os.close(fd)
