// The official TypeScript SDK client signs in by itself: given only the server's URL and its own client
// credentials, it meets the 401, reads the protected-resource metadata the challenge names, discovers the
// authorization server, gets a token for this server (client credentials, RFC 8707 resource) and retries; a call
// beyond its scopes meets 403 insufficient_scope, and the client asks for the scope named (step-up).
// Usage: node ts_sign_in.mjs <url> <client id> <client secret> <issuer> <scope>. Prints one JSON line. (The SDK's
// client-credentials grant asks for the scope it was given, not the one a challenge names.)
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { ClientCredentialsProvider } from "@modelcontextprotocol/sdk/client/auth-extensions.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

const [url, clientId, clientSecret, expectedIssuer, scope] = process.argv.slice(2);
const requests = []; // what the client asked where, and the answer's status (and a challenge's scope): no token
const fetchFn = async (input, init) => {
  const answer = await fetch(input, init);
  const where = new URL(input instanceof Request ? input.url : String(input));
  const challenged = /scope="([^"]*)"/.exec(answer.headers.get("www-authenticate") ?? "")?.[1];
  requests.push({ method: init?.method ?? "GET", path: where.pathname, status: answer.status, scope: challenged });
  return answer;
};
const provider = new ClientCredentialsProvider({ clientId, clientSecret, expectedIssuer, scope });
const transport = new StreamableHTTPClientTransport(new URL(url), { authProvider: provider, fetch: fetchFn });
const client = new Client({ name: "ts-sdk-sign-in", version: "1.0.0" });
await client.connect(transport);
const report = { sessionId: transport.sessionId ?? null, scope: provider.tokens()?.scope ?? null };
report.tools = (await client.listTools()).tools.map((t) => t.name);
try {
  const run = await client.callTool({ name: "execRun", arguments: { command: "echo signed-in-by-itself" } });
  report.execStdout = run.structuredContent?.stdout ?? null;
  const listed = await client.callTool({ name: "listSessions", arguments: {} });
  report.sessions = listed.structuredContent?.sessions?.map((s) => s.id) ?? [];
} catch (error) {
  report.execThrew = String(error?.message ?? error);
}
report.requests = requests;
console.log(JSON.stringify(report));
await client.close().catch(() => {});
