// Runs graphql-http's GraphQL-over-HTTP audit against a server and prints its results as JSON.
// Usage: node graphql_http_audit.cjs <url> <bearer token>  (graphql-http found via NODE_PATH)
const { auditServer } = require("graphql-http");

const [url, token] = process.argv.slice(2);

function fetchWithToken(input, init = {}) {
  const headers = new Headers(init.headers);
  headers.set("authorization", `Bearer ${token}`);
  return fetch(input, { ...init, headers });
}

auditServer({ url, fetchFn: fetchWithToken }).then(async (results) => {
  const report = [];
  for (const result of results) {
    const entry = { id: result.id, name: result.name, status: result.status };
    if (result.status !== "ok") {
      entry.reason = result.reason;
      entry.response = {
        status: result.response.status,
        contentType: result.response.headers.get("content-type"),
        body: await result.response.text(),
      };
    }
    report.push(entry);
  }
  process.stdout.write(JSON.stringify(report));
});
