// Build of the web console: everything (Preact, styles) bundled into dist/, no CDN. The assets
// are addressed under /console/, where larch-server serves them. `vite dev` proxies /api to a
// running larch-server (LARCH_SERVER, default http://127.0.0.1:8080).
import { defineConfig } from 'vite';

export default defineConfig({
  root: 'web',
  base: '/console/',
  oxc: { jsx: { runtime: 'automatic', importSource: 'preact' } },
  build: {
    outDir: '../dist',
    emptyOutDir: true,
    target: 'es2022',
    sourcemap: false,
  },
  server: {
    proxy: { '/api': process.env.LARCH_SERVER ?? 'http://127.0.0.1:8080' },
  },
});
