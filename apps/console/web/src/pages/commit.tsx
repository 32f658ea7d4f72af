/** Commit: its metadata, its file tree (one directory at a time) and its diff to the parent. */
import { api } from '../api.js';
import { bytes, modeString, short, when } from '../format.js';
import { href } from '../route.js';
import { ErrorBox, Loading, Section } from '../ui.js';
import { useData } from '../use-data.js';

function Breadcrumbs({ repo, commit, path }: { repo: string; commit: string; path: string }) {
  const parts = path.split('/').filter((p) => p !== '');
  return (
    <p class="crumbs" data-testid="crumbs">
      <a href={href(repo, 'commit', commit, '/')}>/</a>
      {parts.map((p, i) => {
        const to = `/${parts.slice(0, i + 1).join('/')}`;
        return (
          <>
            {i > 0 ? ' / ' : ' '}
            <a href={href(repo, 'commit', commit, to)}>{p}</a>
          </>
        );
      })}
    </p>
  );
}

function Tree({ repo, commit, path }: { repo: string; commit: string; path: string }) {
  const tree = useData(() => api.tree(repo, commit, path), [repo, commit, path]);
  const parent = path === '/' ? null : path.replace(/\/[^/]+$/, '') || '/';
  return (
    <Section title="Files">
      <Breadcrumbs repo={repo} commit={commit} path={path} />
      <ErrorBox error={tree.error} />
      <Loading when={tree.loading} />
      {tree.data ? (
        <table data-testid="tree">
          <thead>
            <tr>
              <th>Mode</th>
              <th>Name</th>
              <th class="num">Size</th>
              <th>Checksum</th>
            </tr>
          </thead>
          <tbody>
            {parent !== null ? (
              <tr>
                <td />
                <td>
                  <a href={href(repo, 'commit', commit, parent)}>..</a>
                </td>
                <td />
                <td />
              </tr>
            ) : null}
            {tree.data.entries.map((e) => {
              const to = path === '/' ? `/${e.name}` : `${path}/${e.name}`;
              return (
                <tr>
                  <td class="mono">{modeString(e.mode)}</td>
                  <td>
                    {e.type === 'dir' ? <a href={href(repo, 'commit', commit, to)}>{e.name}/</a> : e.name}
                    {e.type === 'symlink' ? <span class="muted"> → {e.target}</span> : null}
                  </td>
                  <td class="num">{e.size === null ? '' : bytes(e.size)}</td>
                  <td class="mono muted" title={e.checksum}>
                    {short(e.checksum)}
                  </td>
                </tr>
              );
            })}
          </tbody>
        </table>
      ) : null}
      {tree.data?.truncated ? <p class="muted">Showing {tree.data.entries.length} of {tree.data.total} entries.</p> : null}
    </Section>
  );
}

const KIND_LABEL = { added: 'A', removed: 'D', modified: 'M' } as const;

function Diff({ repo, commit }: { repo: string; commit: string }) {
  const diff = useData(() => api.diff(repo, commit), [repo, commit]);
  return (
    <Section title="Changes">
      <ErrorBox error={diff.error} />
      <Loading when={diff.loading} />
      {diff.data ? (
        <>
          <p class="muted">
            {diff.data.parent ? (
              <>
                Against parent <a href={href(repo, 'commit', diff.data.parent)}>{short(diff.data.parent)}</a>
              </>
            ) : (
              'No parent: everything is added.'
            )}{' '}
            — {diff.data.changes.length} change{diff.data.changes.length === 1 ? '' : 's'}
            {diff.data.truncated ? ' (list cut)' : ''}
          </p>
          <ul class="diff" data-testid="diff">
            {diff.data.changes.map((c) => (
              <li class={c.kind}>
                <span class="kind">{KIND_LABEL[c.kind]}</span> <span class="mono">{c.path}</span>
              </li>
            ))}
          </ul>
        </>
      ) : null}
    </Section>
  );
}

export function CommitPage({ repo, commit, path }: { repo: string; commit: string; path: string }) {
  const info = useData(() => api.commit(repo, commit), [repo, commit]);
  const c = info.data;
  return (
    <>
      <Section title={`Commit ${short(commit)}`}>
        <ErrorBox error={info.error} />
        {c ? (
          <dl class="meta" data-testid="commit">
            <dt>Checksum</dt>
            <dd class="mono">{c.checksum}</dd>
            <dt>Subject</dt>
            <dd>{c.subject || <span class="muted">(none)</span>}</dd>
            {c.body ? (
              <>
                <dt>Body</dt>
                <dd class="body">{c.body}</dd>
              </>
            ) : null}
            <dt>Version</dt>
            <dd>{c.version ?? '—'}</dd>
            <dt>Date</dt>
            <dd>{when(c.timestamp)}</dd>
            <dt>Parent</dt>
            <dd class="mono">{c.parent ? <a href={href(repo, 'commit', c.parent)}>{c.parent}</a> : '—'}</dd>
          </dl>
        ) : null}
      </Section>
      <div class="columns">
        <Tree repo={repo} commit={commit} path={path} />
        <Diff repo={repo} commit={commit} />
      </div>
    </>
  );
}
