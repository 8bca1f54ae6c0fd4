// One execution: tasks as a timeline, output streaming in, events (tool calls, logs, errors),
// usage, and the controls a role allows (cancel, force, retry, human input).
import { append, badge, duration, errorBox, h, when } from "./dom";
import { live } from "./live";
import { type Caps, usageOf } from "./schema";
import { GraphQLFailure, type Transport } from "./transport";

interface Task { position: number; name: string; agentName: string; status: string; output: string; error: string | null; startedAt: string | null; finishedAt: string | null }
interface Event { seq: number; type: string; status: string; taskPosition: number | null; message: string; data: any; createdAt: string }

const TERMINAL = new Set(["COMPLETED", "FAILED", "CANCELLED", "CRASHED"]);
const MAX_LOG = 300;
const HISTORY = 1000; // events read when the page opens (the server's most per request)

export class ExecutionPage {
  readonly el = h("section", { class: "execution" });
  private exec: any = null;
  private lastSeq = 0;
  private dispose: (() => void) | null = null;
  private outputs = new Map<number, HTMLElement>();
  private log = h("ol", { class: "log", "data-testid": "event-log" });
  private head = h("div", { class: "head" });
  private timeline = h("div", { class: "timeline", "data-testid": "timeline" });
  private message = h("div", { class: "message" });
  private ticker = 0;
  private frame = 0;
  private chunks = new Map<number, string>();
  private askedPosition: number | null = null; // the task of the last INPUT_REQUESTED
  /** Output events received and when (first, last): the page's own throughput figure. */
  readonly outputStats = { events: 0, first: 0, last: 0 };

  constructor(private t: Transport, private caps: Caps, private id: string, private mayEdit: boolean, private go: (hash: string) => void) {}

  private fields(): string {
    const deadline = this.caps.inputDeadline ? "inputDeadlineAt" : "";
    return `id name status crewName crewId inputs result error createdAt startedAt finishedAt lastSeq parentId ${deadline}
      retries { id status } tasks { position name agentName status output error startedAt finishedAt } ${this.caps.usageSelection}`;
  }

  async mount(): Promise<void> {
    this.el.append(this.head, this.message, h("h3", {}, "Tasks"), this.timeline, h("h3", {}, "Events"), this.log);
    if (!(await this.reload())) return;
    this.dispose = live<{ executionEvents: Event }>(this.t, {
      query: "subscription DashboardEvents($id: ID!, $after: Int) { executionEvents(executionId: $id, after: $after) { seq type status taskPosition message data createdAt } }",
      variables: () => ({ id: this.id, after: this.lastSeq }),
      next: (d) => this.apply(d.executionEvents),
      error: (errors) => this.message.replaceChildren(errorBox(errors.map((e) => e.message).join("; "))),
    });
    this.ticker = window.setInterval(() => this.renderTimes(), 1000);
  }

  unmount(): void { this.dispose?.(); clearInterval(this.ticker); cancelAnimationFrame(this.frame); }

  private async reload(): Promise<boolean> {
    const data = await this.t.request(`query DashboardExecution($id: ID!) { execution(id: $id) { ${this.fields()} } }`, { id: this.id });
    if (!data.execution) {
      this.el.replaceChildren(errorBox(`No execution ${this.id} in your workspace.`));
      return false;
    }
    const first = this.exec === null;
    this.exec = data.execution;
    if (first) {
      // The latest events for the log (output chunks among them are not listed); later ones
      // come from the subscription, which starts after `lastSeq`.
      const upTo = this.exec.lastSeq;
      const history = await this.t.request(`query DashboardHistory($id: ID!, $after: Int!) { execution(id: $id) {
        events(after: $after, first: ${HISTORY}) { seq type status taskPosition message data createdAt } } }`, { id: this.id, after: Math.max(0, upTo - HISTORY) });
      for (const e of (history.execution?.events ?? []) as Event[]) if (e.seq <= upTo) this.logEvent(e);
    }
    this.lastSeq = Math.max(this.lastSeq, this.exec.lastSeq);
    this.render();
    return true;
  }

  private apply(e: Event): void {
    if (e.seq <= this.lastSeq) return; // a repeat after a reconnect
    this.lastSeq = e.seq;
    this.exec.status = e.status;
    const task: Task | undefined = e.taskPosition === null ? undefined : this.exec.tasks[e.taskPosition];
    if (e.type === "TASK_OUTPUT" && task) {
      const now = performance.now();
      this.outputStats.events++;
      this.outputStats.first ||= now;
      this.outputStats.last = now;
      task.output += e.data?.text ?? e.message;
      this.chunks.set(task.position, (this.chunks.get(task.position) ?? "") + (e.data?.text ?? e.message));
      this.scheduleOutput();
      return; // output is shown in the task, not the event log
    }
    if (e.type === "TASK_STARTED" && task) { task.status = "RUNNING"; task.startedAt = e.createdAt; }
    if (e.type === "TASK_COMPLETED" && task) { task.status = "COMPLETED"; task.finishedAt = e.createdAt; }
    if (e.type === "TASK_FAILED" && task) { task.status = "FAILED"; task.finishedAt = e.createdAt; task.error = e.data?.error ?? e.message; }
    if (e.type === "EXECUTION_STARTED") this.exec.startedAt = e.createdAt;
    this.logEvent(e);
    if (TERMINAL.has(e.status)) { void this.reload(); return; } // final outputs, result, usage
    this.render();
  }

  private scheduleOutput(): void {
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      for (const [position, text] of this.chunks) {
        const pre = this.outputs.get(position);
        if (!pre) continue;
        const stick = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
        pre.append(text);
        if (stick) pre.scrollTop = pre.scrollHeight;
      }
      this.chunks.clear();
    });
  }

  private logEvent(e: Event): void {
    if (e.type === "TASK_OUTPUT") return;
    if (e.type === "INPUT_REQUESTED") this.askedPosition = e.taskPosition;
    const detail = e.type.startsWith("TOOL") || e.data?.tool ? JSON.stringify(e.data) : "";
    this.log.prepend(h("li", { class: `ev t-${e.type.toLowerCase()}` }, h("time", {}, when(e.createdAt)), " ", h("code", {}, e.type), " ", e.message, detail ? h("pre", {}, detail) : null));
    while (this.log.children.length > MAX_LOG) this.log.lastElementChild?.remove();
  }

  private render(): void {
    const x = this.exec;
    const usage = this.caps.usageSelection ? usageOf(this.caps, x) : null;
    const actions: HTMLElement[] = [];
    if (this.mayEdit) {
      if (!TERMINAL.has(x.status)) {
        actions.push(h("button", { "data-testid": "cancel", onclick: () => this.cancel(false) }, "Cancel"));
        actions.push(h("button", { class: "danger", "data-testid": "force-cancel", onclick: () => this.cancel(true) }, "Force cancel"));
      } else {
        actions.push(h("button", { "data-testid": "retry", onclick: () => this.retry() }, "Retry"));
      }
    }
    this.head.replaceChildren();
    append(this.head, [
      h("h2", {}, badge(x.status), " ", x.name),
      h("dl", {},
        h("dt", {}, "Crew"), h("dd", {}, x.crewId ? h("a", { href: `#/?crew=${x.crewId}` }, x.crewName) : x.crewName),
        h("dt", {}, "Created"), h("dd", {}, when(x.createdAt)),
        h("dt", {}, "Duration"), h("dd", { "data-testid": "duration" }, duration(x.startedAt, x.finishedAt)),
        usage ? [h("dt", {}, "Tokens"), h("dd", {}, usage.tokens?.toLocaleString() ?? "–"), h("dt", {}, "Cost"), h("dd", {}, usage.cost === null ? "–" : `$${usage.cost.toFixed(4)}`)] : null,
        h("dt", {}, "Inputs"), h("dd", {}, h("code", {}, JSON.stringify(x.inputs))),
        x.parentId ? [h("dt", {}, "Retry of"), h("dd", {}, h("a", { href: `#/e/${x.parentId}` }, x.parentId))] : null,
        x.retries?.length ? [h("dt", {}, "Retried as"), h("dd", {}, ...x.retries.map((r: any) => h("a", { href: `#/e/${r.id}` }, `${r.id.slice(0, 8)}… `)))] : null),
      h("div", { class: "actions" }, ...actions),
      x.error ? errorBox(x.error) : null,
      this.humanInput(),
      x.result && TERMINAL.has(x.status) ? h("details", {}, h("summary", {}, "Result"), h("pre", {}, JSON.stringify(x.result, null, 2))) : null]);
    this.renderTasks();
  }

  private humanInput(): HTMLElement | null {
    if (this.exec.status !== "WAITING_FOR_INPUT") return null;
    const asked: Task | undefined = this.askedPosition === null ? undefined : this.exec.tasks[this.askedPosition];
    const deadline = this.exec.inputDeadlineAt ? h("p", { class: "muted" }, `Answer before ${when(this.exec.inputDeadlineAt)}.`) : null;
    const intro = h("p", {}, `Waiting for a person to review ${asked ? `the answer of “${asked.name}”` : "the last answer"}.`);
    if (!this.caps.humanInput || !this.mayEdit) return h("div", { class: "waiting", "data-testid": "waiting" }, intro, deadline);
    const text = h("textarea", { rows: 3, placeholder: "Feedback: what the agent should change", "data-testid": "feedback" });
    const respond = (approve: boolean, feedback: string | null): void => {
      void this.mutate("mutation DashboardRespond($id: ID!, $approve: Boolean!, $feedback: String) { respondToExecution(id: $id, approve: $approve, feedback: $feedback) { __typename ... on Error { message } } }", { id: this.id, approve, feedback });
    };
    return h("div", { class: "waiting", "data-testid": "waiting" }, intro, deadline, text,
      h("div", { class: "actions" },
        h("button", { onclick: () => respond(true, null), "data-testid": "approve" }, "Approve"),
        h("button", { onclick: () => { if (text.value.trim()) respond(false, text.value.trim()); else text.focus(); }, "data-testid": "send-feedback" }, "Send feedback"),
        h("button", { class: "danger", onclick: () => respond(false, null), "data-testid": "reject" }, "Reject")));
  }

  private renderTasks(): void {
    const x = this.exec;
    const t0 = Date.parse(x.startedAt ?? x.createdAt);
    const end = x.finishedAt ? Date.parse(x.finishedAt) : Date.now();
    const span = Math.max(end - t0, 1);
    this.outputs.clear();
    this.timeline.replaceChildren(...(x.tasks as Task[]).map((task) => {
      const s = task.startedAt ? Date.parse(task.startedAt) : null;
      const f = task.finishedAt ? Date.parse(task.finishedAt) : s !== null ? Date.now() : null;
      const bar = h("div", { class: `bar s-${task.status.toLowerCase()}` });
      if (s !== null && f !== null) {
        bar.style.left = `${(100 * (s - t0)) / span}%`;
        bar.style.width = `${Math.max((100 * (f - s)) / span, 0.5)}%`;
      }
      const pre = h("pre", { class: "output", "data-testid": `output-${task.position}` }, task.output);
      this.outputs.set(task.position, pre);
      return h("div", { class: "task", "data-testid": "task", "data-status": task.status },
        h("div", { class: "task-head" }, badge(task.status), " ", h("b", {}, task.name), " ", h("span", { class: "muted" }, task.agentName), " ", h("span", { class: "muted" }, duration(task.startedAt, task.finishedAt))),
        h("div", { class: "track" }, bar),
        task.error ? errorBox(task.error) : null,
        pre);
    }));
  }

  private renderTimes(): void {
    if (this.exec && !this.exec.finishedAt) {
      const d = this.head.querySelector('[data-testid="duration"]');
      if (d) d.textContent = duration(this.exec.startedAt, null);
    }
  }

  private async mutate(query: string, variables: Record<string, unknown>): Promise<any> {
    this.message.replaceChildren();
    try {
      const data = await this.t.request(query, variables);
      const result = Object.values(data)[0] as any;
      if (result?.message) this.message.replaceChildren(errorBox(result.message));
      return result;
    } catch (e) {
      this.message.replaceChildren(errorBox(e instanceof GraphQLFailure ? e.message : String(e)));
      return null;
    }
  }

  private async cancel(force: boolean): Promise<void> {
    await this.mutate("mutation DashboardCancel($id: ID!, $force: Boolean!) { cancelExecution(id: $id, force: $force) { __typename ... on Error { message } } }", { id: this.id, force });
  }

  private async retry(): Promise<void> {
    const r = await this.mutate("mutation DashboardRetry($id: ID!) { retryExecution(id: $id) { __typename ... on Execution { id } ... on Error { message } } }", { id: this.id });
    if (r?.__typename === "Execution") this.go(`#/e/${r.id}`);
  }
}
