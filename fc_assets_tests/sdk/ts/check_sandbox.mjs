#!/usr/bin/env node
// Drives Fluent's own TypeScript SDK (@fluentcommerce/fc-connect-sdk, pinned in package.json) against a
// Fluent API, normally the fc_assets sandbox, using only the SDK's public client:
//
//   1. auth      createClient() twice with {validateConnection: true}: client_credentials (client id +
//                secret) and the password grant (+ username/password); `me { ref }` on each.
//   2. paging    client.graphql() with the SDK's auto-pagination over `orders` ($first/$after), every
//                page, every node id.
//   3. batch     client.createJob() -> client.sendBatch() (INVENTORY / UPSERT) -> client.getBatchStatus()
//                polled until COMPLETE -> client.getJobStatus(); then a GraphQL read of the positions written.
//   4. event     client.sendEvent(..., 'async') -> client.getEvents() / client.getEventById().
//
// Usage: node check_sandbox.mjs [BASE_URL]   (else $FC_BASE_URL, else http://127.0.0.1:8099)
// Optional env: FC_CLIENT_ID, FC_CLIENT_SECRET, FC_USERNAME, FC_PASSWORD, FC_RETAILER_ID (sandbox defaults),
// FC_CHECK_RUN_ID (tags the batch and the event; random by default), FC_CHECK_TIMEOUT_MS (whole run,
// default 45000), FC_SDK_LOG=debug|info|warn (SDK log level on stderr, default warn).
// Prints one JSON summary on stdout and exits 0; any failure prints the error on stderr and exits 1
// (2 when the whole run timed out).

import { randomUUID } from 'node:crypto';
import { createRequire } from 'node:module';
import { createClient } from '@fluentcommerce/fc-connect-sdk';

// The SDK's VERSION constant is a placeholder ('see-package.json'); read the installed package instead.
const sdkVersion = createRequire(import.meta.url)('@fluentcommerce/fc-connect-sdk/package.json').version;

const baseUrl = process.argv[2] || process.env.FC_BASE_URL || 'http://127.0.0.1:8099';
const env = (name, fallback) => process.env[name] || fallback;
const clientId = env('FC_CLIENT_ID', 'fc-sandbox');
const clientSecret = env('FC_CLIENT_SECRET', 'fc-sandbox-secret');
const username = env('FC_USERNAME', 'sandbox');
const password = env('FC_PASSWORD', 'sandbox');
const retailerId = env('FC_RETAILER_ID', '1');
const runId = env('FC_CHECK_RUN_ID', randomUUID().slice(0, 8));
const timeoutMs = Number(env('FC_CHECK_TIMEOUT_MS', '45000'));

const LEVELS = { debug: 0, info: 1, warn: 2, error: 3 };
const logLevel = LEVELS[env('FC_SDK_LOG', 'warn')] ?? LEVELS.warn;
const emit = (level, msg, extra) => {
  if (LEVELS[level] >= logLevel) {
    process.stderr.write(`[sdk ${level}] ${msg}${extra ? ` ${JSON.stringify(extra)}` : ''}\n`);
  }
};
// The SDK's logger contract: debug/info/warn(msg, meta) and error(msg, err, meta).
const logger = {
  debug: (msg, meta) => emit('debug', msg, meta),
  info: (msg, meta) => emit('info', msg, meta),
  warn: (msg, meta) => emit('warn', msg, meta),
  error: (msg, err, meta) => emit('error', `${msg}: ${err?.message ?? err}`, meta),
};

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function check(condition, message) {
  if (!condition) {
    throw new Error(`check failed: ${message}`);
  }
}

async function authenticate() {
  const common = { baseUrl, clientId, clientSecret, retailerId };
  // validateConnection: the factory runs `query { me { ref } }` and throws if auth or the query fails.
  const credentials = await createClient({ config: { ...common }, logger }, { validateConnection: true });
  const passwordClient = await createClient(
    { config: { ...common, username, password }, logger },
    { validateConnection: true },
  );
  const meQuery = 'query Me { me { ref username } }';
  const ccMe = (await credentials.query(meQuery)).me;
  const pwMe = (await passwordClient.query(meQuery)).me;
  check(ccMe?.ref, 'client_credentials: me.ref is empty');
  check(pwMe?.ref === username, `password grant: me.ref ${JSON.stringify(pwMe?.ref)} != ${username}`);
  return {
    client: passwordClient,
    summary: { client_credentials: { me: ccMe.ref }, password: { me: pwMe.ref } },
  };
}

async function pageOrders(client) {
  const warnings = [];
  let progressCalls = 0;
  const result = await client.graphql({
    query: `query SdkOrders($first: Int, $after: String) {
      orders(first: $first, after: $after) {
        edges { cursor node { id ref } }
        pageInfo { hasNextPage }
      }
    }`,
    variables: { first: 200 },
    pagination: {
      // The SDK's defaults (10,000 records / 100 pages) stop early with only a warning; lift them so
      // the connection is read completely, and fail on any warning instead of trusting the result.
      maxRecords: 1_000_000,
      maxPages: 10_000,
      timeoutMs,
      onWarning: (msg) => warnings.push(msg),
      onProgress: () => {
        progressCalls += 1;
      },
    },
  });
  const stats = result.extensions?.autoPagination;
  const edges = result.data?.orders?.edges ?? [];
  const ids = edges.map((e) => e.node.id);
  check(stats, 'no extensions.autoPagination: the SDK did not auto-paginate');
  check(!stats.truncated, `paging truncated: ${stats.truncationReason}`);
  check(warnings.length === 0, `paging warnings: ${warnings.join('; ')}`);
  check(result.data.orders.pageInfo.hasNextPage === false, 'last page still says hasNextPage');
  check(new Set(ids).size === ids.length, 'duplicate order ids across pages');
  check(stats.totalRecords === ids.length, `stats.totalRecords ${stats.totalRecords} != ${ids.length} edges`);
  return {
    summary: {
      connection: 'orders',
      page_size: 200,
      pages: stats.totalPages,
      node_count: ids.length,
      truncated: stats.truncated,
      warnings,
      ids,
    },
    firstOrderRef: edges[0]?.node?.ref,
  };
}

async function sendInventoryBatch(client) {
  const loc = await client.query('query OneLocation { locations(first: 1) { edges { node { ref } } } }');
  const locationRef = loc.locations.edges[0]?.node?.ref;
  check(locationRef, 'no location to write inventory to');
  const entities = [1, 2, 3].map((n) => ({
    skuRef: `SDK-CHECK-${runId}-${n}`,
    locationRef,
    qty: 10 * n,
    type: 'LAST_ON_HAND',
    status: 'ACTIVE',
    retailerId,
  }));
  const job = await client.createJob({ name: `fc-connect-sdk check ${runId}`, meta: { source: 'fc-connect-sdk' } });
  check(job?.id, `createJob returned no id: ${JSON.stringify(job)}`);
  const batch = await client.sendBatch(job.id, {
    action: 'UPSERT',
    entityType: 'INVENTORY',
    source: 'FC_CONNECT_SDK_CHECK',
    entities,
  });
  check(batch?.id, `sendBatch returned no id: ${JSON.stringify(batch)}`);

  // The SDK ships no poller (its docs wait for COMPLETED/FAILED, which Fluent never reports): poll the
  // batch, not the job, until Fluent's terminal state COMPLETE.
  const seen = [];
  let status;
  const deadline = Date.now() + Math.min(30_000, timeoutMs);
  for (;;) {
    status = await client.getBatchStatus(job.id, batch.id);
    if (seen[seen.length - 1] !== status.status) seen.push(status.status);
    if (status.status === 'COMPLETE') break;
    check(Date.now() < deadline, `batch ${batch.id} still ${status.status} after 30 s`);
    await sleep(100);
  }
  // Fluent's batch status is {batchId, status, count, total (failed entities), results}; the SDK's
  // FluentBatchStatus typing (processedEntities/totalEntities/errors) is its own invention.
  check(Number(status.total ?? 0) === 0, `batch reported ${status.total} failed entities: ${JSON.stringify(status.results)}`);
  const jobStatus = await client.getJobStatus(job.id);

  const refs = entities.map((e) => `${e.skuRef}:${e.locationRef}:DEFAULT`);
  const read = await client.query(
    `query Written($refs: [String!]) {
      inventoryPositions(ref: $refs, first: 10) { edges { node { ref productRef locationRef onHand } } }
    }`,
    { refs },
  );
  const positions = read.inventoryPositions.edges.map((e) => e.node);
  for (const e of entities) {
    const p = positions.find((x) => x.productRef === e.skuRef && x.locationRef === e.locationRef);
    check(p, `no inventory position for ${e.skuRef} at ${e.locationRef} after COMPLETE`);
    check(p.onHand === e.qty, `${p.ref}: onHand ${p.onHand} != qty ${e.qty}`);
  }
  return {
    job_id: String(job.id),
    batch_id: String(batch.id),
    statuses_seen: seen,
    status: status.status,
    count: status.count,
    failed: status.total,
    job_status: jobStatus.status,
    job_batches: (jobStatus.batch ?? []).map((b) => ({ batchId: String(b.batchId), status: b.status })),
    entities,
    positions,
  };
}

// Fluent's event log gives `attributes` as null or a list of {name, value, type}; the sandbox echoes the
// posted object. Read either.
function attribute(event, name) {
  const attrs = event?.attributes;
  if (Array.isArray(attrs)) return attrs.find((a) => a?.name === name)?.value;
  return attrs?.[name];
}

async function postEvent(client, orderRef) {
  check(orderRef, 'no order to address the event to');
  const name = 'FcConnectSdkCheck';
  const sent = await client.sendEvent(
    {
      name,
      entityType: 'ORDER',
      entityRef: orderRef,
      rootEntityType: 'ORDER',
      rootEntityRef: orderRef,
      attributes: { runId, source: 'fc-connect-sdk' },
    },
    'async',
  );
  check(sent.success === true, `sendEvent: ${JSON.stringify(sent)}`);
  // getEvents has no retailerId fallback (unlike sendEvent): pass it.
  const found = await client.getEvents({ name, 'context.entityRef': orderRef, retailerId, count: 100 });
  const mine = (found.results ?? []).filter((e) => attribute(e, 'runId') === runId);
  check(mine.length === 1, `getEvents found ${mine.length} events for run ${runId}`);
  const byId = sent.id ? await client.getEventById(sent.id) : await client.getEventById(mine[0].id);
  check(byId.id === mine[0].id, `getEventById(${byId.id}) != the event found (${mine[0].id})`);
  return {
    name,
    id: mine[0].id,
    response_id: sent.id ?? null,
    status_code: sent.statusCode,
    entity_ref: orderRef,
    found_by_search: mine.length,
    event_status: byId.eventStatus,
  };
}

async function main() {
  const started = Date.now();
  const { client, summary: auth } = await authenticate();
  const paged = await pageOrders(client);
  const batch = await sendInventoryBatch(client);
  const event = await postEvent(client, paged.firstOrderRef);
  return {
    ok: true,
    sdk: '@fluentcommerce/fc-connect-sdk',
    sdk_version: sdkVersion,
    base_url: baseUrl,
    retailer_id: retailerId,
    run_id: runId,
    auth,
    paging: paged.summary,
    batch,
    event,
    duration_ms: Date.now() - started,
  };
}

const timer = setTimeout(() => {
  process.stderr.write(`check_sandbox: timed out after ${timeoutMs} ms\n`);
  process.exit(2);
}, timeoutMs);
timer.unref();

main().then(
  (summary) => {
    process.stdout.write(`${JSON.stringify(summary)}\n`);
    process.exit(0);
  },
  (err) => {
    const detail = err?.statusCode ? ` (status ${err.statusCode})` : '';
    process.stderr.write(`check_sandbox failed: ${err?.stack ?? err}${detail}\n`);
    const body = err?.details?.response ?? err?.errors;
    if (body) process.stderr.write(`response: ${JSON.stringify(body).slice(0, 2000)}\n`);
    process.exit(1);
  },
);
