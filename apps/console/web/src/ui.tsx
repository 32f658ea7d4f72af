/** Small shared pieces: the error banner and the loading line. */
import type { ComponentChildren } from 'preact';
import type { ApiFailure } from './api.js';

export function ErrorBox({ error }: { error: ApiFailure | null }) {
  if (!error) return null;
  const hint =
    error.status === 401 ? ' Enter a token above.' : error.status === 403 ? ' This token does not allow it.' : '';
  return (
    <div class="error" role="alert">
      <strong>{error.status ? `${error.status} ${error.code}` : error.code}</strong>: {error.message}
      {hint}
    </div>
  );
}

export function Loading({ when }: { when: boolean }) {
  return when ? <p class="muted">Loading…</p> : null;
}

export function Section({ title, children, onRefresh }: { title: string; children: ComponentChildren; onRefresh?: () => void }) {
  return (
    <section>
      <h2>
        {title}
        {onRefresh ? (
          <button type="button" class="refresh" onClick={onRefresh} title="Load again">
            Refresh
          </button>
        ) : null}
      </h2>
      {children}
    </section>
  );
}
