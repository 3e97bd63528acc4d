// The whole view state lives in the URL's query string, so a link
// reproduces what its sender saw: the view, the filter and quick filters,
// the time range, auto-refresh, the table's columns and sort, the topology
// scope and colouring.

export type View = "overview" | "flows" | "conversations" | "topology";
export const VIEWS: View[] = ["overview", "flows", "conversations", "topology"];

export interface ViewState {
  view: View;
  /** The filter typed in the filter bar. */
  filter: string;
  /** Quick filter ids, each ANDed with the filter. */
  quick: string[];
  /** A duration ago (`15m`), an RFC 3339 time or epoch milliseconds. */
  since: string;
  /** Empty for "now". */
  until: string;
  /** Seconds between refreshes; 0 is off. */
  refresh: number;
  /** Column ids of the flow table, in order; empty for the defaults. */
  columns: string[];
  sort: string;
  desc: boolean;
  limit: number;
  scope: string;
  colour: string;
}

export const DEFAULTS: ViewState = {
  view: "overview",
  filter: "",
  quick: [],
  since: "15m",
  until: "",
  refresh: 0,
  columns: [],
  sort: "",
  desc: true,
  limit: 100,
  scope: "owner",
  colour: "drops",
};

export const TIME_RANGES = ["5m", "15m", "30m", "1h", "6h", "24h", "7d"];
export const REFRESH_CHOICES = [0, 5, 15, 30, 60];
export const PAGE_SIZES = [50, 100, 500, 1000];
export const SCOPES = ["node", "zone", "namespace", "owner", "pod"];
export const COLOURINGS = ["drops", "dns_errors", "rtt"];

function list(text: string | null): string[] {
  return text ? text.split(",").filter(Boolean) : [];
}

export function parseState(search: string): ViewState {
  const q = new URLSearchParams(search);
  const view = q.get("view") as View;
  const num = (name: string, fallback: number) => {
    const n = Number(q.get(name));
    return q.has(name) && Number.isFinite(n) && n >= 0 ? n : fallback;
  };
  return {
    view: VIEWS.includes(view) ? view : DEFAULTS.view,
    filter: q.get("filter") ?? DEFAULTS.filter,
    quick: list(q.get("quick")),
    since: q.get("since") || DEFAULTS.since,
    until: q.get("until") ?? DEFAULTS.until,
    refresh: num("refresh", DEFAULTS.refresh),
    columns: list(q.get("columns")),
    sort: q.get("sort") ?? DEFAULTS.sort,
    desc: q.get("order") !== "asc",
    limit: PAGE_SIZES.includes(num("limit", 0)) ? num("limit", 0) : DEFAULTS.limit,
    scope: SCOPES.includes(q.get("scope") ?? "") ? q.get("scope")! : DEFAULTS.scope,
    colour: COLOURINGS.includes(q.get("colour") ?? "") ? q.get("colour")! : DEFAULTS.colour,
  };
}

/** Only what differs from the defaults, so links stay short. */
export function stateToSearch(s: ViewState): string {
  const q = new URLSearchParams();
  const put = (name: string, value: string, fallback: string) => {
    if (value !== fallback) q.set(name, value);
  };
  put("view", s.view, DEFAULTS.view);
  put("filter", s.filter, DEFAULTS.filter);
  put("quick", s.quick.join(","), "");
  put("since", s.since, DEFAULTS.since);
  put("until", s.until, DEFAULTS.until);
  put("refresh", String(s.refresh), String(DEFAULTS.refresh));
  put("columns", s.columns.join(","), "");
  put("sort", s.sort, DEFAULTS.sort);
  put("order", s.desc ? "desc" : "asc", "desc");
  put("limit", String(s.limit), String(DEFAULTS.limit));
  put("scope", s.scope, DEFAULTS.scope);
  put("colour", s.colour, DEFAULTS.colour);
  const text = q.toString();
  return text ? `?${text}` : "";
}

/** The quick filters: the questions users ask first, as filter expressions. */
export const QUICK_FILTERS: { id: string; label: string; expr: string }[] = [
  { id: "dns_errors", label: "DNS errors", expr: "dns.rcode != NoError" },
  { id: "nxdomain", label: "NXDOMAIN", expr: "dns.rcode = NXDomain" },
  { id: "drops", label: "Packet drops", expr: "drop.packets > 0" },
  { id: "policy", label: "Policy denials", expr: 'flow.drop_reason = "policy_denied"' },
  { id: "retransmits", label: "Retransmissions", expr: "tcp.retransmits > 0" },
  { id: "timeouts", label: "Timeouts", expr: 'flow.status = "timed_out"' },
  { id: "refused", label: "Refused", expr: "conn.outcome = refused" },
];

/** The filter the API is asked with: the typed one AND each quick filter. */
export function effectiveFilter(s: ViewState): string {
  const parts = s.filter.trim() ? [s.filter.trim()] : [];
  for (const id of s.quick) {
    const q = QUICK_FILTERS.find((f) => f.id === id);
    if (q) parts.push(q.expr);
  }
  if (parts.length <= 1) return parts[0] ?? "";
  return parts.map((p) => `(${p})`).join(" and ");
}

/** A filter term for `field = value`, quoting the value as a string. */
export function equals(field: string, value: string): string {
  return `${field} = ${JSON.stringify(value)}`;
}

/** `extra` ANDed onto the typed filter. */
export function narrow(filter: string, extra: string): string {
  return filter.trim() ? `(${filter.trim()}) and ${extra}` : extra;
}

/** Epoch ms of a range bound as the API reads it: a duration ago (`15m`),
 * epoch milliseconds or an RFC 3339 time; empty is now. */
export function boundMs(text: string, now = Date.now()): number | null {
  if (!text) return now;
  const ago = /^(\d+)(s|m|h|d)$/.exec(text);
  if (ago) return now - Number(ago[1]) * { s: 1e3, m: 6e4, h: 3.6e6, d: 8.64e7 }[ago[2] as "s"];
  if (/^\d+$/.test(text)) return Number(text);
  const parsed = Date.parse(text);
  return Number.isFinite(parsed) ? parsed : null;
}
