// The executions page: live table, counts per status, filters, paging back.
import { badge, duration, errorBox, h, when } from "./dom";
import { live } from "./live";
import { type Caps, usageOf } from "./schema";
import type { Transport } from "./transport";

interface Row {
  id: string; name: string; status: string; crewName: string; crewId: string | null;
  createdAt: string; startedAt: string | null; finishedAt: string | null; lastSeq: number;
  [usage: string]: unknown;
}
interface Update { executionId: string; seq: number; type: string; status: string; createdAt: string }

const PAGE = 50;
const TERMINAL = new Set(["COMPLETED", "FAILED", "CANCELLED", "CRASHED"]);
// Events may commit slightly out of their timestamps' order: resume a little earlier than the
// last one seen (repeats are recognised by execution and seq, and dropped).
const RESUME_MARGIN_MS = 5_000;

export interface Filter { statuses: Set<string>; crewId: string | null }

export class ExecutionsPage {
  readonly el = h("section", { class: "executions" });
  private rows = new Map<string, Row>();
  private trs = new Map<string, HTMLTableRowElement>();
  private tbody = h("tbody");
  private countsEl = h("div", { class: "counts", "data-testid": "counts" });
  // Shown once the first page says there is more (a click before that would have no cursor).
  private moreBtn = h("button", { class: "more", hidden: true, onclick: () => void this.loadMore() }, "Load older");
  private info = h("div", { class: "info" });
  private endCursor: string | null = null;
  private lastSeen: string | null = null;
  private disposers: (() => void)[] = [];
  private pending = new Set<string>();
  private frame = 0;
  private refreshTimer = 0;
  private countsTimer = 0;
  private ticker = 0;
  readonly rendered: { rows: number; at: number } = { rows: 0, at: 0 };

  constructor(private t: Transport, private caps: Caps, private filter: Filter, private crews: { id: string; name: string }[], private navigate: (f: Filter) => void) {}

  private rowFields(): string {
    return `id name status crewName crewId createdAt startedAt finishedAt lastSeq ${this.caps.usageSelection}`;
  }

  async mount(): Promise<void> {
    const statusSelect = h("div", { class: "filters" },
      h("label", {}, "Crew ",
        (() => {
          const sel = h("select", { "data-testid": "crew-filter", onchange: (e: Event) => this.navigate({ ...this.filter, crewId: (e.target as HTMLSelectElement).value || null }) },
            h("option", { value: "" }, "all crews"),
            ...this.crews.map((c) => h("option", { value: c.id, selected: c.id === this.filter.crewId }, c.name)));
          return sel;
        })()),
      this.filter.statuses.size ? h("button", { class: "link", onclick: () => this.navigate({ ...this.filter, statuses: new Set() }) }, "show every status") : null);
    const usageHeads = this.caps.usageSelection ? [h("th", { class: "num" }, "Tokens"), h("th", { class: "num" }, "Cost")] : [];
    const table = h("table", { class: "grid", "data-testid": "executions" },
      h("thead", {}, h("tr", {}, h("th", {}, "Status"), h("th", {}, "Name"), h("th", {}, "Crew"), h("th", {}, "Started"), h("th", { class: "num" }, "Duration"), ...usageHeads)),
      this.tbody);
    this.el.append(this.countsEl, statusSelect, table, this.moreBtn, this.info);
    const started = performance.now();
    await Promise.all([this.loadPage(null), this.refreshCounts()]);
    this.flush();
    this.rendered.rows = this.rows.size;
    this.rendered.at = performance.now() - started;
    this.disposers.push(live<{ executionUpdates: Update }>(this.t, {
      query: "subscription DashboardUpdates($filter: ExecutionUpdatesFilter, $after: DateTime) { executionUpdates(filter: $filter, after: $after) { executionId seq type status createdAt } }",
      variables: () => ({
        filter: this.filter.crewId ? { crewId: this.filter.crewId } : null,
        after: this.lastSeen ? new Date(Date.parse(this.lastSeen) - RESUME_MARGIN_MS).toISOString() : new Date(Date.now() - RESUME_MARGIN_MS).toISOString(),
      }),
      next: (d) => this.apply(d.executionUpdates),
      error: (errors) => this.info.replaceChildren(errorBox(errors.map((e) => e.message).join("; "))),
      resync: () => { this.scheduleRefresh(); this.scheduleCounts(); },
    }));
    this.ticker = window.setInterval(() => this.tick(), 1000);
  }

  unmount(): void {
    for (const d of this.disposers) d();
    clearInterval(this.ticker);
    cancelAnimationFrame(this.frame);
    clearTimeout(this.refreshTimer);
    clearTimeout(this.countsTimer);
  }

  private variables(after: string | null, first = PAGE): Record<string, unknown> {
    const filter: Record<string, unknown> = {};
    if (this.filter.statuses.size) filter.statuses = [...this.filter.statuses];
    if (this.filter.crewId) filter.crewId = this.filter.crewId;
    return { first, after, filter };
  }

  private async loadPage(after: string | null, first = PAGE): Promise<void> {
    const data = await this.t.request(`query DashboardExecutions($first: Int, $after: String, $filter: ExecutionFilter) {
      executions(first: $first, after: $after, filter: $filter) { nodes { ${this.rowFields()} } pageInfo { hasNextPage endCursor } } }`, this.variables(after, first));
    const conn = data.executions;
    for (const node of conn.nodes as Row[]) this.merge(node);
    if (after !== null || this.endCursor === null) {
      this.endCursor = conn.pageInfo.endCursor;
      this.moreBtn.hidden = !conn.pageInfo.hasNextPage;
    }
  }

  private async loadMore(): Promise<void> {
    if (!this.endCursor) return;
    this.moreBtn.disabled = true;
    try { await this.loadPage(this.endCursor); } finally { this.moreBtn.disabled = false; }
    this.flush();
  }

  private async refreshCounts(): Promise<void> {
    const data = await this.t.request("query DashboardCounts($crewId: ID) { executionStatusCounts(crewId: $crewId) { status count } }", { crewId: this.filter.crewId });
    const counts: { status: string; count: number }[] = data.executionStatusCounts;
    const total = counts.reduce((n, c) => n + c.count, 0);
    this.countsEl.replaceChildren(
      h("span", { class: "count total" }, h("b", {}, total), " total"),
      ...counts.filter((c) => c.count > 0 || !TERMINAL.has(c.status)).map((c) =>
        h("button", {
          class: `count s-${c.status.toLowerCase()}${this.filter.statuses.has(c.status) ? " on" : ""}`,
          "data-status": c.status,
          title: `show only ${c.status}`,
          onclick: () => {
            const next = new Set(this.filter.statuses);
            if (next.has(c.status)) next.delete(c.status); else next.add(c.status);
            this.navigate({ ...this.filter, statuses: next });
          },
        }, h("b", {}, c.count), " ", c.status.replaceAll("_", " ").toLowerCase())));
  }

  private wanted(status: string): boolean {
    return !this.filter.statuses.size || this.filter.statuses.has(status);
  }

  /** A row read from the server: kept if newer than what we have. */
  private merge(node: Row): void {
    const have = this.rows.get(node.id);
    if (have && have.lastSeq > node.lastSeq) return;
    this.rows.set(node.id, node);
    this.pending.add(node.id);
  }

  /** One status change from the feed; duplicates (same execution, seq seen) are dropped. */
  apply(u: Update): void {
    if (!this.lastSeen || u.createdAt > this.lastSeen) this.lastSeen = u.createdAt;
    const row = this.rows.get(u.executionId);
    if (!row) {
      if (this.wanted(u.status)) this.scheduleRefresh(); // a new one (or one paged out): read it
      this.scheduleCounts();
      return;
    }
    if (u.seq <= row.lastSeq) return;
    row.lastSeq = u.seq;
    row.status = u.status;
    if (u.type === "EXECUTION_STARTED") row.startedAt = u.createdAt;
    if (TERMINAL.has(u.status)) {
      row.finishedAt = u.createdAt;
      if (this.caps.usageSelection) this.scheduleRefresh();
    }
    this.pending.add(row.id);
    this.scheduleCounts();
    this.schedule();
  }

  private scheduleRefresh(): void {
    if (this.refreshTimer) return;
    this.refreshTimer = window.setTimeout(async () => {
      this.refreshTimer = 0;
      try { await this.loadPage(null, PAGE); } catch { /* the next change or reconnect retries */ }
      this.schedule();
    }, 150);
  }

  private scheduleCounts(): void {
    if (this.countsTimer) return;
    this.countsTimer = window.setTimeout(async () => {
      this.countsTimer = 0;
      try { await this.refreshCounts(); } catch { /* idem */ }
    }, 400);
  }

  private schedule(): void {
    if (!this.frame) this.frame = requestAnimationFrame(() => { this.frame = 0; this.flush(); });
  }

  /** Writes the changed rows into the table (created newest first; ties by id). */
  private flush(): void {
    for (const id of this.pending) {
      const row = this.rows.get(id)!;
      let tr = this.trs.get(id);
      if (!this.wanted(row.status)) {
        tr?.remove();
        this.trs.delete(id);
        continue;
      }
      const fresh = !tr;
      tr ??= h("tr", { "data-id": id, "data-testid": "execution-row" });
      this.fill(tr, row);
      if (fresh) {
        this.trs.set(id, tr);
        this.insert(tr, row);
      }
    }
    this.pending.clear();
    this.info.textContent = `${this.trs.size} shown`;
  }

  private insert(tr: HTMLTableRowElement, row: Row): void {
    const key = row.createdAt + row.id;
    for (const other of this.tbody.children) {
      const o = this.rows.get((other as HTMLElement).dataset.id!)!;
      if (o.createdAt + o.id < key) { this.tbody.insertBefore(tr, other); return; }
    }
    this.tbody.append(tr);
  }

  private fill(tr: HTMLTableRowElement, row: Row): void {
    const cells = [
      badge(row.status),
      h("a", { href: `#/e/${row.id}` }, row.name),
      row.crewName,
      when(row.startedAt ?? row.createdAt),
      duration(row.startedAt, row.finishedAt),
    ];
    if (this.caps.usageSelection) {
      const u = usageOf(this.caps, row);
      cells.push(u.tokens === null ? "–" : u.tokens.toLocaleString(), u.cost === null ? "–" : `$${u.cost.toFixed(4)}`);
    }
    tr.dataset.status = row.status;
    tr.replaceChildren(...cells.map((c, i) => h("td", { class: i >= 4 ? "num" : "" }, c)));
  }

  private tick(): void {
    for (const [id, tr] of this.trs) {
      const row = this.rows.get(id)!;
      if (row.startedAt && !row.finishedAt) (tr.children[4] as HTMLElement).textContent = duration(row.startedAt, null);
    }
  }
}

