#!/usr/bin/env node
/**
 * `larch-agent`: the command line over @larch/updater. Only argument parsing, signal handling and
 * output live here; the update loop, configuration, state and reporting are the library's.
 *
 *   larch-agent run --config=FILE [--once]     one cycle, or the daemon (SIGINT/SIGTERM stop either)
 *   larch-agent status --config=FILE [--json]  the persisted state and the deployments
 *   larch-agent config --config=FILE           the configuration with every default filled in
 *
 * Exit status: 0 on success, 1 on a runtime error (one line on stderr), 2 on a usage error.
 */
import { Command, CommanderError } from 'commander';
import { Agent, agentStatus, loadConfig, formatMetrics } from '@larch/updater';

process.stdout.on('error', (e: NodeJS.ErrnoException) => {
  if (e.code !== 'EPIPE') throw e;
});

async function main(argv: string[]): Promise<number> {
  const program = new Command('larch-agent')
    .description('Keeps a device up to date: check, pull, stage, reboot, health-check, confirm or roll back')
    .exitOverride()
    .configureOutput({ outputError: (s) => process.stderr.write(`larch-agent: ${s}`) });

  program
    .command('run')
    .description('Run the update loop (one cycle with --once)')
    .requiredOption('-c, --config <file>', 'configuration file (.toml or .json)')
    .option('--once', 'run one cycle (or resume an interrupted one) and exit')
    .action(async (o: { config: string; once?: boolean }) => {
      const config = loadConfig(o.config);
      const agent = Agent.open(config);
      const ac = new AbortController();
      const stop = (): void => ac.abort();
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
      try {
        if (o.once) await agent.runOnce(ac.signal);
        else await agent.runDaemon(ac.signal);
      } finally {
        await agent.close();
      }
    });

  program
    .command('status')
    .description('Show the agent state and the deployments')
    .requiredOption('-c, --config <file>', 'configuration file (.toml or .json)')
    .option('--json', 'print JSON')
    .option('--metrics', 'print the Prometheus metrics text')
    .action(async (o: { config: string; json?: boolean; metrics?: boolean }) => {
      const config = loadConfig(o.config);
      const s = await agentStatus(config);
      if (o.metrics) {
        process.stdout.write(formatMetrics(s.state));
        return;
      }
      if (o.json) {
        process.stdout.write(`${JSON.stringify(s, null, 2)}\n`);
        return;
      }
      const st = s.state;
      const lines = [
        `device:   ${s.deviceId}`,
        `follows:  ${s.remote}:${s.ref}`,
        `phase:    ${st.phase}${st.degraded ? ' (degraded)' : ''}`,
        `target:   ${st.target ? st.target.commit : '-'}`,
        `last check: ${st.lastCheckAt ? new Date(st.lastCheckAt).toISOString() : 'never'}`,
        `bad commits: ${st.badCommits.length ? st.badCommits.join(', ') : '-'}`,
        `counters: checks ${st.counters.checks}, updates ${st.counters.updates}, rollbacks ${st.counters.rollbacks}, failures ${st.counters.failures}, bytes ${st.counters.bytesFetched}`,
      ];
      if (st.lastError) lines.push(`last error (${st.lastError.phase}): ${st.lastError.message}`);
      for (const d of s.sysroot?.deployments ?? []) {
        lines.push(`${d.booted ? '*' : ' '} ${d.stateroot} ${d.name}${d.pending ? ' (pending)' : d.rollback ? ' (rollback)' : ''}${d.version ? ` version ${d.version}` : ''}`);
      }
      if (s.sysrootError) lines.push(`sysroot: ${s.sysrootError}`);
      process.stdout.write(`${lines.join('\n')}\n`);
    });

  program
    .command('config')
    .description('Print the configuration with every default filled in')
    .requiredOption('-c, --config <file>', 'configuration file (.toml or .json)')
    .action((o: { config: string }) => {
      process.stdout.write(`${JSON.stringify(loadConfig(o.config), null, 2)}\n`);
    });

  try {
    await program.parseAsync(argv, { from: 'user' });
    return 0;
  } catch (e) {
    if (e instanceof CommanderError) return e.exitCode === 0 ? 0 : 2;
    process.stderr.write(`larch-agent: error: ${(e as Error).message.split('\n')[0]}\n`);
    return 1;
  }
}

process.exitCode = await main(process.argv.slice(2));
