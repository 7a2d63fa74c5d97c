// The official MCP TypeScript SDK doing what studio-mcp's shared server does for `whoami`, the
// way the SDK documents stateless Streamable HTTP: a static bearer check, then a fresh McpServer
// and transport per POST, JSON responses. Prints its bound address on stdout.
//   PORT (default 0: any free port), BENCH_TOKEN (default bench-token)
import http from "node:http";
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js";

const tenants = new Map([
  [
    process.env.BENCH_TOKEN ?? "bench-token",
    {
      tenant: "bench-00000",
      name: "Bench tenant 0",
      toolsets: ["analytics", "cms-write", "github", "webflow"],
      read_only: false,
      webflow_sites: ["000000000000000000000001"],
      writable_collections: [],
      plausible_site: null,
      github_repos: [],
    },
  ],
]);

function mcpServer(tenant) {
  const server = new McpServer({ name: "ts-sdk-bench", version: "0.0.0" });
  server.registerTool(
    "whoami",
    { title: "Who am I", description: "Show the tenant this connection acts for.", inputSchema: {} },
    async () => ({
      content: [{ type: "text", text: JSON.stringify(tenant) }],
      structuredContent: tenant,
    }),
  );
  return server;
}

const httpServer = http.createServer(async (req, res) => {
  try {
    if (req.method === "GET" && req.url === "/healthz") {
      res.end("ok");
      return;
    }
    if (req.method !== "POST" || req.url !== "/mcp") {
      res.writeHead(405).end();
      return;
    }
    const auth = req.headers.authorization ?? "";
    const tenant = auth.startsWith("Bearer ") ? tenants.get(auth.slice(7).trim()) : undefined;
    if (!tenant) {
      res.writeHead(401, { "www-authenticate": 'Bearer realm="ts-sdk-bench"' }).end();
      return;
    }
    const chunks = [];
    for await (const chunk of req) chunks.push(chunk);
    const body = JSON.parse(Buffer.concat(chunks).toString("utf8"));
    const server = mcpServer(tenant);
    const transport = new StreamableHTTPServerTransport({
      sessionIdGenerator: undefined,
      enableJsonResponse: true,
    });
    res.on("close", () => {
      transport.close();
      server.close();
    });
    await server.connect(transport);
    await transport.handleRequest(req, res, body);
  } catch (e) {
    if (!res.headersSent) res.writeHead(500).end(String(e));
  }
});
httpServer.keepAliveTimeout = 120_000;
httpServer.listen(Number(process.env.PORT ?? 0), "127.0.0.1", () => {
  const { address, port } = httpServer.address();
  console.log(`${address}:${port}`);
});
