/**
 * Deltas: each static delta's size on disk against the full size of its target commit (what a
 * client fetches object by object without the delta), as a bar chart drawn in SVG, and a table.
 */
import type { DeltaInfo } from '@larch/browse';
import { api } from '../api.js';
import { bytes, short } from '../format.js';
import { ErrorBox, Loading, Section } from '../ui.js';
import { useData } from '../use-data.js';

const ROW = 46;
const LABEL_W = 230;
const BAR_W = 380;
const TOP = 30;
const WIDTH = LABEL_W + BAR_W + 130;

function deltaName(d: DeltaInfo): string {
  return `${d.from ? short(d.from) : 'scratch'} → ${short(d.to)}`;
}

function Chart({ deltas }: { deltas: DeltaInfo[] }) {
  const max = Math.max(1, ...deltas.map((d) => Math.max(d.deltaBytes, d.fullBytes ?? 0)));
  const w = (n: number) => Math.max(1, Math.round((n / max) * BAR_W));
  const height = TOP + deltas.length * ROW + 8;
  return (
    <svg
      class="chart"
      data-testid="delta-chart"
      viewBox={`0 0 ${WIDTH} ${height}`}
      width={WIDTH}
      height={height}
      role="img"
      aria-label="Static delta size against full size"
    >
      <g class="legend">
        <rect x={LABEL_W} y={6} width={12} height={12} class="bar-full" />
        <text x={LABEL_W + 18} y={16}>
          full (objects)
        </text>
        <rect x={LABEL_W + 130} y={6} width={12} height={12} class="bar-delta" />
        <text x={LABEL_W + 148} y={16}>
          delta
        </text>
      </g>
      {deltas.map((d, i) => {
        const y = TOP + i * ROW;
        const ratio = d.fullBytes ? Math.round((d.deltaBytes / d.fullBytes) * 100) : null;
        return (
          <g class="row" data-delta={d.from ? `${d.from}-${d.to}` : d.to}>
            <text x={0} y={y + 14} class="label">
              {d.ref ?? '(no ref)'}
            </text>
            <text x={0} y={y + 30} class="label mono">
              {deltaName(d)}
            </text>
            {d.fullBytes !== null ? (
              <>
                <rect x={LABEL_W} y={y + 3} width={w(d.fullBytes)} height={16} class="bar-full" data-bytes={d.fullBytes} />
                <text x={LABEL_W + w(d.fullBytes) + 6} y={y + 15} class="value">
                  {bytes(d.fullBytes)}
                </text>
              </>
            ) : (
              <text x={LABEL_W} y={y + 15} class="value muted">
                full size unknown
              </text>
            )}
            <rect x={LABEL_W} y={y + 22} width={w(d.deltaBytes)} height={16} class="bar-delta" data-bytes={d.deltaBytes} />
            <text x={LABEL_W + w(d.deltaBytes) + 6} y={y + 34} class="value">
              {bytes(d.deltaBytes)}
              {ratio !== null ? ` (${ratio}%)` : ''}
            </text>
          </g>
        );
      })}
    </svg>
  );
}

export function DeltasPage({ repo }: { repo: string }) {
  const deltas = useData(() => api.deltas(repo), [repo]);
  const list = deltas.data?.deltas ?? [];
  return (
    <Section title="Static deltas">
      <ErrorBox error={deltas.error} />
      <Loading when={deltas.loading} />
      {deltas.data && list.length === 0 ? <p class="muted">No static deltas in this repository.</p> : null}
      {list.length > 0 ? (
        <>
          <Chart deltas={list} />
          <table data-testid="deltas">
            <thead>
              <tr>
                <th>Ref</th>
                <th>From</th>
                <th>To</th>
                <th class="num">Parts</th>
                <th class="num">Delta</th>
                <th class="num">Full</th>
              </tr>
            </thead>
            <tbody>
              {list.map((d) => (
                <tr>
                  <td>{d.ref ?? '—'}</td>
                  <td class="mono" title={d.from ?? ''}>
                    {d.from ? short(d.from) : 'scratch'}
                  </td>
                  <td class="mono" title={d.to}>
                    {short(d.to)}
                  </td>
                  <td class="num">{d.parts}</td>
                  <td class="num">{bytes(d.deltaBytes)}</td>
                  <td class="num">{bytes(d.fullBytes)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </>
      ) : null}
      {deltas.data?.truncated ? <p class="muted">More deltas exist than are listed.</p> : null}
    </Section>
  );
}
