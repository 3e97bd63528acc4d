// Topology: endpoints at the chosen scope as a graph (cytoscape), edges
// sized by bytes and coloured by drops, DNS errors or RTT. Clicking a node or
// an edge opens the flows between them. The same graph is listed as a table
// for the keyboard and screen readers.

import cytoscape from "cytoscape";
import { useEffect, useRef, useState } from "preact/hooks";
import { api, type Edge, type Scope, type TopologyNode } from "./api";
import * as fmt from "./format";
import { COLOURINGS, equals, SCOPES, type ViewState } from "./state";
import { cssVar } from "./theme";

/** The filter fields of each scope's two ends (as /api/topology groups). */
const SCOPE_FIELDS: Record<string, [string, string]> = {
  host: ["src.host", "dst.host"],
  namespace: ["src.namespace", "dst.namespace"],
  workload: ["src.name", "dst.name"],
  pod: ["src.name", "dst.name"],
};

/** RTT above this (ms) marks an edge as slow. */
const SLOW_RTT_MS = 50;

function flagged(e: Edge, colour: string): boolean {
  if (colour === "drops") return e.drops > 0;
  if (colour === "dns_errors") return e.dns_errors > 0;
  return (e.rtt_avg_ms ?? 0) > SLOW_RTT_MS;
}

interface Props {
  scope: Scope;
  state: ViewState;
  tick: number;
  onState: (patch: Partial<ViewState>) => void;
  onOpen: (filter: string) => void;
}

export function Topology({ scope, state, tick, onState, onOpen }: Props) {
  const [graph, setGraph] = useState<{ nodes: TopologyNode[]; edges: Edge[] } | null>(null);
  const [error, setError] = useState<string | null>(null);
  const box = useRef<HTMLDivElement>(null);
  const cy = useRef<cytoscape.Core | null>(null);
  const open = useRef(onOpen);
  open.current = onOpen;
  const [srcField, dstField] = SCOPE_FIELDS[state.scope] ?? SCOPE_FIELDS.workload;

  useEffect(() => {
    const ctl = new AbortController();
    api
      .topology(scope, state.scope, ctl.signal)
      .then((g) => {
        setGraph(g);
        setError(null);
      })
      .catch((e) => {
        if (!ctl.signal.aborted) setError(String(e.message ?? e));
      });
    return () => ctl.abort();
  }, [scope.filter, scope.since, scope.until, state.scope, tick]);

  const nodeFilter = (id: string) => `(${equals(srcField, id)} or ${equals(dstField, id)})`;
  const edgeFilter = (e: Edge) => `${equals(srcField, e.src)} and ${equals(dstField, e.dst)}`;

  useEffect(() => {
    if (!graph || !box.current) return;
    const maxBytes = Math.max(1, ...graph.edges.map((e) => e.bytes));
    const width = (b: number) => 1 + 7 * Math.sqrt(b / maxBytes);
    const ids = new Set(graph.nodes.map((n) => n.id));
    const elements: cytoscape.ElementDefinition[] = [
      ...graph.nodes.map((n) => ({ data: { id: `n:${n.id}`, label: n.id || "(unknown)", name: n.id } })),
      ...graph.edges
        .filter((e) => ids.has(e.src) && ids.has(e.dst))
        .map((e, i) => ({
          data: { id: `e:${i}`, source: `n:${e.src}`, target: `n:${e.dst}`, width: width(e.bytes), index: i },
          classes: flagged(e, state.colour) ? "flagged" : "",
        })),
    ];
    const text = cssVar("--text");
    const flagColour = state.colour === "drops" ? cssVar("--bad") : cssVar("--warn");
    cy.current?.destroy();
    const c = cytoscape({
      container: box.current,
      elements,
      layout: { name: graph.nodes.length > 12 ? "cose" : "circle", animate: false, padding: 30 } as cytoscape.LayoutOptions,
      wheelSensitivity: 0.3,
      style: [
        { selector: "node", style: { label: "data(label)", color: text, "font-size": 12, "background-color": cssVar("--accent"), "text-valign": "bottom", "text-margin-y": 4 } },
        { selector: "edge", style: { width: "data(width)", "line-color": cssVar("--edge"), "target-arrow-color": cssVar("--edge"), "target-arrow-shape": "triangle", "curve-style": "bezier" } },
        { selector: "edge.flagged", style: { "line-color": flagColour, "target-arrow-color": flagColour } },
      ],
    });
    c.on("tap", "node", (ev) => open.current(nodeFilter(ev.target.data("name"))));
    c.on("tap", "edge", (ev) => open.current(edgeFilter(graph.edges[ev.target.data("index")])));
    cy.current = c;
  }, [graph, state.colour]);

  useEffect(() => () => cy.current?.destroy(), []);

  return (
    <div class="topology">
      <div class="toolbar">
        <label>
          Scope
          <select value={state.scope} onChange={(e) => onState({ scope: e.currentTarget.value })}>
            {SCOPES.map((s) => (
              <option key={s} value={s}>
                {s}
              </option>
            ))}
          </select>
        </label>
        <label>
          Colour edges by
          <select value={state.colour} onChange={(e) => onState({ colour: e.currentTarget.value })}>
            {COLOURINGS.map((s) => (
              <option key={s} value={s}>
                {s === "rtt" ? `RTT over ${SLOW_RTT_MS} ms` : s.replace("_", " ")}
              </option>
            ))}
          </select>
        </label>
        <span class="muted">Edge width: bytes. Click a node or an edge for its flows.</span>
      </div>
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
      <div class="graph" ref={box} role="img" aria-label={`Topology at ${state.scope} scope`} />
      {graph && (
        <table class="data edges" id="topology-edges">
          <caption>
            {graph.nodes.length} nodes, {graph.edges.length} edges
          </caption>
          <thead>
            <tr>
              <th scope="col">From</th>
              <th scope="col">To</th>
              <th scope="col" class="num">Bytes</th>
              <th scope="col" class="num">Dropped packets</th>
              <th scope="col" class="num">DNS errors</th>
              <th scope="col" class="num">RTT avg</th>
            </tr>
          </thead>
          <tbody>
            {graph.edges.map((e, i) => (
              <tr key={i} class={flagged(e, state.colour) ? "flagged" : ""}>
                <td>
                  <button type="button" class="link" onClick={() => onOpen(nodeFilter(e.src))}>
                    {e.src || "(unknown)"}
                  </button>
                </td>
                <td>
                  <button type="button" class="link" onClick={() => onOpen(nodeFilter(e.dst))}>
                    {e.dst || "(unknown)"}
                  </button>
                </td>
                <td class="num">
                  <button type="button" class="link" onClick={() => onOpen(edgeFilter(e))}>
                    {fmt.bytes(e.bytes)}
                  </button>
                </td>
                <td class="num">{e.drops ? fmt.count(e.drops) : ""}</td>
                <td class="num">{e.dns_errors || ""}</td>
                <td class="num">{e.rtt_avg_ms === null ? "" : fmt.millis(e.rtt_avg_ms)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </div>
  );
}
