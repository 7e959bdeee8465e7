// A session driven by the official TypeScript SDK: initialize, list tools, getDocs, a local execRun.
// Usage: node ts_client.mjs stdio <python> <arg>...   |   node ts_client.mjs http <url> [token]
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

const [mode, target, ...rest] = process.argv.slice(2);
let transport;
if (mode === "stdio") {
  transport = new StdioClientTransport({ command: target, args: rest, env: process.env, stderr: "inherit" });
} else {
  const headers = rest[0] ? { Authorization: `Bearer ${rest[0]}` } : {};
  transport = new StreamableHTTPClientTransport(new URL(target), { requestInit: { headers } });
}
const client = new Client({ name: "ts-sdk-check", version: "1.0.0" });
await client.connect(transport);
const tools = await client.listTools();
const docs = await client.callTool({ name: "getDocs", arguments: {} });
const run = await client.callTool({ name: "execRun", arguments: { command: "echo from-typescript" } });
const bad = await client.callTool({ name: "execRun", arguments: { command: 42 } });
console.log(JSON.stringify({
  server: client.getServerVersion(),
  tools: tools.tools.map((t) => ({ name: t.name, hasOutputSchema: Boolean(t.outputSchema), annotations: t.annotations })),
  docsTopics: docs.structuredContent?.topics?.map((t) => t.topic),
  execStdout: run.structuredContent?.stdout,
  execIsError: Boolean(run.isError),
  badIsError: Boolean(bad.isError),
  badText: bad.content?.[0]?.text,
}));
await client.close();
