/**
 * The console shell: repository choice, navigation, token entry, and the page of the route.
 * The token is stored in localStorage and sent as `Authorization: Bearer …` by api.ts.
 */
import { useEffect, useState } from 'preact/hooks';
import { api, getToken, setToken } from './api.js';
import { href, useRoute, type Page } from './route.js';
import { ErrorBox } from './ui.js';
import { useData } from './use-data.js';
import { RefsPage } from './pages/refs.js';
import { CommitPage } from './pages/commit.js';
import { DeltasPage } from './pages/deltas.js';
import { RolloutsPage } from './pages/rollouts.js';
import { DevicesPage } from './pages/devices.js';

const NAV: Array<[Page, string]> = [
  ['refs', 'Refs'],
  ['deltas', 'Deltas'],
  ['rollouts', 'Rollouts'],
  ['devices', 'Devices'],
];

function TokenForm({ onChange }: { onChange: () => void }) {
  const [value, setValue] = useState(getToken());
  const saved = getToken() !== '';
  return (
    <form
      class="token"
      onSubmit={(e) => {
        e.preventDefault();
        setToken(value.trim());
        onChange();
      }}
    >
      <label>
        Token{' '}
        <input
          name="token"
          type="password"
          autocomplete="off"
          placeholder="larch_…"
          value={value}
          onInput={(e) => setValue((e.target as HTMLInputElement).value)}
        />
      </label>
      <button type="submit">Save</button>
      {saved ? (
        <button
          type="button"
          onClick={() => {
            setValue('');
            setToken('');
            onChange();
          }}
        >
          Forget
        </button>
      ) : null}
      <span class="muted">{saved ? 'token saved in this browser' : 'no token'}</span>
    </form>
  );
}

export function App() {
  const route = useRoute();
  const [session, setSession] = useState(0);
  const repos = useData(() => api.repos(), [session]);
  const names = repos.data?.repos.map((r) => r.name) ?? [];
  const repo = route.repo ?? names[0] ?? null;

  // Without a repository in the URL, go to the first one the token can read.
  useEffect(() => {
    if (route.repo === null && names.length > 0) location.replace(href(names[0], 'refs'));
  }, [route.repo, names.join('\n')]);

  return (
    <div key={session}>
      <header>
        <h1>
          <a href={repo ? href(repo, 'refs') : '#/'}>Larch</a>
        </h1>
        {names.length > 0 ? (
          <label class="repo">
            Repository{' '}
            <select
              value={repo ?? ''}
              onChange={(e) => {
                location.hash = href((e.target as HTMLSelectElement).value, route.page === 'commit' ? 'refs' : route.page);
              }}
            >
              {names.map((n) => (
                <option value={n}>{n}</option>
              ))}
            </select>
          </label>
        ) : null}
        <nav>
          {repo
            ? NAV.map(([page, label]) => (
                <a href={href(repo, page)} class={route.page === page || (page === 'refs' && route.page === 'commit') ? 'active' : ''}>
                  {label}
                </a>
              ))
            : null}
        </nav>
        <TokenForm onChange={() => setSession((s) => s + 1)} />
      </header>
      <main>
        <ErrorBox error={repos.error} />
        {repo === null ? (
          repos.loading ? null : repos.error ? null : <p class="muted">This token can read no repository.</p>
        ) : route.page === 'refs' ? (
          <RefsPage repo={repo} selected={route.arg} />
        ) : route.page === 'commit' ? (
          <CommitPage repo={repo} commit={route.arg} path={route.path} />
        ) : route.page === 'deltas' ? (
          <DeltasPage repo={repo} />
        ) : route.page === 'rollouts' ? (
          <RolloutsPage repo={repo} />
        ) : (
          <DevicesPage repo={repo} />
        )}
      </main>
    </div>
  );
}
