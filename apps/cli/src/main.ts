#!/usr/bin/env node
/**
 * Entry point of the `larch` binary as compiled; the build bundles the same entry (scripts/bundle.mjs).
 */
import { main } from './cli.js';

await main();
