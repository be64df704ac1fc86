// test/near_writer.js PORT SECONDS KEYS [PAUSE_MS]: the other side of the near-cache
// race test.  With ioredis (the Node services' client), for SECONDS: pick
// one of KEYS keys, SET nr:race:<k> to the next number, and once Redis has
// acknowledged it, SET nr:acked:<k> to the same number.  A reader that
// reads nr:acked:<k> and then nr:race:<k> must never find the second
// older than the first.  Redis restarted, flushed or killing connections
// meanwhile: ioredis reconnects and the numbers go on growing.  PAUSE_MS
// (default 0) between writes.  Prints the number of writes acknowledged.
'use strict';
const Redis = require('ioredis');

const [port, seconds, nkeys, pause = 0] = process.argv.slice(2).map(Number);
const r = new Redis({ host: '127.0.0.1', port, maxRetriesPerRequest: null,
	retryStrategy: () => 20, connectionName: 'near-writer' });
r.on('error', () => {});
let n = 0;
let acked = 0;
const end = Date.now() + seconds * 1000;
process.on('SIGTERM', () => {
	console.log(acked);
	process.exit(0);
});

(async () => {
	while (Date.now() < end) {
		const k = n % nkeys;
		n += 1;
		try {
			await r.set(`nr:race:${k}`, String(n));
			await r.set(`nr:acked:${k}`, String(n));
			acked += 1;
			if (pause > 0)
				await new Promise((res) => setTimeout(res, pause));
		} catch (e) {
			await new Promise((res) => setTimeout(res, 20));
		}
	}
	console.log(acked);
	r.disconnect();
	process.exit(0);
})();
