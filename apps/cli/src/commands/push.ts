/**
 * `larch push --repo=R --token=T [--server-repo=NAME] [--commit=C] [--batch-bytes=N]
 * [--concurrency=N] [--no-wait] [--json] SERVER_URL REF`: send a commit to larch-server and ask
 * it to publish the ref. Only the objects the server lacks are uploaded; an interrupted push
 * run again sends only what is still missing. The token may come from $LARCH_TOKEN (it is not
 * echoed anywhere). Progress: a bar on stderr when it is a terminal, or JSON lines on stdout
 * with --json, ending with a `{"event":"result",…}` line.
 */
import type { Command } from 'commander';
import type { VerbContext } from '../cli.js';
import { interruptible, repoPath, UsageError } from '../context.js';
import { formatSize, jsonLine } from '../format.js';
import { integer, parseOption } from '../options.js';
import { startProgress } from '../progress.js';
import { allOptions, verb } from './common.js';

interface PushOpts {
  token?: string;
  serverRepo?: string;
  commit?: string;
  batchBytes?: string;
  concurrency?: string;
  wait?: boolean;
  json?: boolean;
}

/** Register `push`. */
export function registerPush(program: Command, ctx: VerbContext): void {
  verb(program, 'push', 'Send a commit to larch-server and publish it to a ref')
    .argument('<server-url>', 'Base URL of larch-server, e.g. http://127.0.0.1:8080/')
    .argument('<ref>', 'Ref to publish (and the local ref to push unless --commit is given)')
    .option('--token <token>', 'API token with the rights push and publish (default: $LARCH_TOKEN)')
    .option('--server-repo <name>', 'Repository name on the server (default: "default")')
    .option('--commit <checksum>', 'Push this commit instead of what the local REF points to')
    .option('--batch-bytes <n>', 'Approximate bytes per upload request (default 8388608)')
    .option('--concurrency <n>', 'Upload requests in flight (default 2)')
    .option('--no-wait', 'Return once the publish job is queued')
    .option('--json', 'Print progress and the result as JSON lines on stdout')
    .action(async (serverUrl: string, ref: string, _o: PushOpts, cmd: Command) => {
      const opts = allOptions<PushOpts>(cmd);
      const token = opts.token ?? process.env.LARCH_TOKEN;
      if (token === undefined || token === '') throw new UsageError('No token: pass --token=TOKEN or set LARCH_TOKEN');
      let url: URL;
      try {
        url = new URL(serverUrl);
      } catch {
        throw new UsageError(`Invalid server URL ${serverUrl}`);
      }
      if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new UsageError(`Invalid server URL ${serverUrl}: only http and https`);
      const batchBytes = opts.batchBytes === undefined ? undefined : parseOption(integer('--batch-bytes', { min: 1024 }), opts.batchBytes);
      const concurrency = opts.concurrency === undefined ? undefined : parseOption(integer('--concurrency', { min: 1 }), opts.concurrency);
      const path = await repoPath(opts);
      const { pushRef } = await import('@larch/publish');
      const json = Boolean(opts.json);
      type P = Parameters<NonNullable<Parameters<typeof pushRef>[0]['onProgress']>>[0];
      const bar = !json && ctx.io.stderrIsTTY
        ? startProgress<P>(
            'Pushing [{bar}] {text}',
            (p) => ({
              value: p.objectsSent,
              total: Math.max(1, p.objectsMissing),
              payload: { text: p.phase === 'publish' ? `publishing${p.job ? ` (${p.job.step})` : ''}` : `${p.objectsSent}/${p.objectsMissing} objects, ${formatSize(p.bytesSent)}` },
            }),
            { text: 'scanning' },
          )
        : null;
      let result;
      try {
        result = await interruptible((signal) =>
          pushRef({
            repoPath: path,
            serverUrl: url.href,
            repo: opts.serverRepo ?? 'default',
            ref,
            token,
            signal,
            wait: opts.wait !== false,
            ...(opts.commit !== undefined ? { commit: opts.commit } : {}),
            ...(batchBytes !== undefined ? { batchBytes } : {}),
            ...(concurrency !== undefined ? { concurrency } : {}),
            onProgress: (p) => {
              if (json) ctx.io.out(jsonLine({ event: 'progress', ...p, job: p.job ? { id: p.job.id, state: p.job.state, step: p.job.step } : undefined }));
              bar?.update(p);
            },
          }),
        );
      } finally {
        bar?.stop();
      }
      if (json) {
        ctx.io.out(jsonLine({ event: 'result', ...result }));
        return;
      }
      ctx.io.out(
        `${result.objectsSent} of ${result.objectsTotal} objects uploaded (${formatSize(result.bytesSent)}); ` +
          `${ref} => ${result.commit}: publish job ${result.job.id} ${result.job.state}\n`,
      );
    });
}
