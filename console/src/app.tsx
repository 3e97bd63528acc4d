// The console's frame: the header (views, filter bar, quick filters, time
// range, auto-refresh, theme) and the view the URL names.

import { useEffect, useMemo, useState } from "preact/hooks";
import { api, type FlowRecord, type Scope } from "./api";
import type { FieldInfo } from "./schema";
import { FilterBar } from "./filterbar";
import { Overview } from "./overview";
import { Records } from "./records";
import {
  boundMs,
  effectiveFilter,
  parseState,
  QUICK_FILTERS,
  REFRESH_CHOICES,
  stateToSearch,
  TIME_RANGES,
  type View,
  VIEWS,
  type ViewState,
} from "./state";
import { type Theme, useTheme } from "./theme";

type TopologyView = typeof import("./topology").Topology;

/** The topology view and its graph library load only when first shown,
 * so the overview (the first page) parses less. */
function useTopology(wanted: boolean): TopologyView | null {
  const [view, setView] = useState<TopologyView | null>(null);
  useEffect(() => {
    if (wanted && !view) import("./topology").then((m) => setView(() => m.Topology));
  }, [wanted]);
  return view;
}

const VIEW_NAMES: Record<View, string> = {
  overview: "Overview",
  flows: "Traffic flows",
  conversations: "Conversations",
  topology: "Topology",
};

/** `datetime-local` text of epoch ms, and back. */
function localInput(ms: number): string {
  const d = new Date(ms - new Date().getTimezoneOffset() * 60000);
  return d.toISOString().slice(0, 16);
}

function TimePicker({ state, onState }: { state: ViewState; onState: (p: Partial<ViewState>) => void }) {
  const custom = !TIME_RANGES.includes(state.since) || state.until !== "";
  return (
    <div class="time-picker">
      <label>
        Time range
        <select
          value={custom ? "custom" : state.since}
          onChange={(e) => {
            const v = e.currentTarget.value;
            if (v === "custom") {
              const now = Date.now();
              onState({ since: String(now - 3600_000), until: String(now) });
            } else onState({ since: v, until: "" });
          }}
        >
          {TIME_RANGES.map((r) => (
            <option key={r} value={r}>
              Last {r}
            </option>
          ))}
          <option value="custom">Custom…</option>
        </select>
      </label>
      {custom && (
        <>
          <label>
            From
            <input
              type="datetime-local"
              value={localInput(boundMs(state.since) ?? Date.now() - 3600_000)}
              onChange={(e) => onState({ since: String(new Date(e.currentTarget.value).getTime()) })}
            />
          </label>
          <label>
            To
            <input
              type="datetime-local"
              value={localInput(boundMs(state.until) ?? Date.now())}
              onChange={(e) => onState({ until: String(new Date(e.currentTarget.value).getTime()) })}
            />
          </label>
        </>
      )}
      <label>
        Refresh
        <select value={state.refresh} onChange={(e) => onState({ refresh: Number(e.currentTarget.value) })}>
          {REFRESH_CHOICES.map((s) => (
            <option key={s} value={s}>
              {s === 0 ? "off" : `every ${s}s`}
            </option>
          ))}
        </select>
      </label>
    </div>
  );
}

function ThemeSwitch({ theme, setTheme }: { theme: Theme; setTheme: (t: Theme) => void }) {
  return (
    <label class="theme-switch">
      Theme
      <select value={theme} onChange={(e) => setTheme(e.currentTarget.value as Theme)}>
        <option value="auto">system</option>
        <option value="light">light</option>
        <option value="dark">dark</option>
      </select>
    </label>
  );
}

/** The filter of a conversation's flows: its 5-tuple, either direction. */
function conversationFlows(r: FlowRecord): string {
  const side = (a: string, ap: unknown, b: string, bp: unknown) =>
    `(src.addr = ${a} and src.port = ${ap} and dst.addr = ${b} and dst.port = ${bp})`;
  const tuple = `${side(String(r.SrcAddr), r.SrcPort, String(r.DstAddr), r.DstPort)} or ${side(String(r.DstAddr), r.DstPort, String(r.SrcAddr), r.SrcPort)}`;
  return `proto = ${r.Proto} and (${tuple})`;
}

export function App() {
  const [state, setState] = useState<ViewState>(() => parseState(location.search));
  const [tick, setTick] = useState(0);
  const [fields, setFields] = useState<FieldInfo[]>([]);
  const [theme, setTheme] = useTheme();
  const Topology = useTopology(state.view === "topology");

  // Back and forward restore the view of that URL.
  useEffect(() => {
    const onPop = () => setState(parseState(location.search));
    window.addEventListener("popstate", onPop);
    return () => window.removeEventListener("popstate", onPop);
  }, []);

  useEffect(() => {
    api.fields().then(setFields).catch(() => {});
  }, []);

  useEffect(() => {
    if (!state.refresh) return;
    // Skips a refresh while the tab is hidden: nobody is looking.
    const timer = setInterval(() => {
      if (!document.hidden) setTick((t) => t + 1);
    }, state.refresh * 1000);
    return () => clearInterval(timer);
  }, [state.refresh]);

  /** A new state: views and filters are history entries, the rest replaces. */
  function update(patch: Partial<ViewState>, push = false) {
    const next = { ...state, ...patch };
    const search = stateToSearch(next);
    if (search !== location.search) {
      if (push) history.pushState(null, "", `${location.pathname}${search}`);
      else history.replaceState(null, "", `${location.pathname}${search}`);
    }
    setState(next);
  }

  const scope: Scope = useMemo(
    () => ({ filter: effectiveFilter(state), since: state.since, until: state.until }),
    [state.filter, state.quick, state.since, state.until],
  );

  const goTo = (view: View, patch: Partial<ViewState> = {}) =>
    update({ view, ...(view !== state.view ? { columns: [], sort: "" } : {}), ...patch }, true);
  const openFlows = (extra: string) =>
    goTo("flows", { filter: extra ? (state.filter.trim() ? `(${state.filter.trim()}) and ${extra}` : extra) : state.filter });

  return (
    <div class="app">
      <header class="top">
        <div class="brand">
          <strong>flowlens</strong> <span class="muted">Network Traffic</span>
        </div>
        <nav class="tabs" role="tablist" aria-label="Views">
          {VIEWS.map((v) => (
            <button key={v} type="button" role="tab" id={`tab-${v}`} aria-selected={state.view === v} onClick={() => goTo(v)}>
              {VIEW_NAMES[v]}
            </button>
          ))}
        </nav>
        <span class="spacer" />
        <ThemeSwitch theme={theme} setTheme={setTheme} />
      </header>
      <div class="controls">
        <FilterBar value={state.filter} onApply={(filter) => update({ filter }, true)} />
        <TimePicker state={state} onState={(p) => update(p)} />
      </div>
      <div class="quick" role="group" aria-label="Quick filters">
        {QUICK_FILTERS.map((q) => {
          const on = state.quick.includes(q.id);
          return (
            <button
              key={q.id}
              type="button"
              class={`chip ${on ? "on" : ""}`}
              aria-pressed={on}
              data-quick={q.id}
              title={q.expr}
              onClick={() => update({ quick: on ? state.quick.filter((x) => x !== q.id) : [...state.quick, q.id] }, true)}
            >
              {q.label}
            </button>
          );
        })}
        {scope.filter && (
          <span class="muted effective" title="The filter the view is asked with">
            <code>{scope.filter}</code>
          </span>
        )}
      </div>
      <main key={theme} aria-labelledby={`tab-${state.view}`}>
        {state.view === "overview" && <Overview scope={scope} tick={tick} onOpen={openFlows} />}
        {state.view === "flows" && <Records table="flows" scope={scope} state={state} tick={tick} fields={fields} onState={(p) => update(p)} />}
        {state.view === "conversations" && (
          <>
            <p class="explain">
              A <strong>flow</strong> is one direction of traffic between two endpoints (a 5-tuple) over a short interval, as
              the kernel saw it. A <strong>conversation</strong> joins both directions of one connection over its whole life:
              A is the side that opened it, B the side that answered. flowlens writes a conversation record when it starts,
              at each heartbeat, and when it ends (with why it ended). Open a record to see the flows behind it.
            </p>
            <Records
              table="conversations"
              scope={scope}
              state={state}
              tick={tick}
              fields={fields}
              onState={(p) => update(p)}
              onShowFlows={(r) =>
                goTo("flows", {
                  filter: conversationFlows(r),
                  quick: [],
                  since: String(Number(r.TimeFlowStartMs) - 60_000),
                  until: String(Number(r.TimeFlowEndMs) + 60_000),
                })
              }
            />
          </>
        )}
        {state.view === "topology" && !Topology && <p class="muted">Loading the graph…</p>}
        {state.view === "topology" && Topology && <Topology scope={scope} state={state} tick={tick} onState={(p) => update(p)} onOpen={openFlows} />}
      </main>
    </div>
  );
}
