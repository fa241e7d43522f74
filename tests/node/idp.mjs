// A real OpenID Provider for sluice's integration tests: the npm package
// oidc-provider (8.x, which still runs on Debian 12's Node 18), on loopback,
// over HTTPS, issuing client-credentials JWT access tokens.
//
//   node idp.mjs CONFIG.json        (or IDP_CONFIG=CONFIG.json node idp.mjs)
//
// CONFIG.json (tests/integration/idp.py writes it):
//   listen_host   address to bind, default "127.0.0.1" (loopback only)
//   port          TCP port; 0 picks a free one (the issuer then names it)
//   issuer_host   host name in the issuer URL, default "localhost"; the
//                 issuer is https://ISSUER_HOST:PORT
//   tls_cert, tls_key   PEM files of the server certificate (test CA)
//   jwks_file     {"keys": [private JWKs]}: RSA keys sign RS256, P-256 keys
//                 ES256. The FIRST key of each algorithm signs new tokens;
//                 the others stay published in jwks_uri (rotation overlap).
//   audience      the resource indicator / "aud" of tokens asked for without
//                 a "resource" parameter, e.g. "urn:sluice"
//   groups_claim  name of the groups claim, default "groups"
//   state_file    written (atomically) once listening: {"pid", "port",
//                 "issuer", "kids": {"RS256": kid, "ES256": kid}}, and again
//                 after each reload
//   clients       [{client_id, client_secret, groups: [..], alg: "RS256" |
//                 "ES256", ttl: seconds, claims: {extra claims}}]
//
// Tokens: POST {issuer}/token with grant_type=client_credentials and HTTP
// Basic client authentication. The answer's access_token is a JWS with
// header {alg, typ: "at+jwt", kid} and claims
//   iss = issuer, aud = audience (or the "resource" asked for), sub =
//   client_id (oidc-provider puts the client_id in "sub" when no end user
//   is involved), client_id, groups (groups_claim), jti, iat, exp = iat +
//   ttl, plus the client's extra claims.
//
// SIGHUP re-reads CONFIG.json and the JWKS file and swaps in a new provider
// while the HTTPS listener stays up: that is key rotation (and client
// changes) without the IdP ever being unreachable. SIGTERM/SIGINT stop it.
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:https';
import { randomBytes } from 'node:crypto';

import Provider from 'oidc-provider';

const SUPPORTED = { RSA: 'RS256', EC: 'ES256' };

function log(msg) {
  process.stderr.write(`${new Date().toISOString()} idp[${process.pid}]: ${msg}\n`);
}

function readJSON(path) {
  return JSON.parse(readFileSync(path, 'utf8'));
}

function loadConfig(path) {
  const c = readJSON(path);
  for (const k of ['tls_cert', 'tls_key', 'jwks_file', 'audience', 'state_file']) {
    if (typeof c[k] !== 'string' || !c[k]) throw new Error(`config: "${k}" is required`);
  }
  if (!Array.isArray(c.clients) || c.clients.length === 0) throw new Error('config: "clients" is empty');
  for (const cl of c.clients) {
    if (!cl.client_id || !cl.client_secret) throw new Error('config: a client lacks client_id or client_secret');
    if (cl.alg && !Object.values(SUPPORTED).includes(cl.alg)) {
      throw new Error(`config: client ${cl.client_id}: alg ${cl.alg} is not RS256 or ES256`);
    }
  }
  return c;
}

// The signing key of each algorithm: the first key of that type in the file.
function signingKids(jwks) {
  const kids = {};
  for (const k of jwks.keys) {
    const alg = SUPPORTED[k.kty];
    if (!alg) throw new Error(`jwks: unsupported key type ${k.kty}`);
    if (k.kty === 'EC' && k.crv !== 'P-256') throw new Error(`jwks: EC key ${k.kid} is not P-256`);
    if (!k.kid) throw new Error('jwks: every key needs a kid');
    if (!k.d) throw new Error(`jwks: key ${k.kid} is not a private key`);
    if (!(alg in kids)) kids[alg] = k.kid;
  }
  return kids;
}

function makeProvider(cfg, issuer) {
  const jwks = readJSON(cfg.jwks_file);
  const kids = signingKids(jwks);
  const groupsClaim = cfg.groups_claim || 'groups';
  const byId = new Map(cfg.clients.map((c) => [c.client_id, c]));

  for (const c of cfg.clients) {
    const alg = c.alg || 'RS256';
    if (!kids[alg]) throw new Error(`client ${c.client_id} wants ${alg} but the JWKS has no such key`);
  }

  const provider = new Provider(issuer, {
    clients: cfg.clients.map((c) => ({
      client_id: c.client_id,
      client_secret: c.client_secret,
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
      token_endpoint_auth_method: 'client_secret_basic',
    })),
    jwks,
    cookies: { keys: [randomBytes(32).toString('base64url')] },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      introspection: { enabled: false },
      revocation: { enabled: false },
      resourceIndicators: {
        enabled: true,
        // A plain client_credentials request (no "resource") gets a JWT
        // for the configured audience.
        defaultResource: async () => cfg.audience,
        useGrantedResource: async () => true,
        // Any absolute URI is a resource server whose audience is that URI
        // (tests ask for a wrong audience this way); the signing algorithm
        // and lifetime are the client's.
        getResourceServerInfo: async (ctx, resource, client) => {
          const c = byId.get(client.clientId);
          const alg = c.alg || 'RS256';
          return {
            scope: 'sluice',
            audience: resource,
            accessTokenTTL: c.ttl || 300,
            accessTokenFormat: 'jwt',
            jwt: { sign: { alg, kid: kids[alg] } },
          };
        },
      },
    },
    extraTokenClaims: async (ctx, token) => {
      const c = byId.get(token.clientId);
      if (!c) return undefined;
      return { ...(c.claims || {}), [groupsClaim]: c.groups || [] };
    },
    ttl: {
      ClientCredentials: (ctx, token, client) => byId.get(client.clientId)?.ttl || 300,
    },
  });
  provider.on('server_error', (ctx, err) => log(`server_error: ${err.stack || err}`));
  provider.on('grant.error', (ctx, err) => log(`grant error: ${err.message} ${err.error_description || ''}`));
  provider.on('client_credentials.issued', (token) => {
    log(`issued token jti=${token.jti} client=${token.clientId} ttl=${token.expiration}`);
  });
  return { provider, kids };
}

function writeState(path, state) {
  const tmp = `${path}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(state)}\n`, { mode: 0o644 });
  renameSync(tmp, path);
}

function main() {
  const configPath = process.argv[2] || process.env.IDP_CONFIG;
  if (!configPath) {
    process.stderr.write('usage: node idp.mjs CONFIG.json\n');
    process.exit(2);
  }
  let cfg = loadConfig(configPath);
  const host = cfg.listen_host || '127.0.0.1';
  const issuerHost = cfg.issuer_host || 'localhost';

  // Until the provider exists (a moment after listen), answer 503.
  let handler = (req, res) => { res.statusCode = 503; res.end(); };
  const server = createServer({
    cert: readFileSync(cfg.tls_cert),
    key: readFileSync(cfg.tls_key),
  }, (req, res) => handler(req, res));

  let issuer;
  let kids;
  const install = () => {
    const made = makeProvider(cfg, issuer);
    handler = made.provider.callback();
    kids = made.kids;
    writeState(cfg.state_file, { pid: process.pid, port: server.address().port, issuer, kids });
    log(`serving ${issuer} with signing keys ${JSON.stringify(kids)}`);
  };

  server.on('error', (err) => {
    log(`listen failed: ${err.message}`);
    process.exit(1);
  });
  server.listen(cfg.port || 0, host, () => {
    issuer = `https://${issuerHost}:${server.address().port}`;
    try {
      install();
    } catch (err) {
      log(`cannot start: ${err.message}`);
      process.exit(1);
    }
  });

  process.on('SIGHUP', () => {
    try {
      cfg = loadConfig(configPath);
      install();
    } catch (err) {
      // Keep serving the previous keys: the caller sees the state file unchanged.
      log(`reload failed, keeping the previous configuration: ${err.message}`);
    }
  });
  const stop = (sig) => {
    log(`${sig}: stopping`);
    server.close();
    server.closeAllConnections?.();
    process.exit(0);
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

main();
