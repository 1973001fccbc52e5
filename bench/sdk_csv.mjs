#!/usr/bin/env node
// The TypeScript SDK's side of the CSV row in bench/dlt_bench.py: Fluent's own CSV parser and mapper
// (@fluentcommerce/fc-connect-sdk, installed in fc_assets_tests/sdk/ts by `npm ci`) on the inventory CSV, the
// way its inventory template (docs/01-TEMPLATES/standalone/standalone-s3-csv-inventory-to-batch.md) uses them:
// `CSVParserService` (csv-parse with its defaults: header row as keys, empty lines skipped, values trimmed) and
// `UniversalMapper` with a JSON field mapping and the SDK's resolvers, `await mapper.map(record)` per record,
// failed mappings counted and skipped. The file is read as a stream (`parseStreamStreaming`, batches of 2,000
// records, the template's BATCH_SIZE) rather than the template's whole-file `parse`, so memory stays bounded as
// ours does. The same fields as our inventory feed: sku_ref, location_ref, qty (int), status (upper case),
// expected_on (date); no range or allowed-value checks (the SDK has none to declare).
//
// Usage: node sdk_csv.mjs FILE.csv
// Prints one JSON line: {"rows" (records parsed), "mapped", "failed", "seconds" (from the import), "load_s"}.

import { createReadStream } from 'node:fs';

const started = performance.now();
const sdkUrl = new URL(
  '../fc_assets_tests/sdk/ts/node_modules/@fluentcommerce/fc-connect-sdk/dist/esm/index.js',
  import.meta.url,
);
const { CSVParserService, UniversalMapper } = await import(sdkUrl.href);
const loadS = (performance.now() - started) / 1000;

const quiet = { debug() {}, info() {}, warn() {}, error() {} };
const mapper = new UniversalMapper(
  {
    fields: {
      sku_ref: { source: 'sku', required: true },
      location_ref: { source: 'location', required: true },
      qty: { source: 'quantity', resolver: 'sdk.parseInt', required: true },
      status: { source: 'status', resolver: 'sdk.uppercase' },
      expected_on: { source: 'expected_on', resolver: 'sdk.parseDate' },
    },
  },
  { logger: quiet },
);
const parser = new CSVParserService();

let rows = 0;
let mapped = 0;
let failed = 0;
const stream = createReadStream(process.argv[2], { encoding: 'utf8' });
for await (const batch of parser.parseStreamStreaming(stream, { delimiter: ',' }, 2000)) {
  for (const record of batch) {
    rows += 1;
    const result = await mapper.map(record);
    if (result.success) mapped += 1;
    else failed += 1;
  }
}
const seconds = (performance.now() - started) / 1000;
process.stdout.write(`${JSON.stringify({ rows, mapped, failed, seconds, load_s: loadS })}\n`);
