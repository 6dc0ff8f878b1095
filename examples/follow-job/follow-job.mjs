#!/usr/bin/env node
// Follow one dirsync job live: its current state first, then every change until
// it ends (SUCCEEDED, FAILED or PARTIAL), over GraphQL subscriptions with the
// graphql-ws client (protocol graphql-transport-ws). See docs/subscriptions.md.
//
//   DIRSYNC_KEY=dsk_... node follow-job.mjs JB01...
//
// DIRSYNC_WS_URL defaults to ws://127.0.0.1:8080/graphql (`make run`).
// Pass --events to also print the job's events as they are recorded.
// Exit status: 0 when the job SUCCEEDED, 1 otherwise (failed, partial, error).
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';

const args = process.argv.slice(2);
const withEvents = args.includes('--events');
const jobID = args.find((a) => !a.startsWith('--'));
const key = process.env.DIRSYNC_KEY;
const url = process.env.DIRSYNC_WS_URL ?? 'ws://127.0.0.1:8080/graphql';
if (!jobID || !key) {
  console.error('usage: DIRSYNC_KEY=dsk_... node follow-job.mjs [--events] <job id>');
  process.exit(2);
}

const client = createClient({
  url,
  webSocketImpl: WebSocket,
  // The API key travels in connection_init: browsers cannot set headers on a
  // websocket. {"apiKey": key} works too.
  connectionParams: { Authorization: `Bearer ${key}` },
  // 4403 means the key was refused: retrying will not help.
  shouldRetry: (e) => !(e && typeof e === 'object' && 'code' in e && e.code === 4403),
  retryAttempts: 3,
});

// The same fragment a dashboard's job query would use.
const JOB = `fragment JobProgress on Job { id kind status done failed total startedAt finishedAt }`;

async function followEvents() {
  const query = `subscription($f: EventsSubscriptionFilter) { events(filter: $f) { id type userID jobID detail createdAt } }`;
  for await (const r of client.iterate({ query })) {
    if (r.errors) throw new Error(JSON.stringify(r.errors));
    const e = r.data.events;
    if (e.jobID === jobID) console.log(`  event ${e.type} user=${e.userID ?? '-'} ${e.detail ?? ''}`);
  }
}

async function followJob() {
  const query = `subscription($id: ID!) { jobUpdated(id: $id) { ...JobProgress } } ${JOB}`;
  let last;
  for await (const r of client.iterate({ query, variables: { id: jobID } })) {
    if (r.errors) {
      // NOT_FOUND (no such job in the key's organisation), SLOW_CONSUMER, …
      const { message, extensions } = r.errors[0];
      throw new Error(`${extensions?.code ?? 'ERROR'}: ${message}`);
    }
    last = r.data.jobUpdated;
    const pct = last.total ? Math.floor((100 * last.done) / last.total) : 100;
    console.log(`${last.id} ${last.kind} ${last.status} ${last.done}/${last.total} (${pct}%)` +
      (last.failed ? `, ${last.failed} failed` : ''));
  }
  return last; // the stream completes once the job has ended
}

try {
  if (withEvents) followEvents().catch((e) => console.error('events:', e.message));
  const job = await followJob();
  process.exitCode = job?.status === 'SUCCEEDED' ? 0 : 1;
} catch (e) {
  console.error(e instanceof Error ? e.message : JSON.stringify(e));
  process.exitCode = 1;
} finally {
  await client.dispose();
  process.exit();
}
