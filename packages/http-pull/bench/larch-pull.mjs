#!/usr/bin/env node
// One Larch pull for the benchmark: node larch-pull.mjs DEST_REPO URL REF [MODE]
import { Repo } from '@larch/core-store';
import { addRemote, pull } from '../dist/index.js';

const [dest, url, ref, mode = 'archive'] = process.argv.slice(2);
const repo = await Repo.init({ path: dest, mode });
await addRemote(repo, { name: 'origin', url, gpgVerify: false });
const limits = process.env.LARCH_PULL_CONCURRENCY ? { concurrency: Number(process.env.LARCH_PULL_CONCURRENCY) } : {};
const r = await pull({ repo, remote: 'origin', refs: [ref], limits });
console.log(JSON.stringify({ objects: r.progress.objectsDone, bytes: r.progress.bytesDone, requests: r.progress.requests }));
