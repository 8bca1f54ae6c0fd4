import "./style.css";
// crewql's live dashboard: hash routes #/ (executions), #/e/<id> (one execution), #/launch.
import { errorBox, h } from "./dom";
import { ExecutionPage } from "./execution";
import { ExecutionsPage, type Filter } from "./executions";
import { LaunchPage } from "./launch";
import { type Caps, readCaps } from "./schema";
import { Transport, Unauthorized } from "./transport";

interface Page { el: HTMLElement; mount(): Promise<void>; unmount(): void }
interface Me { role: "VIEWER" | "EDITOR" | "ADMIN"; authenticated: boolean; keyPrefix: string }

const config = JSON.parse(document.getElementById("crewql-config")!.textContent!) as { graphqlPath: string };
const t = new Transport(config.graphqlPath);
const root = document.getElementById("app")!;
const main = h("main", {});
const status = h("span", { class: "conn", "data-testid": "connection" }, "connecting");
const who = h("span", { class: "who" });
const nav = h("nav", {}, h("a", { href: "#/" }, "Executions"), h("a", { href: "#/launch", "data-testid": "nav-launch" }, "Launch"));
let page: Page | null = null;
let caps: Caps | null = null;
let me: Me | null = null;
let crews: { id: string; name: string }[] = [];

root.append(h("header", {}, h("h1", {}, h("a", { href: "#/" }, "crewql")), nav, h("span", { class: "grow" }), who, status), main);

t.onState((state) => {
  status.textContent = { connecting: "connecting…", live: "live", reconnecting: "reconnecting…", http: "live (HTTP)", unauthorized: "key needed" }[state];
  status.className = `conn c-${state}`;
  if (state === "unauthorized") askForKey("The server refused the key (401/4401): enter a valid API key.");
});

function askForKey(message: string): void {
  page?.unmount();
  page = null;
  t.stop();
  const input = h("input", { type: "password", autocomplete: "off", placeholder: "cq_…", "data-testid": "key-input" });
  const form = h("form", { class: "key-form" }, h("h2", {}, "API key"), errorBox(message),
    h("p", { class: "muted" }, "The key stays in this tab only (sessionStorage) and is sent as Authorization: Bearer."),
    input, h("button", { type: "submit", "data-testid": "key-submit" }, "Use key"));
  form.addEventListener("submit", (e) => { e.preventDefault(); t.key = input.value.trim(); void boot(); });
  main.replaceChildren(form);
  input.focus();
}

function parseFilter(query: URLSearchParams): Filter {
  const statuses = new Set((query.get("status") ?? "").split(",").filter(Boolean));
  return { statuses, crewId: query.get("crew") };
}

function filterHash(f: Filter): string {
  const q = new URLSearchParams();
  if (f.statuses.size) q.set("status", [...f.statuses].join(","));
  if (f.crewId) q.set("crew", f.crewId);
  const s = q.toString();
  return s ? `#/?${s}` : "#/";
}

const go = (hash: string): void => { location.hash = hash; };

async function route(): Promise<void> {
  if (!caps || !me) return;
  page?.unmount();
  const [path, query] = (location.hash.slice(1) || "/").split("?");
  const params = new URLSearchParams(query ?? "");
  const mayEdit = me.role !== "VIEWER";
  nav.querySelector('[href="#/launch"]')?.toggleAttribute("hidden", !mayEdit);
  if (path.startsWith("/e/")) page = new ExecutionPage(t, caps, decodeURIComponent(path.slice(3)), mayEdit, go);
  else if (path === "/launch" && mayEdit) page = new LaunchPage(t, go, params.get("crew"));
  else page = new ExecutionsPage(t, caps, parseFilter(params), crews, (f) => go(filterHash(f)));
  main.replaceChildren(page.el);
  try {
    await page.mount();
  } catch (e) {
    if (!(e instanceof Unauthorized)) main.append(errorBox(String((e as Error).message ?? e)));
  }
}

async function boot(): Promise<void> {
  try {
    me = (await t.request<{ me: Me }>("query DashboardMe { me { role authenticated keyPrefix } }")).me;
  } catch (e) {
    if (e instanceof Unauthorized) askForKey(t.key ? "That key was refused (401)." : "This server needs an API key.");
    else main.replaceChildren(errorBox(`Cannot reach the server: ${(e as Error).message ?? e}`));
    return;
  }
  who.replaceChildren(me.authenticated ? h("span", {}, `${me.keyPrefix} · ${me.role.toLowerCase()} `, h("button", { class: "link", onclick: () => { t.key = null; askForKey("Key forgotten."); } }, "forget key")) : "");
  caps = await readCaps(t);
  crews = (await t.request("query DashboardCrewNames { crews(first: 100) { nodes { id name } } }")).crews.nodes;
  t.start();
  await route();
}

window.addEventListener("hashchange", () => void route());
(window as any).crewqlDashboard = { transport: t, page: () => page };
void boot();
