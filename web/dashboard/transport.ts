// GraphQL to crewql: over one websocket (graphql-ws) while it can be had, else over HTTP
// (queries: POST; subscriptions: Apollo's multipart protocol, parsed by meros).
import { createClient, type Client } from "graphql-ws";
import { meros } from "meros/browser";

export type Vars = Record<string, unknown>;
export interface GqlError { message: string; extensions?: { code?: string } }
export interface Sink<T> { next(data: T): void; error?(errors: GqlError[]): void; complete?(): void }
export type State = "connecting" | "live" | "reconnecting" | "http" | "unauthorized";

export class Unauthorized extends Error {}
export class GraphQLFailure extends Error {
  constructor(public errors: GqlError[]) { super(errors.map((e) => e.message).join("; ")); }
}

const KEY = "crewql.key";
// A websocket that never opened this many times in a row: the network in between does not
// carry websockets (a proxy); fall back to HTTP streams.
const WS_FAILURES_BEFORE_HTTP = 3;

export class Transport {
  state: State = "connecting";
  private ws: Client | null = null;
  private listeners: ((s: State, reconnected: boolean) => void)[] = [];
  private everConnected = false;
  private failures = 0;
  private restartTimer = 0;

  constructor(private path: string) {}

  get key(): string | null { return sessionStorage.getItem(KEY); }
  set key(value: string | null) {
    if (value) sessionStorage.setItem(KEY, value); else sessionStorage.removeItem(KEY);
  }

  onState(listener: (s: State, reconnected: boolean) => void): void { this.listeners.push(listener); }

  private set(state: State, reconnected = false): void {
    this.state = state;
    for (const l of this.listeners) l(state, reconnected);
  }

  private authHeader(): Record<string, string> {
    return this.key ? { authorization: `Bearer ${this.key}` } : {};
  }

  /** Opens the websocket; resolves once it is acknowledged (or HTTP mode is chosen). */
  start(): void {
    const url = new URL(this.path, location.href);
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    this.dropClient();
    this.ws = createClient({
      url: url.toString(),
      lazy: false,
      keepAlive: 5_000,
      retryAttempts: Number.POSITIVE_INFINITY,
      retryWait: (n) => new Promise((r) => setTimeout(r, Math.min(250 * 2 ** n, 5_000))),
      shouldRetry: (event) => (event as CloseEvent)?.code !== 4401 && this.state !== "http",
      connectionParams: () => this.authHeader(),
      onNonLazyError: (e) => { if ((e as CloseEvent)?.code !== 4401) this.restart(); },
      on: {
        connected: () => {
          const reconnected = this.everConnected;
          this.everConnected = true;
          this.failures = 0;
          this.set("live", reconnected);
        },
        closed: (event) => {
          const code = (event as CloseEvent)?.code;
          if (code === 4401) { this.set("unauthorized"); return; }
          if (this.state === "http") return;
          if (!this.everConnected && ++this.failures >= WS_FAILURES_BEFORE_HTTP) {
            this.dropClient();
            this.set("http", true);
            return;
          }
          this.set(this.everConnected ? "reconnecting" : "connecting");
        },
      },
    });
  }

  stop(): void { clearTimeout(this.restartTimer); this.dropClient(); }

  /** graphql-ws's dispose() rejects when the socket it was opening failed: nothing to report. */
  private dropClient(): void {
    const ws = this.ws;
    this.ws = null;
    if (ws) void Promise.resolve(ws.dispose()).catch(() => undefined);
  }

  /** graphql-ws gives up on some close codes (1011, 1002 ...) that a proxy or a crashing
   *  server may well send: start a new client then, as it would have retried. */
  private restart(): void {
    if (this.restartTimer || this.state === "http" || this.state === "unauthorized") return;
    this.set(this.everConnected ? "reconnecting" : "connecting");
    const wait = Math.min(250 * 2 ** this.failures++, 5_000);
    this.restartTimer = window.setTimeout(() => { this.restartTimer = 0; this.start(); }, wait);
  }

  /** A query or mutation; over HTTP always (a short request needs no socket, and an HTTP 401
   *  is the clearest signal of a missing key). */
  async request<T = any>(query: string, variables: Vars = {}): Promise<T> {
    const response = await fetch(this.path, {
      method: "POST",
      headers: { "content-type": "application/json", accept: "application/graphql-response+json, application/json", ...this.authHeader() },
      body: JSON.stringify({ query, variables }),
    });
    if (response.status === 401) { this.set("unauthorized"); throw new Unauthorized("401"); }
    const body = await response.json();
    if (body.errors?.length) throw new GraphQLFailure(body.errors);
    return body.data as T;
  }

  /** A subscription; returns its disposer. Over the websocket, or a multipart HTTP stream. */
  subscribe<T = any>(query: string, variables: Vars, sink: Sink<T>): () => void {
    if (this.ws && this.state !== "http") {
      return this.ws.subscribe<T>({ query, variables }, {
        next: (r) => {
          if (r.errors?.length) sink.error?.(r.errors as GqlError[]);
          else if (r.data) sink.next(r.data as T);
        },
        error: (e) => {
          if (Array.isArray(e)) { sink.error?.(e as GqlError[]); return; }
          const code = (e as CloseEvent)?.code;
          if (typeof code === "number") {
            // The socket closed for good: a new one is started, and `live` subscribes again.
            if (code !== 4401) this.restart();
            return;
          }
          sink.error?.([{ message: String((e as Error)?.message ?? e) }]);
        },
        complete: () => sink.complete?.(),
      });
    }
    return this.multipart(query, variables, sink);
  }

  private multipart<T>(query: string, variables: Vars, sink: Sink<T>): () => void {
    const abort = new AbortController();
    (async () => {
      const response = await fetch(this.path, {
        method: "POST",
        signal: abort.signal,
        headers: { "content-type": "application/json", accept: "multipart/mixed;subscriptionSpec=1.0, application/json", ...this.authHeader() },
        body: JSON.stringify({ query, variables }),
      });
      if (response.status === 401) { this.set("unauthorized"); return; }
      const parts = await meros<any>(response);
      if (!(Symbol.asyncIterator in Object(parts))) {
        const body = await (parts as Response).json();
        if (body.errors) sink.error?.(body.errors);
        return;
      }
      for await (const part of parts as AsyncIterable<{ json: boolean; body: any }>) {
        if (!part.json) continue;
        const payload = part.body?.payload;
        if (!payload) continue; // heartbeat
        if (payload.errors?.length) sink.error?.(payload.errors);
        else if (payload.data) sink.next(payload.data as T);
      }
      sink.complete?.();
    })().catch((e) => {
      if (!abort.signal.aborted) sink.error?.([{ message: String(e?.message ?? e), extensions: { code: "NETWORK" } }]);
    });
    return () => abort.abort();
  }
}
