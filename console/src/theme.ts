// Light, dark or the system's choice, remembered in this browser.

import { useEffect, useState } from "preact/hooks";

export type Theme = "auto" | "light" | "dark";

const KEY = "flowlens.theme";

function resolved(theme: Theme): "light" | "dark" {
  if (theme !== "auto") return theme;
  return matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light";
}

export function useTheme(): [Theme, (t: Theme) => void] {
  const [theme, setTheme] = useState<Theme>(() => (localStorage.getItem(KEY) as Theme) || "auto");
  // Set while rendering, not in an effect: the charts below read the
  // theme's colours when they mount, before the effects of their parents run.
  document.documentElement.dataset.theme = resolved(theme);
  useEffect(() => localStorage.setItem(KEY, theme), [theme]);
  return [theme, setTheme];
}

/** A colour (or any custom property) of the current theme. */
export function cssVar(name: string): string {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
}

/** A canvas needs a real colour: `var(--x)` is looked up. */
export function colourOf(spec: string): string {
  const m = /^var\((--[\w-]+)\)$/.exec(spec);
  return m ? cssVar(m[1]) : spec;
}
