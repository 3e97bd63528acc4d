// The flow and conversation tables' columns, as the schema defines them
// (/api/fields: each field says in which table's column it is shown, under
// which header and whether by default). A cell shows the field's value as
// its kind and unit render it.

import type { FlowRecord, Table } from "./api";
import { type FieldInfo, render, valueOf } from "./schema";

export interface Column {
  id: string;
  header: string;
  /** The record field the column shows (for sorting and the drawer). */
  field: string;
  /** Shown until the user picks columns. */
  default: boolean;
  numeric?: boolean;
  render: (r: FlowRecord) => string;
  /** The value sorted by. */
  sortValue?: (r: FlowRecord) => number | string;
}

/** The columns of `table`, in the schema's order. */
export function columnsOf(fields: FieldInfo[], table: Table): Column[] {
  const key = table === "flows" ? "flows" : "conversations";
  return fields
    .filter((f) => f.columns[key])
    .sort((a, b) => a.columns[key]!.position - b.columns[key]!.position)
    .map((f) => {
      const c = f.columns[key]!;
      const numeric = f.kind === "number";
      return {
        id: c.id,
        header: c.header,
        field: f.json ?? f.derived?.inputs[0] ?? f.name,
        default: c.default,
        numeric,
        render: (r: FlowRecord) => render(f, valueOf(f, r)),
        sortValue: numeric
          ? (r: FlowRecord) => {
              const v = valueOf(f, r);
              return typeof v === "number" ? v : -1;
            }
          : (r: FlowRecord) => String(valueOf(f, r) ?? ""),
      };
    });
}

/** The columns shown: the user's pick, or the defaults. */
export function visibleColumns(all: Column[], picked: string[]): Column[] {
  const chosen = picked.map((id) => all.find((c) => c.id === id)).filter((c): c is Column => !!c);
  return chosen.length ? chosen : all.filter((c) => c.default);
}
