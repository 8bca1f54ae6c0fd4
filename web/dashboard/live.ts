// A subscription that survives reconnects: it is opened again (with variables computed afresh,
// e.g. `after` = the last thing seen) whenever the transport reconnects or falls back to HTTP,
// and, over HTTP streams, after a network error.
import type { GqlError, Transport, Vars } from "./transport";

export interface LiveOptions<T> {
  query: string;
  variables: () => Vars;
  next: (data: T) => void;
  error?: (errors: GqlError[]) => void;
  complete?: () => void;
  resync?: () => void; // after a reconnect, before the subscription is opened again
}

export function live<T>(t: Transport, o: LiveOptions<T>): () => void {
  let dispose: (() => void) | null = null;
  let closed = false;
  let retry = 0;
  const open = (): void => {
    dispose?.();
    if (closed) return;
    dispose = t.subscribe<T>(o.query, o.variables(), {
      next: (d) => { retry = 0; o.next(d); },
      error: (errors) => {
        if (errors.some((e) => e.extensions?.code === "NETWORK") && !closed) {
          setTimeout(open, Math.min(250 * 2 ** retry++, 5_000));
          return;
        }
        o.error?.(errors);
      },
      complete: () => o.complete?.(),
    });
  };
  const onState = (state: string, reconnected: boolean): void => {
    if (closed || !reconnected || (state !== "live" && state !== "http")) return;
    o.resync?.();
    open();
  };
  t.onState(onState);
  open();
  return () => { closed = true; dispose?.(); };
}
