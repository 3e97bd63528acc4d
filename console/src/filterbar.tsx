// The filter bar: the filter language with completion of fields, operators
// and values from /api/filter/complete, and the API's own validation shown
// inline (message, column, suggestion). Enter applies the filter; the
// keyboard drives the completion list (arrows, Tab accepts, Escape closes).

import { useEffect, useRef, useState } from "preact/hooks";
import { api, type Completions, type Validation } from "./api";

interface Props {
  value: string;
  onApply: (filter: string) => void;
}

export function FilterBar({ value, onApply }: Props) {
  const [text, setText] = useState(value);
  const [cursor, setCursor] = useState(value.length);
  const [completions, setCompletions] = useState<Completions | null>(null);
  const [active, setActive] = useState(0);
  const [open, setOpen] = useState(false);
  const [validation, setValidation] = useState<Validation | null>(null);
  const input = useRef<HTMLInputElement>(null);

  // A filter applied elsewhere (a quick link, a chart click) replaces the text.
  useEffect(() => setText(value), [value]);

  useEffect(() => {
    const ctl = new AbortController();
    const timer = setTimeout(() => {
      api
        .validate(text, ctl.signal)
        .then(setValidation)
        .catch(() => {});
      if (open) {
        api
          .complete(text, cursor, ctl.signal)
          .then((c) => {
            setCompletions(c);
            setActive(0);
          })
          .catch(() => {});
      }
    }, 120);
    return () => {
      clearTimeout(timer);
      ctl.abort();
    };
  }, [text, cursor, open]);

  const items = open && completions ? completions.items.slice(0, 12) : [];

  function accept(i: number) {
    if (!completions) return;
    const item = completions.items[i];
    const chars = [...text];
    const before = chars.slice(0, completions.from).join("");
    const after = chars.slice(completions.to).join("");
    const glue = after.startsWith(" ") ? "" : " ";
    const next = `${before}${item.text}${glue}${after}`;
    const at = [...before].length + [...item.text].length + glue.length;
    setText(next);
    setCursor(at);
    requestAnimationFrame(() => input.current?.setSelectionRange(at, at));
  }

  function onKeyDown(e: KeyboardEvent) {
    if (items.length && (e.key === "ArrowDown" || e.key === "ArrowUp")) {
      e.preventDefault();
      const step = e.key === "ArrowDown" ? 1 : -1;
      setActive((active + step + items.length) % items.length);
    } else if (items.length && e.key === "Tab") {
      e.preventDefault();
      accept(active);
    } else if (e.key === "Enter") {
      e.preventDefault();
      setOpen(false);
      onApply(text.trim());
    } else if (e.key === "Escape") {
      setOpen(false);
    }
  }

  const error = validation && !validation.valid ? validation.error : undefined;
  const position = error?.position ?? 0;

  return (
    <div class="filterbar" role="search">
      <label class="sr-only" for="filter-input">
        Filter
      </label>
      <div class={`filter-field ${error ? "invalid" : ""}`}>
        <input
          id="filter-input"
          ref={input}
          type="text"
          spellcheck={false}
          autocomplete="off"
          placeholder='Filter, e.g. dns.rcode = NXDomain or (drop.packets > 0 and dst.namespace = "backend")'
          value={text}
          aria-invalid={!!error}
          aria-describedby={error ? "filter-error" : undefined}
          aria-autocomplete="list"
          aria-controls="filter-completions"
          aria-expanded={items.length > 0}
          onInput={(e) => {
            const el = e.currentTarget;
            setText(el.value);
            setCursor(el.selectionStart ?? el.value.length);
            setOpen(true);
          }}
          onClick={(e) => setCursor(e.currentTarget.selectionStart ?? 0)}
          onFocus={() => setOpen(true)}
          onBlur={() => setTimeout(() => setOpen(false), 150)}
          onKeyDown={onKeyDown}
        />
        <button type="button" class="primary" onClick={() => onApply(text.trim())}>
          Apply
        </button>
        {text && (
          <button
            type="button"
            aria-label="Clear the filter"
            onClick={() => {
              setText("");
              onApply("");
            }}
          >
            ✕
          </button>
        )}
        {items.length > 0 && (
          <ul id="filter-completions" class="completions" role="listbox">
            {items.map((item, i) => (
              <li
                key={item.text}
                role="option"
                aria-selected={i === active}
                class={i === active ? "active" : ""}
                onMouseDown={(e) => {
                  e.preventDefault();
                  accept(i);
                }}
              >
                <code>{item.text}</code>
                <span class={`kind kind-${item.kind}`}>{item.kind}</span>
                <span class="doc">{item.doc}</span>
              </li>
            ))}
          </ul>
        )}
      </div>
      {error && (
        <div id="filter-error" class="filter-error" role="alert">
          <span>
            at column {position + 1}: {error.message}
          </span>
          {error.suggestion && (
            <button
              type="button"
              class="link"
              onClick={() => {
                const suggestion = error.suggestion!;
                const word = /^[\w.]+/.exec([...text].slice(position).join(""));
                const chars = [...text];
                const next =
                  chars.slice(0, position).join("") + suggestion + chars.slice(position + (word ? word[0].length : 0)).join("");
                setText(next);
              }}
            >
              use “{error.suggestion}”
            </button>
          )}
        </div>
      )}
    </div>
  );
}
