// Parse Server + LiveQuery (one Node process, LiveQuery on the same HTTP server) on PostgreSQL,
// for `python -m bench peers`. Benchmark-only.
//
//   node parse_server.mjs '{"port": 1337, "databaseURI": "postgres://...", "appId": "bench"}'
//
// Prints one JSON line {"event":"ready", ...} on stdout once it answers HTTP, then runs until
// SIGTERM/SIGINT. The LiveQuery server watches the classes Task (push) and Account (bank).

import { ParseServer } from 'parse-server';

const config = JSON.parse(process.argv[2] ?? '{}');
for (const key of ['port', 'databaseURI', 'appId', 'masterKey']) {
  if (config[key] === undefined) {
    process.stderr.write(`parse_server.mjs: missing config key ${JSON.stringify(key)}\n`);
    process.exit(2);
  }
}

const serverURL = `http://127.0.0.1:${config.port}/parse`;
const server = await ParseServer.startApp({
  databaseURI: config.databaseURI,
  appId: config.appId,
  masterKey: config.masterKey,
  serverURL,
  port: config.port,
  host: '127.0.0.1',
  mountPath: '/parse',
  allowCustomObjectId: true, // accounts are a0 .. a9999, as Reactor's are found by n
  allowClientClassCreation: true,
  startLiveQueryServer: true,
  liveQuery: { classNames: ['Task'] },
  logLevel: 'error',
  logsFolder: config.logsFolder, // the run's temporary directory, not the source tree
  verbose: false,
  verifyServerUrl: false,
  enableCollationCaseComparison: false,
});

process.stdout.write(JSON.stringify({ event: 'ready', serverURL, pid: process.pid }) + '\n');

const stop = async () => {
  try {
    await server.handleShutdown?.();
  } finally {
    process.exit(0);
  }
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
