// The flow table and the conversation table: configurable columns, sorting
// of the page shown, paging through large results with the API's cursor, a
// details drawer, and export of the current query.

import { useEffect, useLayoutEffect, useMemo, useRef, useState } from "preact/hooks";
import { currentToken } from "./token";
import { api, type FlowRecord, type Scope, type Table } from "./api";
import { type Column, columnsOf, visibleColumns } from "./columns";
import { Drawer } from "./drawer";
import * as fmt from "./format";
import type { FieldInfo } from "./schema";
import { PAGE_SIZES, type ViewState } from "./state";

interface Props {
  table: Table;
  scope: Scope;
  state: ViewState;
  tick: number;
  fields: FieldInfo[];
  onState: (patch: Partial<ViewState>) => void;
  /** Opens the flow table on a conversation's flows. */
  onShowFlows?: (record: FlowRecord) => void;
}

/** Height of one table row (CSS keeps rows to one line), for windowing. */
const ROW_HEIGHT = 27;
/** Larger pages render only the rows in view, plus this many each side. */
const WINDOW_FROM = 200;
const OVERSCAN = 30;

/** A record's bytes and packets: a flow's own, a conversation's both ways. */
function amounts(r: FlowRecord): [number, number] {
  const n = (k: string) => (typeof r[k] === "number" ? (r[k] as number) : 0);
  return "Bytes" in r ? [n("Bytes"), n("Packets")] : [n("Bytes_AB") + n("Bytes_BA"), n("Packets_AB") + n("Packets_BA")];
}

/** The shown page's bytes and packets, summed. */
function pageTotals(records: FlowRecord[]): { bytes: number; packets: number } {
  let bytes = 0;
  let packets = 0;
  for (const r of records) {
    const [b, p] = amounts(r);
    bytes += b;
    packets += p;
  }
  return { bytes, packets };
}

function compare(a: number | string, b: number | string): number {
  if (typeof a === "number" && typeof b === "number") return a - b;
  return String(a).localeCompare(String(b));
}

export function Records({ table, scope, state, tick, fields, onState, onShowFlows }: Props) {
  const all = useMemo(() => columnsOf(fields, table), [fields, table]);
  const columns = visibleColumns(all, state.columns);
  // Cursors of the pages before the one shown; the last is the shown page's.
  const [cursors, setCursors] = useState<(string | undefined)[]>([undefined]);
  const [records, setRecords] = useState<FlowRecord[] | null>(null);
  const [next, setNext] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [loading, setLoading] = useState(false);
  const [selected, setSelected] = useState<FlowRecord | null>(null);
  const renderStart = useRef(0);
  const tableEl = useRef<HTMLTableElement>(null);
  const scroller = useRef<HTMLDivElement>(null);
  const [view, setView] = useState({ top: 0, height: 900 });

  const cursor = cursors[cursors.length - 1];
  // A new question starts at the first page.
  useEffect(() => setCursors([undefined]), [table, scope.filter, scope.since, scope.until, state.limit]);

  useEffect(() => {
    const ctl = new AbortController();
    setLoading(true);
    api
      .records(table, scope, state.limit, cursor, ctl.signal)
      .then((page) => {
        renderStart.current = performance.now();
        setRecords(page.records);
        setNext(page.cursor ?? null);
        setError(null);
        setLoading(false);
      })
      .catch((e) => {
        if (ctl.signal.aborted) return;
        setError(String(e.message ?? e));
        setLoading(false);
      });
    return () => ctl.abort();
    // Auto-refresh re-reads the first page only: older pages do not change.
  }, [table, scope.filter, scope.since, scope.until, state.limit, cursor, cursors.length === 1 ? tick : 0]);

  // Time from data to the table on screen, for the benchmark (docs/benchmarks.md).
  useLayoutEffect(() => {
    if (records && tableEl.current && renderStart.current) {
      void tableEl.current.offsetHeight; // include the layout of the rows
      tableEl.current.dataset.renderMs = (performance.now() - renderStart.current).toFixed(1);
      tableEl.current.dataset.rows = String(records.length);
    }
  }, [records]);

  // Another page or question starts at its top; a refresh keeps the place.
  useEffect(() => {
    const el = scroller.current;
    if (!el) return;
    el.scrollTop = 0;
    setView({ top: 0, height: Math.max(el.clientHeight, window.innerHeight) });
  }, [table, scope.filter, scope.since, scope.until, state.limit, cursor]);

  const sortColumn = all.find((c) => c.id === state.sort);
  const rows = useMemo(() => {
    if (!records || !sortColumn) return records ?? [];
    const key = sortColumn.sortValue ?? sortColumn.render;
    const sorted = [...records].sort((a, b) => compare(key(a), key(b)));
    return state.desc ? sorted.reverse() : sorted;
  }, [records, sortColumn, state.desc]);

  function sortBy(c: Column) {
    if (state.sort === c.id) onState({ desc: !state.desc });
    else onState({ sort: c.id, desc: true });
  }

  function toggleColumn(id: string, on: boolean) {
    const ids = columns.map((c) => c.id);
    const picked = on ? all.filter((c) => ids.includes(c.id) || c.id === id).map((c) => c.id) : ids.filter((x) => x !== id);
    onState({ columns: picked });
  }

  const page = cursors.length;
  const totals = useMemo(() => (records ? pageTotals(records) : null), [records]);
  // Large pages: only the rows in view are in the DOM (spacers keep the
  // scroll height), so a 1000-row page renders as fast as a short one.
  const windowed = rows.length > WINDOW_FROM;
  const first = windowed ? Math.max(0, Math.floor(view.top / ROW_HEIGHT) - OVERSCAN) : 0;
  const last = windowed ? Math.min(rows.length, first + Math.ceil(view.height / ROW_HEIGHT) + 2 * OVERSCAN) : rows.length;
  const onScroll = () => {
    const el = scroller.current;
    if (el) requestAnimationFrame(() => setView({ top: el.scrollTop, height: el.clientHeight }));
  };
  const open = (e: Event) => {
    const index = Number((e.target as HTMLElement).closest("tr")?.dataset.index);
    if (Number.isInteger(index) && rows[index]) setSelected(rows[index]);
  };
  return (
    <div class="records">
      <div class="toolbar">
        <details class="columns-picker">
          <summary>Columns</summary>
          <fieldset>
            <legend>Columns shown</legend>
            {all.map((c) => (
              <label key={c.id}>
                <input type="checkbox" checked={columns.includes(c)} onChange={(e) => toggleColumn(c.id, e.currentTarget.checked)} />
                {c.header}
              </label>
            ))}
            <button type="button" onClick={() => onState({ columns: [] })}>
              Defaults
            </button>
          </fieldset>
        </details>
        <label>
          Rows
          <select value={state.limit} onChange={(e) => onState({ limit: Number(e.currentTarget.value) })}>
            {PAGE_SIZES.map((n) => (
              <option key={n} value={n}>
                {n}
              </option>
            ))}
          </select>
        </label>
        <span class="spacer" />
        <span class="muted" aria-live="polite">
          {loading ? "Loading…" : records ? `${records.length} ${table === "flows" ? "flows" : "conversation records"}, page ${page}` : ""}
        </span>
        {totals && !loading && (
          <span class="muted" id={`${table}-totals`} title="Summed over the rows of this page">
            <span data-total="bytes">{fmt.bytes(totals.bytes)}</span>, <span data-total="packets">{fmt.count(totals.packets)}</span> packets
          </span>
        )}
        <button type="button" disabled={page === 1} onClick={() => setCursors(cursors.slice(0, -1))}>
          ← Newer
        </button>
        <button type="button" disabled={!next} onClick={() => next && setCursors([...cursors, next])}>
          Older →
        </button>
        {(["csv", "json"] as const).map((format) => (
          <a
            class="button"
            href={api.exportUrl(table, scope, format, 100000)}
            download={`${table}.${format}`}
            onClick={(event) => {
              // The link works as it is without tokens; with one, the file
              // is fetched carrying it.
              if (!currentToken()) return;
              event.preventDefault();
              api
                .download(api.exportUrl(table, scope, format, 100000), `${table}.${format}`)
                .catch((e: unknown) => setError(e instanceof Error ? e.message : String(e)));
            }}
          >
            Export {format.toUpperCase()}
          </a>
        ))}
      </div>
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
      <div class="table-scroll" ref={scroller} onScroll={onScroll}>
        <table ref={tableEl} class="data" id={`${table}-table`} aria-rowcount={rows.length + 1}>
          <thead>
            <tr>
              {columns.map((c) => (
                <th key={c.id} scope="col" class={c.numeric ? "num" : ""} aria-sort={state.sort === c.id ? (state.desc ? "descending" : "ascending") : "none"}>
                  <button type="button" onClick={() => sortBy(c)} title={`Sort by ${c.header}`}>
                    {c.header}
                    {state.sort === c.id ? (state.desc ? " ▾" : " ▴") : ""}
                  </button>
                </th>
              ))}
            </tr>
          </thead>
          <tbody
            onClick={open}
            onKeyDown={(e) => {
              if (e.key === "Enter") open(e);
            }}
          >
            {first > 0 && <tr class="spacer" aria-hidden="true" style={{ height: `${first * ROW_HEIGHT}px` }} />}
            {rows.slice(first, last).map((r, i) => (
              <tr key={`${r._Id ?? first + i}`} tabIndex={0} data-index={first + i} aria-rowindex={first + i + 2} class={selected === r ? "selected" : undefined}>
                {columns.map((c) => (
                  <td key={c.id} class={c.numeric ? "num" : undefined} data-col={c.id}>
                    {c.render(r)}
                  </td>
                ))}
              </tr>
            ))}
            {last < rows.length && <tr class="spacer" aria-hidden="true" style={{ height: `${(rows.length - last) * ROW_HEIGHT}px` }} />}
          </tbody>
        </table>
        {records && records.length === 0 && !error && <p class="empty">No {table} match this filter in this time range.</p>}
      </div>
      {selected && (
        <Drawer
          record={selected}
          fields={fields}
          onClose={() => setSelected(null)}
          action={
            onShowFlows
              ? {
                  label: "Show the flows of this conversation",
                  run: () => onShowFlows(selected),
                }
              : undefined
          }
        />
      )}
    </div>
  );
}
