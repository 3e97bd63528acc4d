// One Chart.js chart in a canvas, recreated only when its kind changes and
// updated in place on new data (no animation), so auto-refresh stays cheap.

import {
  BarController,
  BarElement,
  CategoryScale,
  Chart,
  Filler,
  LinearScale,
  LineController,
  LineElement,
  PointElement,
  Tooltip,
  type ChartConfiguration,
} from "chart.js";
import { useEffect, useRef } from "preact/hooks";
import { colourOf, cssVar } from "./theme";

Chart.register(BarController, BarElement, CategoryScale, LinearScale, LineController, LineElement, PointElement, Filler, Tooltip);

interface Props {
  kind: "bar" | "line";
  labels: string[];
  values: number[];
  /** Shown on the value axis and in tooltips. */
  format: (v: number) => string;
  /** Called with the index of a clicked bar or point. */
  onPick?: (index: number) => void;
  label: string;
  colour?: string;
}

export function MiniChart({ kind, labels, values, format, onPick, label, colour }: Props) {
  const canvas = useRef<HTMLCanvasElement>(null);
  const chart = useRef<Chart | null>(null);
  const pick = useRef(onPick);
  pick.current = onPick;

  useEffect(() => {
    const text = cssVar("--muted");
    const grid = cssVar("--grid");
    const fill = colourOf(colour ?? "var(--accent)");
    const valueTicks = { callback: (v: string | number) => format(Number(v)) };
    const config: ChartConfiguration = {
      type: kind,
      data: { labels, datasets: [{ label, data: values, backgroundColor: fill, borderColor: fill, fill: kind === "line", pointRadius: 0, tension: 0.2 }] },
      options: {
        animation: false,
        responsive: true,
        maintainAspectRatio: false,
        indexAxis: kind === "bar" ? "y" : "x",
        plugins: {
          tooltip: { callbacks: { label: (ctx) => format(Number(ctx.raw)) } },
        },
        // The value axis formats numbers; the category axis keeps Chart.js's
        // own callback (the labels), so it is not set at all.
        scales: {
          x: { ticks: { color: text, maxTicksLimit: 8, ...(kind === "bar" ? valueTicks : {}) }, grid: { color: grid } },
          y: { ticks: { color: text, ...(kind === "line" ? valueTicks : {}) }, grid: { color: grid } },
        },
        onClick: (_e, elements) => {
          if (elements.length && pick.current) pick.current(elements[0].index);
        },
        onHover: (e, elements) => {
          const target = e.native?.target as HTMLElement | undefined;
          if (target) target.style.cursor = elements.length && pick.current ? "pointer" : "default";
        },
      },
    };
    chart.current = new Chart(canvas.current!, config);
    return () => chart.current?.destroy();
    // Colours are read once: the overview is re-mounted when the theme changes.
  }, [kind, colour]);

  // New data after the first: update in place (the chart was made with the first).
  const updates = useRef(0);
  useEffect(() => {
    const c = chart.current;
    if (!c || updates.current++ === 0) return;
    c.data.labels = labels;
    c.data.datasets[0].data = values;
    c.update("none");
  }, [labels, values]);

  return (
    <div class="chart-box">
      <canvas ref={canvas} role="img" aria-label={label} />
    </div>
  );
}
