// What this server's schema offers beyond the base (fields other changes add: usage, human
// input), read by introspection once; with introspection off, the base schema is assumed.
import type { Transport } from "./transport";

export interface Caps {
  statuses: string[];
  usageSelection: string; // GraphQL selection for usage on Execution ("" when none)
  usagePaths: { tokens: string[][]; cost: string[][] };
  humanInput: boolean; // respondToExecution(id, approve, feedback)
  inputDeadline: boolean; // Execution.inputDeadlineAt
  mutations: Set<string>;
}

const BASE_STATUSES = ["QUEUED", "RUNNING", "CANCELLING", "WAITING_FOR_INPUT", "COMPLETED", "FAILED", "CANCELLED", "CRASHED"];

interface TypeRef { name: string | null; kind: string; ofType?: TypeRef | null }
interface Field { name: string; type: TypeRef; args?: { name: string; type: TypeRef }[] }

const unwrap = (t: TypeRef): TypeRef => (t.ofType ? unwrap(t.ofType) : t);
const TYPE = "name kind ofType { name kind ofType { name kind ofType { name kind } } }";

export async function readCaps(t: Transport): Promise<Caps> {
  const caps: Caps = { statuses: BASE_STATUSES.filter((s) => s !== "WAITING_FOR_INPUT"), usageSelection: "", usagePaths: { tokens: [], cost: [] }, humanInput: false, inputDeadline: false, mutations: new Set(["createExecution", "cancelExecution", "retryExecution"]) };
  let data: any;
  try {
    data = await t.request(`query DashboardSchema {
      execution: __type(name: "Execution") { fields { name type { ${TYPE} } } }
      status: __type(name: "ExecutionStatus") { enumValues { name } }
      mutation: __type(name: "Mutation") { fields { name args { name type { ${TYPE} } } } }
    }`);
  } catch {
    return caps; // introspection off: the base schema
  }
  caps.statuses = (data.status?.enumValues ?? []).map((v: { name: string }) => v.name);
  caps.mutations = new Set((data.mutation?.fields ?? []).map((f: Field) => f.name));
  const fields: Field[] = data.execution?.fields ?? [];
  const usage: string[] = [];
  for (const f of fields) {
    const base = unwrap(f.type);
    if (/token|cost/i.test(f.name) && base.kind === "SCALAR") {
      usage.push(f.name);
      (/cost/i.test(f.name) ? caps.usagePaths.cost : caps.usagePaths.tokens).push([f.name]);
    } else if (/usage/i.test(f.name) && base.kind === "OBJECT" && base.name) {
      const sub = await t.request(`query DashboardUsage { t: __type(name: "${base.name}") { fields { name type { ${TYPE} } } } }`).catch(() => null);
      const scalars = ((sub as any)?.t?.fields ?? []).filter((x: Field) => unwrap(x.type).kind === "SCALAR").map((x: Field) => x.name);
      if (scalars.length) {
        usage.push(`${f.name} { ${scalars.join(" ")} }`);
        for (const s of scalars) {
          if (/cost/i.test(s)) caps.usagePaths.cost.push([f.name, s]);
          else if (/total.*token|^tokens$/i.test(s)) caps.usagePaths.tokens.unshift([f.name, s]);
          else if (/token/i.test(s)) caps.usagePaths.tokens.push([f.name, s]);
        }
      }
    }
  }
  caps.usageSelection = usage.join(" ");
  caps.humanInput = caps.mutations.has("respondToExecution");
  caps.inputDeadline = fields.some((f) => f.name === "inputDeadlineAt");
  return caps;
}

/** Tokens and cost of an execution, from whichever usage fields the schema has. */
export function usageOf(caps: Caps, row: any): { tokens: number | null; cost: number | null } {
  const pick = (paths: string[][]): number | null => {
    let total: number | null = null;
    for (const path of paths) {
      let v = row;
      for (const p of path) v = v?.[p];
      if (typeof v === "number") {
        if (paths === caps.usagePaths.tokens && /total|^tokens$/i.test(path[path.length - 1])) return v;
        total = (total ?? 0) + v;
      }
    }
    return total;
  };
  return { tokens: pick(caps.usagePaths.tokens), cost: pick(caps.usagePaths.cost) };
}
