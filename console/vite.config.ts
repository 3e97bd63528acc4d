import { defineConfig } from "vite";

// The build's output directory comes from the Rust build (FLOWLENS_CONSOLE_OUT),
// which embeds it in the binary; `npm run build` alone writes dist/.
export default defineConfig({
  base: "/",
  oxc: { jsx: { runtime: "automatic", importSource: "preact" } },
  build: {
    outDir: process.env.FLOWLENS_CONSOLE_OUT || "dist",
    emptyOutDir: true,
    sourcemap: false,
    chunkSizeWarningLimit: 1200,
  },
});
