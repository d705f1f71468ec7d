// A second, independent MCP client for tests/test_mcp_typescript.py: the TypeScript SDK.
//
//   MCP_TOKEN=<jwt> node client.mjs http://127.0.0.1:PORT/mcp [tool ...]
//
// Connects over streamable HTTP with `Authorization: Bearer $MCP_TOKEN` (no header when unset or
// empty; the token comes from the environment so it does not show in process listings), lists
// the tools and calls each named tool (default: whoami) without arguments. Prints one JSON line:
// {"ok": true, "tools": [...], "results": {tool: {structured, text, isError}}} and exits 0, or
// {"ok": false, "status": <HTTP status or null>, "error": "..."} and exits 1.
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

const [url, ...tools] = process.argv.slice(2);
if (!url) {
  console.error("usage: MCP_TOKEN=<jwt> node client.mjs <mcp url> [tool ...]");
  process.exit(2);
}
const token = process.env.MCP_TOKEN;
const headers = token ? { Authorization: `Bearer ${token}` } : {};
const transport = new StreamableHTTPClientTransport(new URL(url), { requestInit: { headers } });
const client = new Client({ name: "mcp-oauth2-ts-client", version: "0.0.0" });

try {
  await client.connect(transport);
  const listed = await client.listTools();
  const results = {};
  for (const name of tools.length ? tools : ["whoami"]) {
    const result = await client.callTool({ name, arguments: {} });
    results[name] = {
      structured: result.structuredContent ?? null,
      text: result.content.filter((c) => c.type === "text").map((c) => c.text).join(""),
      isError: Boolean(result.isError),
    };
  }
  console.log(JSON.stringify({ ok: true, tools: listed.tools.map((t) => t.name).sort(), results }));
  await client.close();
} catch (error) {
  const status = typeof error?.code === "number" && error.code >= 100 ? error.code : null;
  console.log(JSON.stringify({ ok: false, status, error: String(error?.message ?? error) }));
  await client.close().catch(() => {});
  process.exitCode = 1;
}
