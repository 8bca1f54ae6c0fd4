// graphql-http's audit of a GraphQL-over-HTTP server, run against a live crewql.
// Prints one JSON line: {"MUST": {"ok": n, "total": n}, "SHOULD": {...}, "MAY": {...}, "failed": [...]}
import { serverAudits } from "graphql-http";

const url = process.env.CREWQL_URL ?? "http://127.0.0.1:8000/graphql";
const key = process.env.CREWQL_KEY;

// Every audit request carries the key (the audit itself knows nothing of authentication).
const fetchFn = (input, init = {}) => {
  const headers = new Headers(init.headers);
  if (key) headers.set("authorization", `Bearer ${key}`);
  return fetch(input, { ...init, headers });
};

const summary = { MUST: { ok: 0, total: 0 }, SHOULD: { ok: 0, total: 0 }, MAY: { ok: 0, total: 0 } };
const failed = [];
for (const audit of serverAudits({ url, fetchFn })) {
  const level = audit.name.split(" ")[0];
  const result = await audit.fn();
  summary[level].total += 1;
  if (result.status === "ok") summary[level].ok += 1;
  else failed.push({ name: audit.name, status: result.status, reason: result.reason });
}
console.log(JSON.stringify({ ...summary, failed }));
