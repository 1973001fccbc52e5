#!/usr/bin/env node
// The TypeScript SDK's side of bench/sdk_bench.py: Fluent's own client (@fluentcommerce/fc-connect-sdk, installed
// in fc_assets_tests/sdk/ts by `npm ci`) pages one GraphQL query with its auto-pagination, as a user of the SDK
// would extract a day of orders. Same query text, variables and page size as our extraction (given by the
// caller as JSON on stdin: {query, variables, connectionPath}); the connection is read to the end (the SDK's
// 10,000-record default cap is lifted, any warning or truncation fails the run).
//
// Usage: node sdk_orders.mjs BASE_URL < request.json
// Prints one JSON line: {"count", "pages", "seconds" (paging only, from the first request), "load_s"}.

import { readFileSync } from 'node:fs';

const started = performance.now();
// The SDK as installed for fc_assets_tests/sdk (package exports: `import` -> dist/esm/index.js).
const sdkUrl = new URL(
  '../fc_assets_tests/sdk/ts/node_modules/@fluentcommerce/fc-connect-sdk/dist/esm/index.js',
  import.meta.url,
);
const { createClient } = await import(sdkUrl.href);
const loadS = (performance.now() - started) / 1000;

const baseUrl = process.argv[2];
const request = JSON.parse(readFileSync(0, 'utf8'));
const quiet = { debug() {}, info() {}, warn() {}, error() {} };
const client = await createClient({
  config: { baseUrl, clientId: 'fc-sandbox', clientSecret: 'fc-sandbox-secret', retailerId: '1' },
  logger: quiet,
});
const warnings = [];
const t0 = performance.now();
const result = await client.graphql({
  query: request.query,
  variables: request.variables,
  pagination: {
    connectionPath: request.connectionPath,
    maxRecords: 10_000_000,
    maxPages: 1_000_000,
    timeoutMs: 3_600_000,
    onWarning: (msg) => warnings.push(msg),
  },
});
const seconds = (performance.now() - t0) / 1000;
const stats = result.extensions?.autoPagination;
const edges = result.data?.[request.connectionPath]?.edges ?? [];
if (!stats || stats.truncated || warnings.length) {
  process.stderr.write(`SDK paging incomplete: ${JSON.stringify({ stats, warnings })}\n`);
  process.exit(1);
}
process.stdout.write(`${JSON.stringify({ count: edges.length, pages: stats.totalPages, seconds, load_s: loadS })}\n`);
