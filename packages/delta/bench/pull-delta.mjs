#!/usr/bin/env node
// One Larch pull through a static delta: node pull-delta.mjs REPO URL FROM TO
import { Repo } from '@larch/core-store';
import { UndiciFetcher } from '../../http-pull/dist/index.js';
import { findDelta, pullDelta } from '../../http-pull/dist/pull-delta.js';

const [path, url, from, to] = process.argv.slice(2);
const repo = await Repo.open(path);
const fetcher = new UndiciFetcher();
const cand = await findDelta({ repo, fetcher, baseUrl: url, to });
if (cand === null || cand.from !== from) throw new Error(`no delta ${from}-${to} on offer`);
const r = await pullDelta({ repo, fetcher, baseUrl: url, from: cand.from, to, superblockSha256: cand.superblockSha256 });
await fetcher.close?.();
console.log(JSON.stringify(r));
