// Shared vitest settings for every workspace project.
// Tests that drive the real `ostree` CLI live under `interop` names; tests
// that take long are under `slow`. Both run in CI.
export const sharedTestConfig = {
  testTimeout: 120_000,
  hookTimeout: 120_000,
  pool: 'forks',
  maxWorkers: 2,
  minWorkers: 1,
};
