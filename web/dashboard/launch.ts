// Launch: pick a crew, fill its {placeholders}, launch, land on the execution's page.
import { errorBox, h } from "./dom";
import { GraphQLFailure, type Transport } from "./transport";

const PLACEHOLDER = /\{([A-Za-z_][A-Za-z0-9_-]*)\}/g;

export function placeholders(crew: any): string[] {
  const texts: string[] = [];
  for (const task of crew.tasks ?? []) texts.push(task.description ?? "", task.expectedOutput ?? "");
  for (const agent of crew.agents ?? []) texts.push(agent.role ?? "", agent.goal ?? "", agent.backstory ?? "");
  const names = new Set<string>();
  for (const text of texts) for (const m of text.matchAll(PLACEHOLDER)) names.add(m[1]);
  return [...names];
}

export class LaunchPage {
  readonly el = h("section", { class: "launch" });
  private crews: any[] = [];

  constructor(private t: Transport, private go: (hash: string) => void, private preselect: string | null) {}

  async mount(): Promise<void> {
    const data = await this.t.request(`query DashboardCrews { crews(first: 100) { nodes { id name description
      tasks { name description expectedOutput } agents { role goal backstory } } } }`);
    this.crews = data.crews.nodes;
    if (!this.crews.length) {
      this.el.append(h("p", {}, "No crews yet: create one with the createCrew mutation (or import a CrewAI project), then launch it here."));
      return;
    }
    const form = h("form", { class: "launch-form", "data-testid": "launch-form" });
    const select = h("select", { name: "crew", "data-testid": "launch-crew" }, ...this.crews.map((c) => h("option", { value: c.id, selected: c.id === this.preselect }, c.name)));
    const fields = h("div", { class: "fields" });
    const name = h("input", { name: "name", placeholder: "generated when empty", "data-testid": "launch-name" });
    const problems = h("div", {});
    const describe = (): void => {
      const crew = this.crews.find((c) => c.id === select.value);
      fields.replaceChildren(
        h("p", { class: "muted" }, crew.description || `${crew.tasks.length} task(s)`),
        ...placeholders(crew).map((p) => h("label", {}, h("span", {}, p), h("input", { name: `in:${p}`, required: true, "data-testid": `input-${p}` }))));
    };
    select.addEventListener("change", describe);
    describe();
    form.append(h("label", {}, h("span", {}, "Crew"), select), fields, h("label", {}, h("span", {}, "Name"), name), problems,
      h("button", { type: "submit", "data-testid": "launch" }, "Launch"));
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      problems.replaceChildren();
      const inputs: Record<string, string> = {};
      for (const [k, v] of new FormData(form)) if (k.startsWith("in:")) inputs[k.slice(3)] = String(v);
      try {
        const data = await this.t.request(`mutation DashboardLaunch($input: ExecutionCreateInput!) { createExecution(input: $input) {
          __typename ... on Execution { id } ... on Error { message } ... on ValidationError { fields { field message } } } }`,
          { input: { crewId: select.value, inputs, name: name.value || null } });
        const r = data.createExecution;
        if (r.__typename === "Execution") this.go(`#/e/${r.id}`);
        else problems.append(errorBox([r.message, ...(r.fields ?? []).map((f: any) => `${f.field}: ${f.message}`)].join("\n")));
      } catch (err) {
        problems.append(errorBox(err instanceof GraphQLFailure ? err.message : String(err)));
      }
    });
    this.el.append(h("h2", {}, "Launch a crew"), form);
  }

  unmount(): void {}
}
