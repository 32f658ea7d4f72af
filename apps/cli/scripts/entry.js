// The bundle's entry module (scripts/bundle.mjs): the compiled CLI's main().
import { main } from '../dist/cli.js';

await main();
