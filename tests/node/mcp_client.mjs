// A real MCP client (@modelcontextprotocol/sdk's Client over stdio) for
// tests/integration/test_mcp.py: starts the server command given after
// "--" (for the tests: sluicectl exec ... -- mcp-server-postgres URL),
// lists its tools, calls one, and prints what it got as one JSON object:
//
//   node mcp_client.mjs [--tool query] [--sql SQL]... -- COMMAND [ARG...]
//   {"server": {...}, "tools": ["query"], "calls": [{"sql": ..., "isError": false,
//    "content": [...]} | {"sql": ..., "error": "message"}]}
//
// The server inherits this process's environment (DBUS_SYSTEM_BUS_ADDRESS,
// SLUICE_CONFIG, the pam_wrapper variables). Exits 0 when the session with
// the server worked (a tool call that failed is reported, not fatal), 1 when
// the server could not be started or talked to, 2 on a usage error.
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";

function usage(message) {
  process.stderr.write(`mcp_client: ${message}\n` +
    "usage: node mcp_client.mjs [--tool NAME] [--sql SQL]... -- COMMAND [ARG...]\n");
  process.exit(2);
}

const argv = process.argv.slice(2);
const dashdash = argv.indexOf("--");
if (dashdash < 0 || dashdash === argv.length - 1) usage("the server command goes after --");
const [command, ...args] = argv.slice(dashdash + 1);
let tool = "query";
const sqls = [];
for (let i = 0; i < dashdash; i++) {
  const a = argv[i];
  if ((a === "--tool" || a === "--sql") && i + 1 < dashdash) {
    if (a === "--tool") tool = argv[++i];
    else sqls.push(argv[++i]);
  } else {
    usage(`unexpected argument ${JSON.stringify(a)}`);
  }
}

const env = {};
for (const [k, v] of Object.entries(process.env)) if (typeof v === "string") env[k] = v;

const transport = new StdioClientTransport({ command, args, env, stderr: "inherit" });
const client = new Client({ name: "sluice-test-client", version: "1.0.0" });
const out = { server: null, tools: [], calls: [] };
let status = 0;
try {
  await client.connect(transport);
  out.server = client.getServerVersion() ?? null;
  const listed = await client.listTools();
  out.tools = listed.tools.map((t) => t.name);
  for (const sql of sqls) {
    try {
      const r = await client.callTool({ name: tool, arguments: { sql } });
      out.calls.push({ sql, isError: Boolean(r.isError), content: r.content });
    } catch (e) {
      out.calls.push({ sql, error: String(e?.message ?? e) });
    }
  }
} catch (e) {
  process.stderr.write(`mcp_client: ${e?.stack ?? e}\n`);
  status = 1;
} finally {
  try {
    await client.close();
  } catch (e) {
    process.stderr.write(`mcp_client: close: ${e?.message ?? e}\n`);
  }
}
process.stdout.write(JSON.stringify(out) + "\n");
process.exit(status);
