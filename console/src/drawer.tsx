// The details drawer: every field of one record with what it means (the
// filter catalog's documentation, matched by netobserv name), so a user
// learns the data model from their own records.

import { useEffect, useRef } from "preact/hooks";
import type { FlowRecord } from "./api";
import * as fmt from "./format";
import { type FieldInfo, fieldOfJson, readable } from "./schema";

interface Props {
  record: FlowRecord;
  fields: FieldInfo[];
  onClose: () => void;
  action?: { label: string; run: () => void };
}

/** The store's own field, which is not a field of records. */
const STORE_FIELDS: Record<string, string> = {
  _Id: "The store's id of this record (unique; pages are cut by time and id)",
};

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
    const f = fieldOfJson(fields, key);
    return f ? { name: f.filterable ? f.name : "", doc: f.doc } : { name: "", doc: STORE_FIELDS[key] ?? "" };
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
          const f = fieldOfJson(fields, key);
          const extra = f ? readable(f, value) : "";
          return (
            <div class="field" key={key}>
              <dt>
                <code>{key}</code>
                {name && <span class="muted"> · filter: {name}</span>}
              </dt>
              <dd>
                <span class="value">{fmt.plain(value)}</span>
                {extra && <span class="muted"> ({extra})</span>}
                {doc && <div class="doc">{doc}</div>}
              </dd>
            </div>
          );
        })}
      </dl>
    </aside>
  );
}
