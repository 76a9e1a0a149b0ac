// Builds the operator console into dist/ (committed; embedded into the daemon by cmake/EmbedUi.cmake).
// docs/console.md. base '/ui/': the admin API serves the files there.
import { defineConfig } from 'vite';

export default defineConfig({
  base: '/ui/',
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    target: 'es2020',
    // One JS and one CSS file; no inline scripts or styles (the page is served with a strict CSP).
    modulePreload: { polyfill: false },
    assetsInlineLimit: 0,
    sourcemap: false,
  },
});
