/**
 * Hash routes, so the server only ever serves index.html:
 *   #/{repo}/refs[/{ref…}]          refs, and the history of one ref
 *   #/{repo}/commit/{csum}?path=/p  a commit's tree at a path, and its diff to the parent
 *   #/{repo}/deltas | rollouts | devices
 */
import { useEffect, useState } from 'preact/hooks';

export type Page = 'refs' | 'commit' | 'deltas' | 'rollouts' | 'devices';

export interface Route {
  repo: string | null;
  page: Page;
  /** refs: the selected ref ('' for none); commit: the checksum. */
  arg: string;
  /** commit: the directory shown. */
  path: string;
}

const PAGES: readonly Page[] = ['refs', 'commit', 'deltas', 'rollouts', 'devices'];

export function parseHash(hash: string): Route {
  const h = hash.replace(/^#\/?/, '');
  const q = h.indexOf('?');
  const pathPart = q < 0 ? h : h.slice(0, q);
  const params = new URLSearchParams(q < 0 ? '' : h.slice(q + 1));
  const segs = pathPart.split('/').filter((s) => s !== '').map((s) => {
    try {
      return decodeURIComponent(s);
    } catch {
      return s;
    }
  });
  const [repo, page, ...rest] = segs;
  const p = PAGES.includes(page as Page) ? (page as Page) : 'refs';
  return { repo: repo ?? null, page: p, arg: rest.join('/'), path: params.get('path') ?? '/' };
}

export function href(repo: string, page: Page, arg = '', path?: string): string {
  const enc = (s: string) => s.split('/').map(encodeURIComponent).join('/');
  let h = `#/${encodeURIComponent(repo)}/${page}`;
  if (arg) h += `/${enc(arg)}`;
  if (path !== undefined && path !== '/') h += `?path=${encodeURIComponent(path)}`;
  return h;
}

export function useRoute(): Route {
  const [route, setRoute] = useState(() => parseHash(location.hash));
  useEffect(() => {
    const on = () => setRoute(parseHash(location.hash));
    addEventListener('hashchange', on);
    return () => removeEventListener('hashchange', on);
  }, []);
  return route;
}
