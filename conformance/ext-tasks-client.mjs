// A client of the MCP Tasks extension built on the official TypeScript package
// (@modelcontextprotocol/ext-tasks, from conformance/node_modules), over a plain streamable-HTTP port
// with 2026-07-28 request framing. Calls one tool and prints the settled outcome as one JSON line.
//
//   node ext-tasks-client.mjs URL TOOL 'ARGUMENTS-JSON' [cancel]
import { resultFromTaskOutcome, withTasks } from "@modelcontextprotocol/ext-tasks/client";

const [url, tool, argumentsJson, mode] = process.argv.slice(2);
const capabilities = { extensions: { "io.modelcontextprotocol/tasks": {} } };
const seen = [];
let nextId = 1;

async function dispatch(request, options) {
  const body = { jsonrpc: "2.0", id: nextId++, ...request };
  const params = { ...(body.params ?? {}) };
  params._meta = {
    ...(params._meta ?? {}),
    "io.modelcontextprotocol/protocolVersion": "2026-07-28",
    "io.modelcontextprotocol/clientInfo": { name: "ext-tasks-client", version: "1.0.0" },
    "io.modelcontextprotocol/clientCapabilities": capabilities,
  };
  body.params = params;
  const headers = {
    "Content-Type": "application/json",
    Accept: "application/json, text/event-stream",
    "MCP-Protocol-Version": "2026-07-28",
    "Mcp-Method": body.method,
    ...(options?.context?.headers ?? {}),
  };
  const name = params.name ?? params.taskId;
  if (typeof name === "string") headers["Mcp-Name"] = name;
  const response = await fetch(url, { method: "POST", headers, body: JSON.stringify(body), signal: options?.signal });
  const text = await response.text();
  let message;
  if ((response.headers.get("content-type") ?? "").includes("text/event-stream")) {
    const data = text.split("\n").filter((line) => line.startsWith("data:")).map((line) => line.slice(5).trim());
    message = data.map((line) => JSON.parse(line)).find((m) => m.id === body.id);
  } else {
    message = JSON.parse(text);
  }
  seen.push({ method: body.method, resultType: message?.result?.resultType, status: message?.result?.status });
  if (message.error) return { kind: "error", error: message.error };
  return { kind: "result", result: message.result };
}

const port = {
  endpointId: url,
  taskCapabilities: { generation: "v2", capabilities: {} },
  dispatch,
  onServerRequest: () => () => {},
  onNotification: () => () => {},
  onInvalidated: () => () => {},
  get invalidated() { return false; },
};

const session = withTasks(port);
try {
  const execution = await session.callTool(tool, JSON.parse(argumentsJson));
  if (mode === "cancel") {
    await new Promise((resolve) => setTimeout(resolve, 500));
    await execution.cancel?.();
  }
  const { outcome } = await execution.settle();
  let result = null;
  try { result = resultFromTaskOutcome(outcome); } catch (error) { result = { error: String(error) }; }
  console.log(JSON.stringify({ outcome: outcome.status ?? outcome.kind, result, seen }));
} finally {
  await session.close();
}
