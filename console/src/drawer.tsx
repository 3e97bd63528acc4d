// The details drawer: every field of one record with what it means (the
// filter catalog's documentation, matched by netobserv name), so a user
// learns the data model from their own records.

import { useEffect, useRef } from "preact/hooks";
import type { FieldDoc, FlowRecord } from "./api";
import * as fmt from "./format";

interface Props {
  record: FlowRecord;
  fields: FieldDoc[];
  onClose: () => void;
  action?: { label: string; run: () => void };
}

/** Extra explanations of record fields that are not filter fields. */
const NOTES: Record<string, string> = {
  _Id: "The store's id of this record (unique; pages are cut by time and id)",
  _IsFirst: "True on the first record of a conversation",
  numFlowLogs: "Flow records joined into this conversation so far",
  Packets_AB: "Packets from A (the side that opened the connection) to B",
  Packets_BA: "Packets from B to A",
  TimeFlowRttAvgNs: "Average smoothed RTT over the conversation's flows (ns)",
  IfDirections: "Direction at each interface: 0 ingress, 1 egress",
  NetworkEvents: "Network events (policy verdicts) seen on this flow",
  Bytes: "Bytes of this flow (one direction)",
  Packets: "Packets of this flow (one direction)",
};

/** A readable form next to raw values that have one. */
function readable(key: string, v: unknown): string {
  switch (key) {
    case "Proto":
      return fmt.protocolName(v);
    case "Flags":
      return fmt.tcpFlags(v);
    case "FlowDirection":
      return fmt.directionName(v);
    case "TimeFlowStartMs":
    case "TimeFlowEndMs":
      return typeof v === "number" ? new Date(v).toISOString() : "";
    case "Bytes":
    case "Bytes_AB":
    case "Bytes_BA":
    case "PktDropBytes":
      return typeof v === "number" ? fmt.bytes(v) : "";
  }
  if (key.endsWith("Ns") && typeof v === "number") return fmt.millis(v / 1e6);
  return "";
}

export function Drawer({ record, fields, onClose, action }: Props) {
  const panel = useRef<HTMLElement>(null);
  useEffect(() => {
    panel.current?.focus();
    const onKey = (e: KeyboardEvent) => {
      if (e.key === "Escape") onClose();
    };
    window.addEventListener("keydown", onKey);
    return () => window.removeEventListener("keydown", onKey);
  }, [record]);

  const docOf = (key: string) => {
    const f = fields.find((d) => d.aliases.includes(key) || d.name === key);
    return f ? { name: f.name, doc: f.doc } : { name: "", doc: NOTES[key] ?? "" };
  };

  return (
    <aside class="drawer" ref={panel} tabIndex={-1} role="dialog" aria-modal="false" aria-label="Record details">
      <header>
        <h2>Record details</h2>
        <button type="button" aria-label="Close the details" onClick={onClose}>
          ✕
        </button>
      </header>
      {action && (
        <button type="button" class="primary" onClick={action.run}>
          {action.label}
        </button>
      )}
      <dl>
        {Object.entries(record).map(([key, value]) => {
          const { name, doc } = docOf(key);
          const extra = readable(key, value);
          return (
            <div class="field" key={key}>
              <dt>
                <code>{key}</code>
                {name && <span class="muted"> · filter: {name}</span>}
              </dt>
              <dd>
                <span class="value">{fmt.plain(value)}</span>
                {extra && <span class="muted"> ({extra})</span>}
                {(doc || NOTES[key]) && <div class="doc">{doc || NOTES[key]}</div>}
              </dd>
            </div>
          );
        })}
      </dl>
    </aside>
  );
}
