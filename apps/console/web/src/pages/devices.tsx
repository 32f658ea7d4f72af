/** Devices: what each device of the fleet reported at its last check-in. */
import { api, type Device } from '../api.js';
import { short, when } from '../format.js';
import { ErrorBox, Loading, Section } from '../ui.js';
import { useData } from '../use-data.js';

function Commit({ c }: { c: Device['booted'] | Device['target'] }) {
  if (c === null) return <span class="muted">—</span>;
  return (
    <span>
      <span class="mono" title={c.commit}>
        {short(c.commit)}
      </span>
      {c.version ? <span class="muted"> {c.version}</span> : null}
    </span>
  );
}

function Health({ d }: { d: Device }) {
  if (d.health.length === 0) return <span class="muted">no checks</span>;
  return (
    <ul class="health">
      {d.health.map((h) => (
        <li class={h.ok ? 'ok' : 'fail'}>
          {h.ok ? '✓' : '✗'} {h.name}
        </li>
      ))}
    </ul>
  );
}

export function DevicesPage({ repo }: { repo: string }) {
  const devices = useData(() => api.devices(repo), [repo]);
  const list = devices.data?.devices ?? [];
  return (
    <Section title="Devices" onRefresh={devices.reload}>
      <ErrorBox error={devices.error} />
      <Loading when={devices.loading && !devices.data} />
      {devices.data && list.length === 0 ? <p class="muted">No device has checked in.</p> : null}
      {list.length > 0 ? (
        <table data-testid="devices">
          <thead>
            <tr>
              <th>Device</th>
              <th>Ref</th>
              <th>Booted</th>
              <th>Target</th>
              <th>Phase</th>
              <th>Health</th>
              <th>Last seen</th>
            </tr>
          </thead>
          <tbody>
            {list.map((d) => (
              <tr data-device={d.deviceId} class={d.degraded ? 'degraded' : ''}>
                <td>{d.deviceId}</td>
                <td>{d.ref}</td>
                <td>
                  <Commit c={d.booted} />
                </td>
                <td>
                  <Commit c={d.target} />
                </td>
                <td>
                  <span class={`badge phase-${d.phase}`}>{d.phase}</span>
                  {d.degraded ? <span class="badge paused">degraded</span> : null}
                  {d.badCommits.length > 0 ? (
                    <div class="muted small">
                      bad: {d.badCommits.map((c) => short(c)).join(', ')}
                    </div>
                  ) : null}
                  {d.lastError ? (
                    <div class="muted small" title={d.lastError.code}>
                      {d.lastError.phase}: {d.lastError.message}
                    </div>
                  ) : null}
                </td>
                <td>
                  <Health d={d} />
                </td>
                <td class="muted">{when(d.lastSeen)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : null}
    </Section>
  );
}
