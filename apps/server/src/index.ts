/**
 * @larch/server: the `larch-server` command, which serves OSTree archive repositories over
 * HTTP. The exports are the pieces the command is made of, for embedding in tests and tools.
 */
export { startServer, chainApiHandlers, DEFAULT_MAX_CONNECTIONS, DEFAULT_SHUTDOWN_TIMEOUT_MS, DEFAULT_HEADERS_TIMEOUT_MS, DEFAULT_KEEP_ALIVE_TIMEOUT_MS, MAX_DISCARDED_BODY_BYTES, type ServerOptions, type RunningServer, type RepoMountOptions, type ServedMount } from './server.js';
export { ConnectionTable, type ConnectionState, type ConnectionStats } from './connection-limits.js';
export { resolveTarget, splitTarget, classifyRepoPath, parsePrefix, MAX_TARGET_LENGTH, type Mount, type PathResolution, type RepoFileKind } from './request-path.js';
export { serveRepoFile, parseRange, ObjectCache, ChunkPool, DEFAULT_OBJECT_CACHE_BYTES, type ServeContext, fileHeadersFor, CACHE_IMMUTABLE, CACHE_REVALIDATE, SMALL_FILE_MAX, type ServeOutcome } from './serve-file.js';
export { AccessLog, MAX_LOGGED_PATH, type AccessLogEntry, type LogFormat } from './access-log.js';
export { ensureDemoRepo, defaultStateDir, demoTreePath, DEMO_REF, DEMO_TIMESTAMP, type DemoRepo } from './demo-repo.js';
export { resolveOptions, defaultRepoName, ConfigFileSchema, UsageError, DEFAULT_PORT, type ConfigFile, type ResolvedOptions, type ResolvedRepo } from './options.js';
export { openApiStack, type ApiStack, type ApiStackOptions } from './api-stack.js';
export { serveConsole, CONSOLE_PREFIX } from './console-static.js';
export { runTokenCli, TOKEN_USAGE } from './token-cli.js';
export { runServerCli, type CliIo } from './cli.js';
