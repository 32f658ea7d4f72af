import { defineConfig } from 'vitest/config';
import { sharedTestConfig } from './tooling/vitest/index.js';

export default defineConfig({
  test: {
    ...sharedTestConfig,
    include: [
      'packages/*/src/**/*.test.ts',
      'packages/*/test/**/*.test.ts',
      'apps/*/src/**/*.test.ts',
      'apps/*/test/**/*.test.ts',
      'test-fixtures/src/**/*.test.ts',
      'tooling/test/**/*.test.ts',
    ],
    exclude: ['**/node_modules/**', '**/dist/**'],
  },
});
