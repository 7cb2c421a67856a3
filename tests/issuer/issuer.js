// Test OpenID Provider for mod_offtok's integration tests, built on oidc-provider 8.
//
//   node issuer.js --cert C --key K [--port P] [--issuer URL] [--ca FILE]
//
// Serves HTTPS on 127.0.0.1:P (P 0 or absent: a port the system picks) and prints
// "READY <issuer>" on stdout once it serves. The issuer defaults to https://127.0.0.1:<port>.
// --ca names the CA bundle trusted for HTTPS back-channel logout targets (the tests' own CA).
//
// Everything under /.well-known/, /jwks, /token/... is oidc-provider's own behaviour: discovery,
// JWKS, RFC 7662 introspection (/token/introspection), RFC 7009 revocation (/token/revocation),
// client authentication, and the logout tokens of OpenID Connect Back-Channel Logout. This file
// adds only what tests need around it, each marked where it is:
//   - an in-memory adapter without an entry limit (MapAdapter);
//   - a log of introspection requests (logIntrospections);
//   - extra claims for refresh tokens in introspection answers (addRefreshTokenExtras);
//   - a JSON control API under /test/ on the same port, with no authentication: it listens on
//     the loopback interface only and exists for tests (tests/integration/issuers.py wraps it):
//       POST /test/mint/access   {sub, client_id, scope, ttl, claims, sid, aud, jkt, cert, jwt}
//                                -> {token, jti, iat, exp, sid}; claims appear in introspection
//                                answers; jkt (a JWK thumbprint) makes a DPoP-bound token, cert
//                                (a PEM client certificate) a certificate-bound one; jwt: true an
//                                RFC 9068 JWT access token (at+jwt, RS256)
//       POST /test/mint/offline  the same, for a refresh token with offline_access in its scope
//       POST /test/revoke        {token} -> {revoked}
//       GET  /test/introspections        -> {count, log: [{time, token_type_hint, client_id,
//                                client_auth, token_sha256, status, active, accept,
//                                content_type, assertion_signature, tls_client_cn}]}
//       POST /test/introspections/reset
//       POST /test/clients       {client_id, ...metadata}: add a client or change its metadata
//       POST /test/backchannel-logout  {sub, sid, revoke} -> {sub, sid, revoked, notified}
//
// Clients at start: rs-client / rs-secret (the resource server) and app-client / app-secret (the
// application tokens are issued to).

import { createHash, generateKeyPairSync, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import * as https from 'node:https';
import { parseArgs } from 'node:util';

import Provider from 'oidc-provider';

const { values: args } = parseArgs({
  options: {
    port: { type: 'string' },
    cert: { type: 'string' },
    key: { type: 'string' },
    issuer: { type: 'string' },
    ca: { type: 'string' },
  },
});
if (!args.cert || !args.key) {
  process.stderr.write('usage: node issuer.js --cert C --key K [--port P] [--issuer URL] [--ca FILE]\n');
  process.exit(2);
}

// Listen before anything else: the issuer URL contains the port, which the system may pick.
// Nobody knows the port before the READY line, so no request arrives before the handler is set.
// Client certificates are asked for but not required (tls_client_auth, RFC 8705 §2): a client
// that sends none is served as before; one that sends one is judged by oidc-provider's mTLS
// feature below, against the tests' CA (--ca).
const server = https.createServer({
  cert: readFileSync(args.cert),
  key: readFileSync(args.key),
  requestCert: true,
  rejectUnauthorized: false,
  ...(args.ca ? { ca: readFileSync(args.ca) } : {}),
});
await new Promise((resolve, reject) => {
  server.once('error', reject);
  server.listen(Number(args.port ?? 0), '127.0.0.1', resolve);
});
const issuer = args.issuer ?? `https://127.0.0.1:${server.address().port}`;

const ROUTES = {
  introspection: '/token/introspection',
  revocation: '/token/revocation',
  jwks: '/jwks',
};

// Clients present at start. They live in the adapter like dynamically registered clients (not in
// the provider's static `clients` list, which it caches for good), so that the control API can
// change their metadata, e.g. add a backchannel_logout_uri, while the issuer runs.
const INITIAL_CLIENTS = [
  {
    // The resource server that mod_offtok introspects with. oidc-provider accepts both
    // client_secret_basic and client_secret_post from a client registered with either.
    client_id: 'rs-client',
    client_secret: 'rs-secret',
    token_endpoint_auth_method: 'client_secret_basic',
    grant_types: [],
    response_types: [],
    redirect_uris: [],
  },
  {
    // The application the tokens are issued to.
    client_id: 'app-client',
    client_secret: 'app-secret',
    token_endpoint_auth_method: 'client_secret_basic',
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    redirect_uris: ['https://127.0.0.1/callback'],
  },
];

// In-memory storage for every oidc-provider model. oidc-provider's bundled MemoryAdapter keeps at
// most 1,000 entries in an LRU, which a test minting thousands of tokens would overflow silently;
// this one keeps each entry until it expires.
const storage = new Map(); // "Model:id" -> { payload, expiresAt } (expiresAt in ms, or Infinity)
const grantMembers = new Map(); // grantId -> storage keys of the tokens issued under it

class MapAdapter {
  constructor(model) {
    this.model = model;
  }

  key(id) {
    return `${this.model}:${id}`;
  }

  async upsert(id, payload, expiresIn) {
    const key = this.key(id);
    const expiresAt = expiresIn ? Date.now() + expiresIn * 1000 : Infinity;
    storage.set(key, { payload, expiresAt });
    if (payload.grantId) {
      grantMembers.set(payload.grantId, [...(grantMembers.get(payload.grantId) ?? []), key]);
    }
    if (this.model === 'Session') {
      storage.set(`SessionUid:${payload.uid}`, { payload: id, expiresAt });
    }
    if (payload.userCode) {
      storage.set(`UserCode:${payload.userCode}`, { payload: id, expiresAt });
    }
  }

  async find(id) {
    return MapAdapter.read(this.key(id));
  }

  async findByUid(uid) {
    const id = MapAdapter.read(`SessionUid:${uid}`);
    return id === undefined ? undefined : this.find(id);
  }

  async findByUserCode(userCode) {
    const id = MapAdapter.read(`UserCode:${userCode}`);
    return id === undefined ? undefined : this.find(id);
  }

  async consume(id) {
    const payload = await this.find(id);
    if (payload) payload.consumed = Math.floor(Date.now() / 1000);
  }

  async destroy(id) {
    storage.delete(this.key(id));
  }

  async revokeByGrantId(grantId) { // eslint-disable-line class-methods-use-this
    for (const key of grantMembers.get(grantId) ?? []) storage.delete(key);
    grantMembers.delete(grantId);
  }

  static read(key) {
    const entry = storage.get(key);
    if (!entry) return undefined;
    if (entry.expiresAt <= Date.now()) {
      storage.delete(key);
      return undefined;
    }
    return entry.payload;
  }

  // Live payloads stored for one model, for the control API.
  static* payloads(model) {
    for (const key of storage.keys()) {
      if (key.startsWith(`${model}:`)) {
        const payload = MapAdapter.read(key);
        if (payload !== undefined) yield payload;
      }
    }
  }
}

function signingKey() {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return {
    ...privateKey.export({ format: 'jwk' }), kid: 'test-issuer-rs256', use: 'sig', alg: 'RS256',
  };
}

// Outgoing requests (back-channel logout). oidc-provider 8 sends them with got through the agent
// that httpOptions names; it has no guard against loopback targets, so the only change needed is
// an agent that trusts the tests' CA for HTTPS targets.
const testCaAgent = args.ca ? new https.Agent({ ca: readFileSync(args.ca) }) : undefined;
function httpOptions(url) {
  return {
    agent: url.protocol === 'https:' ? testCaAgent : undefined,
    signal: AbortSignal.timeout(5000),
  };
}

const provider = new Provider(issuer, {
  adapter: MapAdapter,
  jwks: { keys: [signingKey()] },
  cookies: { keys: [randomBytes(32).toString('base64url')] },
  routes: ROUTES,
  // offline_access here also enables the refresh_token grant, without which oidc-provider does
  // not look refresh tokens up at introspection.
  scopes: ['openid', 'offline_access', 'profile', 'email'],
  // Client assertions (private_key_jwt, client_secret_jwt) in every algorithm mod_offtok signs.
  enabledJWA: {
    clientAuthSigningAlgValues: ['HS256', 'RS256', 'PS256', 'ES256', 'ES384', 'ES512', 'EdDSA'],
  },
  clientAuthMethods: [
    'none', 'client_secret_basic', 'client_secret_post', 'client_secret_jwt', 'private_key_jwt',
    'tls_client_auth',
  ],
  features: {
    devInteractions: { enabled: false },
    introspection: {
      enabled: true,
      // A confidential client (the resource server) may introspect tokens issued to any client;
      // a public client only its own. This is oidc-provider's default policy, stated here.
      allowedPolicy: async (ctx, client, token) => client.clientAuthMethod !== 'none'
        || token.clientId === client.clientId,
    },
    jwtIntrospection: { enabled: true },
    revocation: { enabled: true },
    backchannelLogout: { enabled: true },
    // Sender-constrained tokens: DPoP-bound (cnf.jkt, token_type DPoP) and certificate-bound
    // (cnf.x5t#S256) access tokens, as its token endpoint would issue them; minted through the
    // control API with jkt or cert. The tests' proofs go to mod_offtok, never to this issuer.
    dPoP: { enabled: true },
    // One mTLS feature serves both: tls_client_auth (the certificate of this TLS connection,
    // trusted when it chains to the tests' CA, matched on its subject DN written
    // "CN=<common name>") and certificate-bound access tokens minted through the control API.
    mTLS: {
      enabled: true,
      tlsClientAuth: true,
      certificateBoundAccessTokens: true,
      getCertificate: (ctx) => ctx.socket.getPeerX509Certificate?.() ?? undefined,
      certificateAuthorized: (ctx) => ctx.socket.authorized === true,
      certificateSubjectMatches: (ctx, property, expected) => property === 'tls_client_auth_subject_dn'
        && ctx.socket.getPeerCertificate()?.subject?.CN !== undefined
        && `CN=${ctx.socket.getPeerCertificate().subject.CN}` === expected,
    },
  },
  issueRefreshToken: async (ctx, client, code) => client.grantTypeAllowed('refresh_token')
    && code.scopes.has('offline_access'),
  // oidc-provider stores what this returns as the access token's `extra` and spreads it into the
  // introspection answer (below the standard members, which it never lets `extra` override).
  // Returning the token's own `extra` keeps the claims that the control API set when minting.
  extraTokenClaims: async (ctx, token) => token.extra,
  findAccount: async (ctx, sub) => ({ accountId: sub, claims: async () => ({ sub }) }),
  httpOptions,
});

// Introspection log (test addition). An entry is recorded when the request arrives, so that one
// still in progress is counted; the rest is filled in from what oidc-provider parsed.
const introspections = [];

function sha256(text) {
  return createHash('sha256').update(text).digest('hex');
}

provider.use(async function logIntrospections(ctx, next) {
  if (ctx.method !== 'POST' || ctx.path !== ROUTES.introspection) {
    await next();
    return;
  }
  const entry = { time: Date.now() / 1000 };
  introspections.push(entry);
  await next();
  const params = ctx.oidc?.params ?? {};
  let clientAuth = null;
  if (ctx.headers.authorization) clientAuth = 'client_secret_basic';
  else if (params.client_secret) clientAuth = 'client_secret_post';
  else if (params.client_assertion) clientAuth = 'client_assertion';
  else if (ctx.socket.getPeerCertificate?.()?.subject) clientAuth = 'tls_client_auth';
  Object.assign(entry, {
    token_type_hint: params.token_type_hint ?? null,
    client_id: ctx.oidc?.authorization?.clientId ?? params.client_id ?? null,
    client_auth: clientAuth,
    token_sha256: params.token ? sha256(params.token) : null,
    status: ctx.status,
    accept: ctx.headers.accept ?? null,
    // The signature part of a client assertion, so that tests can look for it in httpd's logs.
    assertion_signature: params.client_assertion?.split('.')[2] ?? null,
    // The common name of the TLS client certificate on the connection the request came on.
    tls_client_cn: ctx.socket.getPeerCertificate?.()?.subject?.CN ?? null,
    content_type: ctx.response.type || null,
    active: typeof ctx.body === 'object' ? ctx.body?.active ?? null : null,
  });
});

// Extra claims of refresh (offline) tokens (test addition). oidc-provider carries extra claims
// only on access tokens; those given when minting a refresh token are kept here by jti and added
// to its JSON introspection answers the same way, never overriding a member oidc-provider set.
const refreshTokenExtras = new Map();

provider.use(async function addRefreshTokenExtras(ctx, next) {
  await next();
  const token = ctx.oidc?.entities?.RefreshToken;
  if (ctx.path === ROUTES.introspection && token && ctx.body?.active === true) {
    const extra = refreshTokenExtras.get(token.jti);
    if (extra) ctx.body = { ...extra, ...ctx.body };
  }
});

// ---- control API ------------------------------------------------------------------------------

class ControlError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

const DEFAULT_TTL = { access: 300, offline: 30 * 24 * 3600 };

// Mints a token through oidc-provider's own models, as its token endpoint would store it.
// kind "offline" is a refresh token whose scope includes offline_access.
async function mint(kind, {
  sub, client_id: clientId = 'app-client', scope, ttl, claims, sid, aud, jkt, cert, jwt,
}) {
  if (typeof sub !== 'string' || !sub) throw new ControlError(400, 'sub is required');
  const client = await provider.Client.find(clientId);
  if (!client) throw new ControlError(400, `unknown client ${clientId}`);

  let Model;
  let scopes;
  if (kind === 'offline') {
    Model = provider.RefreshToken;
    scopes = new Set((scope ?? 'openid').split(' ').concat('offline_access'));
  } else {
    Model = provider.AccessToken;
    scopes = new Set((scope ?? 'openid').split(' '));
  }
  const token = new Model({
    accountId: sub,
    client,
    scope: [...scopes].join(' '),
    expiresIn: ttl ?? DEFAULT_TTL[kind],
    gty: 'authorization_code',
    sid,
    aud,
  });
  // An RFC 9068 JWT access token (typ at+jwt, RS256 with the JWKS key) for the resource server
  // rs-client, as oidc-provider issues them for a resource indicator with accessTokenFormat
  // 'jwt'; its introspection answer is the same as an opaque token's.
  if (jwt && kind === 'access') {
    token.resourceServer = new provider.ResourceServer('urn:offtok:rs', {
      audience: aud ?? 'rs-client', accessTokenFormat: 'jwt', jwt: { sign: { alg: 'RS256' } },
    });
  }
  if (claims && kind === 'access') token.extra = claims;
  if (jkt) token.setThumbprint('jkt', jkt);
  if (cert) token.setThumbprint('x5t', cert);
  const value = await token.save();
  if (claims && kind === 'offline') refreshTokenExtras.set(token.jti, claims);

  // A JWT access token is not found by its value (its record is kept by jti): read it back.
  const stored = token.resourceServer
    ? JSON.parse(Buffer.from(value.split('.')[1], 'base64url').toString()) : await Model.find(value);
  return {
    token: value, jti: stored.jti, iat: stored.iat, exp: stored.exp, sid: stored.sid,
  };
}

// Destroys a token, as oidc-provider's RFC 7009 revocation endpoint does. (That endpoint also
// revokes the grant of a refresh token; tokens minted here have no grant.)
async function revokeToken({ token }) {
  if (typeof token !== 'string') throw new ControlError(400, 'token is required');
  const found = (await provider.AccessToken.find(token)) ?? (await provider.RefreshToken.find(token));
  if (!found) return { revoked: false };
  await found.destroy();
  refreshTokenExtras.delete(found.jti);
  return { revoked: true, kind: found.kind };
}

// Adds a client or changes its metadata; a member given as null is removed.
async function upsertClient(metadata) {
  const { client_id: clientId } = metadata;
  if (typeof clientId !== 'string' || !clientId) throw new ControlError(400, 'client_id is required');
  const adapter = new MapAdapter('Client');
  const merged = Object.fromEntries(
    Object.entries({ ...(await adapter.find(clientId)), ...metadata })
      .filter(([, value]) => value !== null),
  );
  try {
    await provider.Client.validate(merged);
  } catch (err) {
    throw new ControlError(400, err.error_description ?? err.message);
  }
  await adapter.upsert(clientId, merged);
  return { client_id: clientId };
}

function isOffline(payload) {
  return payload.kind === 'RefreshToken' && payload.scope?.split(' ').includes('offline_access');
}

// Ends a user's session as oidc-provider's end_session endpoint does: tokens that do not outlive
// logout (all but offline ones) are dropped and every client with a backchannel_logout_uri gets a
// logout token from client.backchannelLogout(). oidc-provider notifies first and drops the grants
// afterwards; here the tokens go first, so no introspection after a notification answers active.
// Without sub, the sub is taken from a token minted with that sid. revoke: false only notifies.
async function backchannelLogout({ sub, sid, revoke = true }) {
  const matches = (payload) => (!sub || payload.accountId === sub) && (!sid || payload.sid === sid);
  const tokens = ['AccessToken', 'RefreshToken']
    .flatMap((model) => [...MapAdapter.payloads(model)])
    .filter(matches);
  const subject = sub ?? tokens[0]?.accountId;
  if (!subject) throw new ControlError(400, 'sub is required unless a live token carries that sid');

  let revoked = 0;
  if (revoke) {
    for (const payload of tokens.filter((candidate) => !isOffline(candidate))) {
      await new MapAdapter(payload.kind).destroy(payload.jti);
      revoked += 1;
    }
  }

  const notified = [];
  for (const { client_id: clientId, backchannel_logout_uri: uri } of MapAdapter.payloads('Client')) {
    if (uri) {
      const client = await provider.Client.find(clientId);
      try {
        await client.backchannelLogout(subject, sid);
        notified.push({ client_id: clientId, ok: true });
      } catch (err) {
        notified.push({ client_id: clientId, ok: false, error: err.message });
      }
    }
  }
  return { sub: subject, sid: sid ?? null, revoked, notified };
}

// "METHOD path" -> handler(body) returning the JSON answer.
const CONTROL_ROUTES = {
  'POST /test/mint/access': (body) => mint('access', body),
  'POST /test/mint/offline': (body) => mint('offline', body),
  'POST /test/revoke': revokeToken,
  'GET /test/introspections': async () => ({ count: introspections.length, log: introspections }),
  'POST /test/introspections/reset': async () => {
    introspections.length = 0;
    return { count: 0 };
  },
  'POST /test/clients': upsertClient,
  'POST /test/backchannel-logout': backchannelLogout,
};

async function readJson(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  const text = Buffer.concat(chunks).toString('utf8');
  if (!text) return {};
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new ControlError(400, `body is not JSON: ${err.message}`);
  }
}

async function control(req, res) {
  let status = 200;
  let answer;
  try {
    const handler = CONTROL_ROUTES[`${req.method} ${new URL(req.url, issuer).pathname}`];
    if (!handler) throw new ControlError(404, 'no such control route');
    answer = await handler(await readJson(req));
  } catch (err) {
    status = err.status ?? 500;
    answer = { error: err.message };
  }
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(answer));
}

// ---- start ------------------------------------------------------------------------------------

for (const metadata of INITIAL_CLIENTS) await upsertClient(metadata);

const providerCallback = provider.callback();
server.on('request', (req, res) => {
  if (req.url.startsWith('/test/')) control(req, res);
  else providerCallback(req, res);
});
process.stdout.write(`READY ${issuer}\n`);
