// Typed calls to the flowlens query API (docs/openapi.yaml). Every call
// takes the view's time range and filter the same way, so one helper builds
// the query string.

import type { FieldInfo } from "./schema";
import { askForToken, authorization } from "./token";

export type FlowRecord = Record<string, unknown>;

export interface Page {
  records: FlowRecord[];
  cursor?: string | null;
  scanned: number;
}

export interface TopEntry {
  key: string;
  value: number;
  records: number;
}

export interface SeriesPoint {
  time_ms: number;
  value: number;
}

export interface Edge {
  src: string;
  dst: string;
  bytes: number;
  drops: number;
  dns_errors: number;
  rtt_avg_ms: number | null;
  records: number;
}

export interface TopologyNode {
  id: string;
  bytes: number;
  drops: number;
}


export interface Completion {
  text: string;
  kind: string;
  doc: string;
}

export interface Completions {
  from: number;
  to: number;
  items: Completion[];
}

export interface FilterError {
  message: string;
  position?: number;
  column?: number;
  suggestion?: string | null;
  [key: string]: unknown;
}

export interface Validation {
  valid: boolean;
  error?: FilterError;
  text?: string;
}

/** What every store query is asked over. */
export interface Scope {
  filter: string;
  since: string;
  until: string;
}

/** An API answer other than 200, with the API's own message. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

export function queryString(params: Record<string, string | number | undefined>): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== "") q.set(k, String(v));
  }
  return q.toString();
}

function scoped(scope: Scope, extra: Record<string, string | number | undefined>) {
  return queryString({ filter: scope.filter, since: scope.since, until: scope.until, ...extra });
}

/** A GET with the tab's token; a 401 asks for a token and tries again. */
async function authorized(path: string, accept: string, signal?: AbortSignal): Promise<Response> {
  for (;;) {
    const res = await fetch(path, { signal, headers: { Accept: accept, ...authorization() } });
    if (res.status !== 401) return res;
    let message = "This server needs an API token.";
    try {
      const body = await res.json();
      if (body && typeof body.error === "string") message = body.error;
    } catch {
      // Not JSON: the generic message.
    }
    await askForToken(message);
  }
}

async function get<T>(path: string, signal?: AbortSignal): Promise<T> {
  const res = await authorized(path, "application/json", signal);
  if (!res.ok) {
    let message = `${res.status} ${res.statusText}`;
    try {
      const body = await res.json();
      if (body && typeof body.error === "string") message = body.error;
    } catch {
      // Not JSON: keep the status line.
    }
    throw new ApiError(res.status, message);
  }
  return (await res.json()) as T;
}

export type Table = "flows" | "conversations";

export const api = {
  records(table: Table, scope: Scope, limit: number, cursor: string | undefined, signal?: AbortSignal) {
    return get<Page>(`/api/${table}?${scoped(scope, { limit, cursor, order: "desc" })}`, signal);
  },
  top(scope: Scope, by: string, metric: string, k: number, signal?: AbortSignal) {
    return get<{ entries: TopEntry[] }>(`/api/top?${scoped(scope, { by, metric, k })}`, signal).then(
      (r) => r.entries,
    );
  },
  series(scope: Scope, metric: string, signal?: AbortSignal) {
    return get<{ step_ms: number; points: SeriesPoint[] }>(`/api/series?${scoped(scope, { metric })}`, signal);
  },
  topology(scope: Scope, level: string, signal?: AbortSignal) {
    return get<{ nodes: TopologyNode[]; edges: Edge[] }>(
      `/api/topology?${scoped(scope, { scope: level })}`,
      signal,
    );
  },
  exportUrl(table: Table, scope: Scope, format: "csv" | "json" | "jsonl", limit: number) {
    return `/api/export?${scoped(scope, { table, format, limit })}`;
  },
  /** Downloads an export with the tab's token (a plain link cannot carry it). */
  async download(url: string, filename: string) {
    const res = await authorized(url, "*/*");
    if (!res.ok) throw new ApiError(res.status, `${res.status} ${res.statusText}`);
    const link = document.createElement("a");
    link.href = URL.createObjectURL(await res.blob());
    link.download = filename;
    link.click();
    setTimeout(() => URL.revokeObjectURL(link.href), 10_000);
  },
  validate(filter: string, signal?: AbortSignal) {
    return get<Validation>(`/api/filter/validate?${queryString({ filter })}`, signal);
  },
  complete(filter: string, cursor: number, signal?: AbortSignal) {
    return get<Completions>(`/api/filter/complete?${queryString({ filter, cursor })}`, signal);
  },
  fields() {
    return get<FieldInfo[]>("/api/fields");
  },
};
