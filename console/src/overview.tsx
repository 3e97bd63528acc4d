// The overview: one panel per question users ask first — who sends the
// most, what is dropped and why, is DNS failing or slow, is the network
// slow (RTT), are segments retransmitted, do connections fail. Each panel is
// a top-K from /api/top; clicking a bar opens the flow table filtered to it.

import { useEffect, useState } from "preact/hooks";
import { api, type Scope, type SeriesPoint, type TopEntry } from "./api";
import { MiniChart } from "./chart";
import * as fmt from "./format";
import { boundMs, equals } from "./state";

interface Panel {
  id: string;
  title: string;
  by: string;
  metric: string;
  /** What the value means, shown under the title. */
  unit: string;
  format: (v: number) => string;
  /** Values per second over the range instead of totals. */
  rate?: boolean;
  /** Lowest first (for "lowest RTT"). */
  ascending?: boolean;
  /** Leave out records without the grouped field. */
  known?: boolean;
  /** Extra condition of the flows a bar opens. */
  extra?: string;
  colour?: string;
}

const PANELS: Panel[] = [
  { id: "byte-rates", title: "Top byte rates", by: "src.name", metric: "bytes", unit: "by source, per second", format: (v) => `${fmt.bytes(v)}/s`, rate: true },
  { id: "packet-rates", title: "Top packet rates", by: "dst.name", metric: "packets", unit: "by destination, per second", format: (v) => `${fmt.count(v)}/s`, rate: true },
  { id: "drops-cause", title: "Dropped packets by cause", by: "drop.cause", metric: "drops", unit: "packets, by kernel drop reason", format: fmt.count, known: true, colour: "var(--bad)" },
  { id: "drops-state", title: "Dropped packets by TCP state", by: "drop.state", metric: "drops", unit: "packets, by the socket's state", format: fmt.count, known: true, colour: "var(--bad)" },
  { id: "dns-rcodes", title: "DNS response codes", by: "dns.rcode", metric: "flows", unit: "flows, by response code", format: fmt.count, known: true },
  { id: "dns-latency", title: "DNS latency (p90)", by: "dns.name", metric: "dns_latency_p90", unit: "by query name", format: fmt.millis, known: true, colour: "var(--warn)" },
  { id: "rtt-top", title: "Highest RTT (p90)", by: "dst.name", metric: "rtt_p90", unit: "by destination", format: fmt.millis, known: true, colour: "var(--warn)" },
  { id: "rtt-low", title: "Lowest RTT (avg)", by: "dst.name", metric: "rtt_avg", unit: "by destination", format: fmt.millis, known: true, ascending: true },
  { id: "retransmits", title: "TCP retransmissions", by: "src.name", metric: "retransmits", unit: "segments, by source", format: fmt.count, known: true, extra: "tcp.retransmits > 0", colour: "var(--warn)" },
  { id: "outcomes", title: "Connection outcomes", by: "conn.outcome", metric: "flows", unit: "flows, by outcome", format: fmt.count, known: true },
];

const TOP = 6;

/** Seconds covered by the range, for rates. */
function rangeSeconds(since: string, until: string): number {
  const now = Date.now();
  return Math.max(1, ((boundMs(until, now) ?? now) - (boundMs(since, now) ?? now)) / 1000);
}

/** A panel's entries as shown: without unknown keys where asked, lowest
 * first where asked, the top few. */
function shownEntries(panel: Panel, all: TopEntry[]): TopEntry[] {
  let list = panel.known ? all.filter((e) => e.key !== "") : all;
  list = list.filter((e) => e.value > 0 || panel.metric === "flows");
  if (panel.ascending) list = [...list].sort((a, b) => a.value - b.value);
  return list.slice(0, TOP);
}

/** Every panel's top-K, asked at once and shown in one render, so the
 * overview lays out once rather than once per answer. */
function usePanels(scope: Scope, tick: number): Map<string, TopEntry[] | Error> | null {
  const [results, setResults] = useState<Map<string, TopEntry[] | Error> | null>(null);
  useEffect(() => {
    const ctl = new AbortController();
    Promise.all(
      PANELS.map((panel) =>
        api
          .top(scope, panel.by, panel.metric, panel.ascending ? 1000 : TOP * 2, ctl.signal)
          .then((all): [string, TopEntry[] | Error] => [panel.id, shownEntries(panel, all)])
          .catch((e): [string, TopEntry[] | Error] => [panel.id, e instanceof Error ? e : new Error(String(e))]),
      ),
    ).then((all) => {
      if (ctl.signal.aborted) return;
      setResults(new Map(all));
      // The overview's first meaningful paint, for the benchmark (docs/benchmarks.md).
      requestAnimationFrame(() => {
        if (!performance.getEntriesByName("flowlens:overview-data").length) performance.mark("flowlens:overview-data");
      });
    });
    return () => ctl.abort();
  }, [scope.filter, scope.since, scope.until, tick]);
  return results;
}

function PanelView({ panel, scope, result, onOpen }: { panel: Panel; scope: Scope; result: TopEntry[] | Error | undefined; onOpen: (filter: string) => void }) {
  const entries = Array.isArray(result) ? result : null;
  const error = result instanceof Error ? result.message : null;
  const seconds = rangeSeconds(scope.since, scope.until);
  const values = (entries ?? []).map((e) => (panel.rate ? e.value / seconds : e.value));
  const labels = (entries ?? []).map((e) => e.key || "(unknown)");
  const open = (i: number) => {
    const key = entries?.[i]?.key;
    const parts = [key ? equals(panel.by, key) : "", panel.extra ?? ""].filter(Boolean);
    onOpen(parts.join(" and "));
  };

  return (
    <section class="panel" id={`panel-${panel.id}`} aria-labelledby={`panel-${panel.id}-title`}>
      <header>
        <h2 id={`panel-${panel.id}-title`}>{panel.title}</h2>
        <span class="muted">{panel.unit}</span>
      </header>
      {error && <p class="error">{error}</p>}
      {entries && entries.length === 0 && !error && <p class="empty">Nothing in this time range.</p>}
      {entries && entries.length > 0 && (
        <>
          <MiniChart kind="bar" label={panel.title} labels={labels} values={values} format={panel.format} onPick={open} colour={panel.colour} />
          <table class="sr-only panel-data">
            <caption>{panel.title}</caption>
            <tbody>
              {labels.map((label, i) => (
                <tr key={label}>
                  <th scope="row">
                    <button type="button" onClick={() => open(i)}>
                      {label}
                    </button>
                  </th>
                  <td>{panel.format(values[i])}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </>
      )}
    </section>
  );
}

function TrafficPanel({ scope, tick, onOpen }: { scope: Scope; tick: number; onOpen: (filter: string) => void }) {
  const [series, setSeries] = useState<{ step: number; points: SeriesPoint[] } | null>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    const ctl = new AbortController();
    api
      .series(scope, "bytes", ctl.signal)
      .then((s) => {
        setSeries({ step: s.step_ms, points: s.points });
        setError(null);
      })
      .catch((e) => {
        if (!ctl.signal.aborted) setError(String(e.message ?? e));
      });
    return () => ctl.abort();
  }, [scope.filter, scope.since, scope.until, tick]);
  const step = (series?.step ?? 1000) / 1000;
  return (
    <section class="panel wide" id="panel-traffic" aria-labelledby="panel-traffic-title">
      <header>
        <h2 id="panel-traffic-title">Traffic</h2>
        <span class="muted">bytes per second, all flows</span>
      </header>
      {error && <p class="error">{error}</p>}
      {series && (
        <MiniChart
          kind="line"
          label="Traffic over time"
          labels={series.points.map((p) => fmt.time(p.time_ms).slice(0, 8))}
          values={series.points.map((p) => p.value / step)}
          format={(v) => `${fmt.bytes(v)}/s`}
          onPick={() => onOpen("")}
        />
      )}
    </section>
  );
}

export function Overview({ scope, tick, onOpen }: { scope: Scope; tick: number; onOpen: (filter: string) => void }) {
  const results = usePanels(scope, tick);
  return (
    <div class="overview">
      <TrafficPanel scope={scope} tick={tick} onOpen={onOpen} />
      {PANELS.map((p) => (
        <PanelView key={p.id} panel={p} scope={scope} result={results?.get(p.id)} onOpen={onOpen} />
      ))}
    </div>
  );
}
