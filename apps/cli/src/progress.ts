/**
 * Progress display for long verbs. Drawn on stderr, and only when stderr is a terminal, so
 * scripts and pipes never see it; cleared when the work ends.
 */
import cliProgress from 'cli-progress';

export interface Progress<T> {
  update: (p: T) => void;
  stop: () => void;
}

/**
 * Start a progress display. `format` is a cli-progress format string; `values(p)` maps a
 * progress report to the bar's value, total (omit when unknown) and payload fields.
 */
export function startProgress<T>(
  format: string,
  values: (p: T) => { value: number; total?: number; payload?: Record<string, string | number> },
  initialPayload: Record<string, string | number>,
): Progress<T> {
  const bar = new cliProgress.SingleBar(
    { stream: process.stderr, format, hideCursor: true, clearOnComplete: true },
    cliProgress.Presets.shades_classic,
  );
  // Drawn at once, so even work that finishes before its first report shows something.
  bar.start(1, 0, initialPayload);
  return {
    update: (p) => {
      const v = values(p);
      bar.setTotal(v.total ?? Math.max(v.value, 1));
      bar.update(v.value, v.payload ?? {});
    },
    stop: () => bar.stop(),
  };
}
