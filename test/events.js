// test/events.js PORT COUNT PATTERN...: subscribe with ioredis (the
// marketplace's own Redis client) to the patterns, parse each message as
// the Node services do (JSON.parse), and print one line per message:
// {"channel", "keys": [the envelope's keys in order], "types": {key: type},
//  "data": {key: type}, "event": the parsed event}.  Exits after COUNT
// messages, or after 10 seconds.  Prints "ready" once subscribed.
'use strict';
const Redis = require('ioredis');

const [port, count, ...patterns] = process.argv.slice(2);
const sub = new Redis({ host: '127.0.0.1', port: Number(port), lazyConnect: false });
let seen = 0;

function typeOf(v) {
	if (v === null) return 'null';
	if (Array.isArray(v)) return 'array';
	return typeof v;
}

sub.on('pmessage', (pattern, channel, message) => {
	const event = JSON.parse(message);
	const types = {};
	for (const k of Object.keys(event)) types[k] = typeOf(event[k]);
	const data = {};
	for (const k of Object.keys(event.data || {})) data[k] = typeOf(event.data[k]);
	console.log(JSON.stringify({ channel, keys: Object.keys(event), types, data, event }));
	if (++seen >= Number(count)) {
		sub.disconnect();
		process.exit(0);
	}
});

sub.psubscribe(...patterns).then(() => console.log('ready'));
setTimeout(() => { sub.disconnect(); process.exit(1); }, 10000);
