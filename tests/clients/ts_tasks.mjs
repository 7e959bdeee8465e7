// Tasks in their 2025-11-25 form, driven by the official TypeScript SDK's client (client.experimental.tasks):
// a local run followed to its result, another cancelled, an unknown task, and a plain call beside them.
// Usage: node ts_tasks.mjs stdio <python> <arg>...   |   node ts_tasks.mjs http <url> [token]
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
const client = new Client({ name: "ts-tasks-check", version: "1.0.0" });
await client.connect(transport);
const tools = await client.listTools(); // the client learns each tool's execution.taskSupport here

const seen = (message) => {
  if (message.type === "result") {
    const r = message.result;
    return { type: "result", stdout: r.structuredContent?.stdout, state: r.structuredContent?.state, isError: Boolean(r.isError) };
  }
  if (message.type === "error") return { type: "error", message: message.error.message };
  return { type: message.type, taskId: message.task.taskId, status: message.task.status, ttl: message.task.ttl };
};

// 1. Made a task by the SDK itself: the server declared tasks.requests.tools.call and execRun is "optional".
const followed = [];
const run = { name: "execRun", arguments: { command: "echo one; sleep 1.5; echo two" } };
for await (const message of client.experimental.tasks.callToolStream(run)) followed.push(seen(message));

// 2. Cancelled once created; the stream then ends with the SDK's "was cancelled" error.
const cancelled = [];
let cancelAnswer;
const long = { name: "execRun", arguments: { command: "sleep 300" } };
for await (const message of client.experimental.tasks.callToolStream(long, undefined, { task: { ttl: 60000 } })) {
  cancelled.push(seen(message));
  if (message.type === "taskCreated") cancelAnswer = await client.experimental.tasks.cancelTask(message.task.taskId);
}
const afterCancel = await client.experimental.tasks.getTask(cancelled[0].taskId);
const stopped = await client.callTool({ name: "listSessions", arguments: { status: "stopped" } });

// 3. An unknown task id is the spec's -32602.
let unknown;
try {
  await client.experimental.tasks.getTask("task_nope");
} catch (error) {
  unknown = { code: error.code, message: error.message };
}

// 4. A plain call of the same tool: a normal, synchronous result.
const plain = await client.callTool({ name: "execRun", arguments: { command: "echo plain" } });

console.log(JSON.stringify({
  tasksCapability: client.getServerCapabilities()?.tasks ?? null,
  taskSupport: Object.fromEntries(tools.tools.filter((t) => t.execution).map((t) => [t.name, t.execution.taskSupport])),
  followed,
  cancelled,
  cancelAnswer: { status: cancelAnswer?.status, taskId: cancelAnswer?.taskId },
  afterCancel: afterCancel.status,
  stoppedCommands: stopped.structuredContent?.sessions?.map((s) => s.command),
  unknown,
  plain: { stdout: plain.structuredContent?.stdout, isError: Boolean(plain.isError), task: "task" in plain },
}));
await client.close();
