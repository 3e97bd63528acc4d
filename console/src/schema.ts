// The record schema as /api/fields serves it: every field's kind, unit and
// vocabulary, how a derived field is computed, and the table columns that
// show it. The console keeps no field list of its own: columns, the
// details drawer and value formatting all read these descriptions.

import type { FlowRecord } from "./api";
import * as fmt from "./format";

export interface Term {
  name: string;
  code: number | null;
  label: string;
}

export interface ColumnInfo {
  id: string;
  header: string;
  default: boolean;
  position: number;
}

export interface FieldInfo {
  /** The filter name (a record field's JSON name when not filterable). */
  name: string;
  /** The record field's JSON name, when the field is one. */
  json: string | null;
  filterable: boolean;
  aliases: string[];
  doc: string;
  kind: "number" | "text" | "enum" | "address" | "flags" | "bool";
  unit: "none" | "bytes" | "packets" | "segments" | "nanos" | "millis" | "timestamp_ms";
  vocabulary: Term[] | null;
  records: ("flows" | "conversations")[];
  derived: { op: string; inputs: string[]; prefix: string | null } | null;
  columns: { flows: ColumnInfo | null; conversations: ColumnInfo | null };
}

const num = (r: FlowRecord, k: string) => (typeof r[k] === "number" ? (r[k] as number) : undefined);
const text = (r: FlowRecord, k: string) => (r[k] === undefined || r[k] === null ? "" : String(r[k]));

/** The value a field shows for a record: a record field's value, or the
 * first value of a derived one, computed as the server's filters do. */
export function valueOf(f: FieldInfo, r: FlowRecord): unknown {
  if (!f.derived) return f.json ? r[f.json] : undefined;
  const [a, b, c] = f.derived.inputs;
  switch (f.derived.op) {
    case "either":
      return r[a] ?? r[b];
    case "total": {
      const flow = num(r, a);
      if (flow !== undefined) return flow;
      const ab = num(r, b);
      const ba = num(r, c);
      return ab === undefined && ba === undefined ? undefined : (ab ?? 0) + (ba ?? 0);
    }
    case "first_of":
      return f.derived.inputs.map((k) => num(r, k)).find((v) => v !== undefined);
    case "without_prefix": {
      const v = text(r, a);
      const prefix = f.derived.prefix ?? "";
      return v.startsWith(prefix) ? v.slice(prefix.length) : v || undefined;
    }
    case "drop_reason":
      return r[a] ?? r[b];
    case "endpoint": {
      // inputs: namespace, name, address
      const ns = text(r, a);
      const name = text(r, b);
      if (name && ns && ns !== name) return `${ns}/${name}`;
      return name || text(r, c) || undefined;
    }
    case "socket": {
      const addr = text(r, a);
      const port = num(r, b);
      if (!addr) return undefined;
      if (!port) return addr;
      return addr.includes(":") ? `[${addr}]:${port}` : `${addr}:${port}`;
    }
  }
  return undefined;
}

/** A value as the field's kind and unit show it. */
export function render(f: FieldInfo, v: unknown): string {
  if (v === undefined || v === null) return "";
  if (f.kind === "flags") {
    // The vocabulary of flags is their bits (netobserv's encoding).
    if (typeof v !== "number") return fmt.plain(v);
    return (f.vocabulary ?? [])
      .filter((t) => t.code !== null && (v & t.code) !== 0)
      .map((t) => t.label)
      .join(" ");
  }
  if (typeof v === "number") {
    const term = f.vocabulary?.find((t) => t.code === v);
    if (term) return term.label;
    switch (f.unit) {
      case "bytes":
        return fmt.bytes(v);
      case "nanos":
        return fmt.millis(v / 1e6);
      case "millis":
        return fmt.millis(v);
      case "timestamp_ms":
        return fmt.time(v);
    }
  }
  return fmt.plain(v);
}

/** A readable form next to a raw value, where it differs from it. */
export function readable(f: FieldInfo, v: unknown): string {
  if (f.unit === "timestamp_ms" && typeof v === "number") return new Date(v).toISOString();
  const shown = render(f, v);
  return shown === fmt.plain(v) ? "" : shown;
}

/** The description of record field `key` (its JSON name). */
export function fieldOfJson(fields: FieldInfo[], key: string): FieldInfo | undefined {
  return fields.find((f) => f.json === key);
}
