/** Refs: every head ref with its commit, and the history of the selected ref. */
import { api } from '../api.js';
import { short, when } from '../format.js';
import { href } from '../route.js';
import { ErrorBox, Loading, Section } from '../ui.js';
import { useData } from '../use-data.js';

function History({ repo, ref }: { repo: string; ref: string }) {
  const log = useData(() => api.log(repo, ref, 100), [repo, ref]);
  return (
    <Section title={`History of ${ref}`}>
      <ErrorBox error={log.error} />
      <Loading when={log.loading} />
      {log.data ? (
        <table class="history" data-testid="history">
          <thead>
            <tr>
              <th>Commit</th>
              <th>Version</th>
              <th>Date</th>
              <th>Subject</th>
            </tr>
          </thead>
          <tbody>
            {log.data.commits.map((c) => (
              <tr>
                <td class="mono">
                  <a href={href(repo, 'commit', c.checksum)} title={c.checksum}>
                    {short(c.checksum)}
                  </a>
                </td>
                <td>{c.version ?? '—'}</td>
                <td>{when(c.timestamp)}</td>
                <td>
                  {c.subject}
                  {c.body ? <div class="muted body">{c.body}</div> : null}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : null}
      {log.data?.truncated ? <p class="muted">Older commits not shown.</p> : null}
      {log.data?.historyMissing ? <p class="muted">History beyond this commit is not in the repository.</p> : null}
    </Section>
  );
}

export function RefsPage({ repo, selected }: { repo: string; selected: string }) {
  const refs = useData(() => api.refs(repo), [repo]);
  return (
    <>
      <Section title="Refs">
        <ErrorBox error={refs.error} />
        <Loading when={refs.loading} />
        {refs.data && refs.data.refs.length === 0 ? <p class="muted">No refs.</p> : null}
        {refs.data && refs.data.refs.length > 0 ? (
          <table data-testid="refs">
            <thead>
              <tr>
                <th>Ref</th>
                <th>Commit</th>
                <th>Version</th>
                <th>Date</th>
                <th>Subject</th>
              </tr>
            </thead>
            <tbody>
              {refs.data.refs.map((r) => (
                <tr class={r.ref === selected ? 'selected' : ''}>
                  <td>
                    <a href={href(repo, 'refs', r.ref)}>{r.ref}</a>
                  </td>
                  <td class="mono">
                    <a href={href(repo, 'commit', r.commit)} title={r.commit}>
                      {short(r.commit)}
                    </a>
                  </td>
                  <td>{r.version ?? '—'}</td>
                  <td>{when(r.timestamp)}</td>
                  <td>{r.subject ?? <span class="muted">commit not in the repository</span>}</td>
                </tr>
              ))}
            </tbody>
          </table>
        ) : null}
        {refs.data?.truncated ? <p class="muted">More refs exist than are listed.</p> : null}
      </Section>
      {selected ? <History repo={repo} ref={selected} /> : refs.data && refs.data.refs.length > 0 ? <p class="muted">Choose a ref to see its history.</p> : null}
    </>
  );
}
