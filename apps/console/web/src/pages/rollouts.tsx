/**
 * Rollouts: per ref, the published percentage and whether it is paused, with controls that
 * `PUT /api/v1/repos/{repo}/rollouts/{ref}` (an admin token is needed; the server regenerates and
 * signs the summary before it answers, so what the page shows after a change is what agents read).
 */
import { useState } from 'preact/hooks';
import { api, ApiFailure, type Rollout } from '../api.js';
import { when } from '../format.js';
import { ErrorBox, Loading, Section } from '../ui.js';
import { useData } from '../use-data.js';

function RolloutRow({ repo, r, onChanged }: { repo: string; r: Rollout; onChanged: () => void }) {
  const [percent, setPercent] = useState(String(r.percent));
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<ApiFailure | null>(null);
  const send = async (body: { percent?: number; paused?: boolean }) => {
    setBusy(true);
    setError(null);
    try {
      await api.setRollout(repo, r.ref, body);
      onChanged();
    } catch (e) {
      setError(e instanceof ApiFailure ? e : new ApiFailure(0, 'client-error', String(e)));
    } finally {
      setBusy(false);
    }
  };
  const effective = r.paused ? 0 : r.percent;
  return (
    <tr data-ref={r.ref}>
      <td>{r.ref}</td>
      <td>
        <div class="meter" title={`${effective}% of devices take new commits`}>
          <div style={{ width: `${effective}%` }} />
        </div>
        <span class="percent">{r.percent}%</span>
      </td>
      <td>{r.paused ? <span class="badge paused">paused</span> : <span class="badge live">live</span>}</td>
      <td class="muted">{r.reason ?? ''}</td>
      <td class="muted">{when(r.updatedAt)}</td>
      <td>
        <form
          class="inline"
          onSubmit={(e) => {
            e.preventDefault();
            const n = Number(percent);
            if (!Number.isInteger(n) || n < 0 || n > 100) {
              setError(new ApiFailure(0, 'invalid-input', 'The percentage must be a whole number from 0 to 100'));
              return;
            }
            void send({ percent: n });
          }}
        >
          <input
            name="percent"
            type="number"
            min={0}
            max={100}
            step={1}
            value={percent}
            aria-label={`Rollout percentage of ${r.ref}`}
            onInput={(e) => setPercent((e.target as HTMLInputElement).value)}
          />
          <button type="submit" disabled={busy}>
            Set
          </button>
          <button type="button" disabled={busy} onClick={() => void send({ paused: !r.paused })}>
            {r.paused ? 'Resume' : 'Pause'}
          </button>
        </form>
        <ErrorBox error={error} />
      </td>
    </tr>
  );
}

export function RolloutsPage({ repo }: { repo: string }) {
  const rollouts = useData(() => api.rollouts(repo), [repo]);
  const list = rollouts.data?.rollouts ?? [];
  return (
    <Section title="Rollouts" onRefresh={rollouts.reload}>
      <p class="muted">Agents take a ref's new commit when their bucket is below the percentage; a paused ref publishes 0%. Changing it needs an admin token.</p>
      <ErrorBox error={rollouts.error} />
      <Loading when={rollouts.loading && !rollouts.data} />
      {rollouts.data && list.length === 0 ? <p class="muted">No refs.</p> : null}
      {list.length > 0 ? (
        <table data-testid="rollouts">
          <thead>
            <tr>
              <th>Ref</th>
              <th>Percent</th>
              <th>State</th>
              <th>Reason</th>
              <th>Updated</th>
              <th>Change</th>
            </tr>
          </thead>
          <tbody>
            {list.map((r) => (
              <RolloutRow key={`${r.ref}:${r.percent}:${r.paused}`} repo={repo} r={r} onChanged={rollouts.reload} />
            ))}
          </tbody>
        </table>
      ) : null}
    </Section>
  );
}
