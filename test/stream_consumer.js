// test/stream_consumer.js PORT GROUP WANT STREAM...: a Node service's
// consumer group, with ioredis (the Node services' client).  Creates GROUP
// on each STREAM from its first entry (if it has none yet), then reads
// with XREADGROUP, acknowledging each entry (XACK), until WANT entries
// have arrived or 5 s pass without one.  Prints, one line each, the
// message field of every entry in the order read.
'use strict';
const Redis = require('ioredis');

const [port, group, want, ...streams] = process.argv.slice(2);
const r = new Redis({ host: '127.0.0.1', port: Number(port), maxRetriesPerRequest: null,
	connectionName: 'stream-consumer' });

(async () => {
	for (const s of streams) {
		try {
			await r.xgroup('CREATE', s, group, '0', 'MKSTREAM');
		} catch (e) {
			if (!String(e.message).startsWith('BUSYGROUP')) throw e;
		}
	}
	const out = [];
	while (out.length < Number(want)) {
		const res = await r.xreadgroup('GROUP', group, 'c1', 'COUNT', 500, 'BLOCK', 5000,
			'STREAMS', ...streams, ...streams.map(() => '>'));
		if (res === null) break;
		for (const [stream, entries] of res) {
			for (const [id, fields] of entries) {
				out.push(fields[fields.indexOf('message') + 1]);
				await r.xack(stream, group, id);
			}
		}
	}
	process.stdout.write(out.map((m) => m + '\n').join(''));
	await r.quit();
})().catch((e) => {
	console.error(e.message);
	process.exit(1);
});
