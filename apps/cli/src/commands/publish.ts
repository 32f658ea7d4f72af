/**
 * `larch publish --repo=R [--endpoint=URL] [--region=R] [--concurrency=N] [--dry-run] [--json] s3://BUCKET/PREFIX`
 * mirrors a local archive repo into an S3-compatible bucket (or a directory: a plain path or
 * file:// URL) so that the bucket URL is an OSTree remote: objects first, then deltas and detached
 * metadata, then refs, then the summary and its signature, uploading only what the store lacks.
 *
 * `larch publish --prune --grace=SECS [--dry-run] s3://BUCKET/PREFIX` deletes what no ref and no
 * summary in the store reaches and that is older than the grace period.
 *
 * Credentials come from the standard AWS environment ($AWS_ACCESS_KEY_ID, $AWS_SECRET_ACCESS_KEY,
 * profiles); the endpoint from --endpoint, $S3_ENDPOINT or $AWS_ENDPOINT_URL (else AWS itself).
 * Progress is a bar on stderr when it is a terminal; --json prints one JSON line per event.
 */
import type { Command } from 'commander';
import type { PublishProgress } from '@larch/object-store';
import type { VerbContext } from '../cli.js';
import { interruptible, repoPath, UsageError } from '../context.js';
import { formatSize, jsonLine } from '../format.js';
import { integer, parseOption } from '../options.js';
import { startProgress } from '../progress.js';
import { allOptions, verb } from './common.js';

interface PublishOpts {
  endpoint?: string;
  region?: string;
  concurrency?: string;
  dryRun?: boolean;
  json?: boolean;
  prune?: boolean;
  grace?: string;
  createBucket?: boolean;
  publicRead?: boolean;
}

/** Register `publish`. */
export function registerPublish(program: Command, ctx: VerbContext): void {
  verb(program, 'publish', 'Mirror an archive repository to S3-compatible object storage (or prune it there)')
    .argument('<destination>', 's3://BUCKET/PREFIX (or a directory)')
    .option('--endpoint <url>', 'S3 endpoint URL (default: $S3_ENDPOINT, $AWS_ENDPOINT_URL, else AWS)')
    .option('--region <region>', 'S3 region (default: $AWS_REGION, else us-east-1)')
    .option('--concurrency <n>', 'Requests in flight at most (default: 16)')
    .option('--dry-run', 'Only list what would be uploaded (or deleted)')
    .option('--json', 'Print progress and the result as JSON lines on stdout')
    .option('--prune', 'Delete objects and deltas no ref or summary in the store reaches')
    .option('--grace <secs>', 'With --prune: keep unreachable keys modified less than SECS seconds ago')
    .option('--create-bucket', 'Create the bucket when it does not exist')
    .option('--public-read', 'With --create-bucket: allow anonymous GetObject and ListBucket (an OSTree remote without credentials)')
    .action(async (destination: string, _o: PublishOpts, cmd: Command) => {
      const opts = allOptions<PublishOpts>(cmd);
      const concurrency = opts.concurrency === undefined ? 16 : parseOption(integer('--concurrency', { min: 1, max: 1024 }), opts.concurrency);
      if (opts.grace !== undefined && !opts.prune) throw new UsageError('--grace requires --prune');
      if (opts.prune && opts.grace === undefined) throw new UsageError('--prune requires --grace=SECS');
      if (opts.publicRead && !opts.createBucket) throw new UsageError('--public-read requires --create-bucket');
      process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
      const os = await import('@larch/object-store');
      if (!destination.startsWith('s3://') && (opts.createBucket || opts.endpoint !== undefined || opts.region !== undefined)) {
        throw new UsageError('--endpoint, --region and --create-bucket need an s3:// destination');
      }
      const { store, s3, close } = os.openStore(destination, {
        concurrency,
        ...(opts.endpoint !== undefined ? { endpoint: opts.endpoint } : {}),
        ...(opts.region !== undefined ? { region: opts.region } : {}),
      });
      if (s3 && opts.createBucket) await os.ensureBucket(s3, { publicRead: Boolean(opts.publicRead) });
      try {
        if (opts.prune) {
          const grace = parseOption(integer('--grace', { min: 0 }), opts.grace);
          const r = await os.pruneStore(store, { graceSeconds: grace, dryRun: Boolean(opts.dryRun), concurrency });
          if (opts.json) {
            ctx.io.out(jsonLine({ event: 'done', ...r }));
            return;
          }
          if (opts.dryRun) for (const d of r.deleted) ctx.io.out(`${d.key} ${d.size}\n`);
          ctx.io.out(
            `${opts.dryRun ? 'Would delete' : 'Deleted'} ${r.deleted.length} objects, ${formatSize(r.bytesFreed)} freed; ` +
              `${r.reachable} reachable from ${r.commits} commits, ${r.keptYoung} unreachable kept (younger than ${grace}s)\n`,
          );
          return;
        }
        const repo = await repoPath(opts);
        const bar = opts.json ? null : ctx.io.stderrIsTTY ? publishBar() : null;
        let last = 0;
        const started = Date.now();
        const onProgress = (p: PublishProgress): void => {
          if (opts.json) {
            const t = Date.now();
            if (p.phase !== 'objects' || t - last > 250 || p.filesDone === p.filesTotal) {
              last = t;
              ctx.io.out(jsonLine({ event: 'progress', ...p }));
            }
          } else bar?.update(p);
        };
        let r;
        try {
          r = await interruptible((signal) => os.publishRepo(repo, store, { concurrency, dryRun: Boolean(opts.dryRun), onProgress, signal }));
        } finally {
          bar?.stop();
        }
        const secs = (Date.now() - started) / 1000;
        if (opts.json) {
          ctx.io.out(jsonLine({ event: 'done', store: store.location, seconds: secs, ...r }));
          return;
        }
        if (opts.dryRun) for (const k of r.uploaded) ctx.io.out(`${k}\n`);
        ctx.io.out(
          `${opts.dryRun ? 'Would upload' : 'Uploaded'} ${r.uploaded.length} files (${formatSize(r.uploadedBytes)}) to ${store.location}` +
            ` in ${secs.toFixed(1)} seconds; ${r.skipped} already there` +
            `${r.summaryPublished ? '; summary updated' : ''}${r.deletedRefs.length ? `; ${r.deletedRefs.length} stale refs deleted` : ''}\n`,
        );
      } finally {
        close();
      }
    });
}

function publishBar(): { update(p: PublishProgress): void; stop(): void } {
  return startProgress<PublishProgress>(
    'Publishing [{bar}] {text}',
    (p) => ({
      value: p.filesDone,
      total: Math.max(1, p.filesTotal),
      payload: { text: `${p.phase}: ${p.filesDone}/${p.filesTotal} files, ${formatSize(p.bytesDone)}/${formatSize(p.bytesTotal)}` },
    }),
    { text: 'listing' },
  );
}

