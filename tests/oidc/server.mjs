// A real OAuth 2.0 / OIDC authorization server (npm oidc-provider) for the tests, on 127.0.0.1 only.
// Usage: node server.mjs CONFIG.json. CONFIG: {"keys": [private JWKs], "clients": [{"client_id", "client_secret",
// "scope", "opaque"?}]}. It listens on a free port and prints one line: {"issuer": "http://127.0.0.1:PORT"}.
// Client-credentials tokens for any resource indicator: the resource is the audience, the client id the subject;
// a client with "opaque": true gets opaque tokens (for introspection), the others RS256 JWTs (typ at+jwt).
import { readFileSync } from 'node:fs';
import http from 'node:http';
import Provider from 'oidc-provider';

const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const byId = Object.fromEntries(config.clients.map((c) => [c.client_id, c]));
const server = http.createServer();

server.listen(0, '127.0.0.1', () => {
  const issuer = `http://127.0.0.1:${server.address().port}`;
  const provider = new Provider(issuer, {
    jwks: { keys: config.keys },
    clients: config.clients.map((c) => ({
      client_id: c.client_id,
      client_secret: c.client_secret,
      grant_types: ['client_credentials'],
      redirect_uris: [],
      response_types: [],
      scope: c.scope || undefined,
    })),
    scopes: ['runtimes:read', 'runtimes:run', 'runtimes:admin'],
    features: {
      clientCredentials: { enabled: true },
      introspection: { enabled: true, allowedPolicy: () => true },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => undefined,
        useGrantedResource: () => true,
        getResourceServerInfo: (ctx, resource, client) => ({
          scope: byId[client.clientId].scope,
          audience: resource,
          accessTokenFormat: byId[client.clientId].opaque ? 'opaque' : 'jwt',
          jwt: { sign: { alg: 'RS256' } },
        }),
      },
    },
  });
  provider.on('server_error', (ctx, error) => console.error('oidc-provider:', error));
  server.on('request', provider.callback());
  console.log(JSON.stringify({ issuer }));
});

process.on('SIGTERM', () => server.close(() => process.exit(0)));
