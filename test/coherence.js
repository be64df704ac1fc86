// test/coherence.js: the coherence checker's workload and history check.
//
//   node test/coherence.js --seed=N --seconds=S --pg-port=P --redis-port=R
//        --dbs=a,b --prefixes=a:,b: [--max-lag=MS] [--standby-file=F]
//        [--faults-file=G]
//
// Drives, in each database: SQL writers on a plain and a partitioned
// watched table (updates aimed at the parent and at the partitions), an
// application writer through ioredis, and readers: redis_cached on the
// rows and redis_cache_get / redis_cache_mget on the application's keys,
// some with the near-cache on.  Once F names a port, a reader on that
// standby too.  Faults come from outside (test/t/coherence.sh,
// bench/coherence.sh); clients reconnect after them.
//
// Every write's acknowledgement (COMMIT returned, or Redis' OK) and every
// read's start are times on one clock (this process).  A row or key has
// one writer, so its versions grow in the order they were acknowledged.
// A read that returned version v is a violation when a version newer than
// v was acknowledged before the read began (for near-cache readers: more
// than --max-lag before, bmfredis.near_cache_max_lag's bound).  Times are
// taken where this process sees them (an acknowledgement's later than it
// happened, a read's start earlier), so a violation reported is real.  A
// miss (NULL) is never a violation; nor is a write whose outcome is
// unknown (the connection broke).  A standby knows nothing of the
// primary's retry queue, so its readers are held to what any other client
// of Redis is promised: a write is seen once the primary's queue has
// drained.  G lists the faults' windows ("start end", ms since the epoch):
// a standby read is judged against the writes acknowledged outside every
// window and the 5 s after it (the drain), strictly.  Prints one line:
//   seed=N reads=.. checked=.. violations=.. writes=.. errors=..
// and the first violations, each with the seed to replay.
'use strict';
const Redis = require('ioredis');
const { Client } = require('pg');
const fs = require('fs');

const opt = {};
for (const a of process.argv.slice(2)) {
	const m = /^--([a-z-]+)=(.*)$/.exec(a);
	if (m) opt[m[1]] = m[2];
}
const seed = Number(opt.seed || 1);
const seconds = Number(opt.seconds || 20);
const pgPort = Number(opt['pg-port']);
const redisPort = Number(opt['redis-port']);
const dbs = (opt.dbs || 'bmf_coh').split(',');
const prefixes = (opt.prefixes || 'bmfredis:').split(',');
const maxLag = Number(opt['max-lag'] || 10);
const standbyFile = opt['standby-file'] || '';
const ROWS = 16;
const APP_KEYS = 8;

// mulberry32: a small seeded generator, so that a seed replays the choices
function rng(s) {
	return () => {
		s = (s + 0x6D2B79F5) | 0;
		let t = Math.imul(s ^ (s >>> 15), 1 | s);
		t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
		return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
	};
}
const rand = rng(seed);
const pick = (n) => Math.floor(rand() * n);
const now = () => performance.timeOrigin + performance.now();	// ms since the epoch
const faultsFile = opt['faults-file'] || '';
const DRAIN_MS = 5000;
let faultWindows = [];
let faultsRead = 0;
function windows() {
	if (faultsFile && now() - faultsRead > 200) {
		faultsRead = now();
		try {
			faultWindows = fs.readFileSync(faultsFile, 'utf8').split('\n').filter(Boolean)
				.map((l) => l.split(' ').map(Number));
		} catch (_) { /* none yet */ }
	}
	return faultWindows;
}
// a fault under way (started, not ended) is in the file as "start" alone
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const t0 = now();
const end = t0 + seconds * 1000;

// history[name] = [{v, ack}] in order of acknowledgement
const history = new Map();
let version = 0;
const stats = { reads: 0, checked: 0, misses: 0, violations: 0, writes: 0, errors: 0, standbyReads: 0, staleMax: 0 };
const staleTimes = [];
const violations = [];

function acked(name, v, ack) {
	let h = history.get(name);
	if (!h) history.set(name, (h = []));
	h.push({ v, ack });
	stats.writes += 1;
}

// the newest version acknowledged before t (0: none); outside: only those
// acknowledged outside every fault window and its drain
function newestBefore(name, t, outside) {
	const h = history.get(name);
	if (!h) return 0;
	const w = outside ? windows() : [];
	for (let i = h.length - 1; i >= 0; i--) {
		if (h[i].ack >= t) continue;
		if (w.some(([a, b]) => h[i].ack >= a && (Number.isNaN(b) || b === undefined || h[i].ack <= b + DRAIN_MS))) continue;
		return h[i].v;
	}
	return 0;
}

function judge(who, name, got, start, lag, standby) {
	stats.reads += 1;
	if (got === null || got === undefined || Number.isNaN(got)) {
		stats.misses += 1;
		return;
	}
	stats.checked += 1;
	const want = newestBefore(name, start - lag, standby);
	if (got < want) {
		stats.violations += 1;
		// how stale: since the first version newer than the one read was acknowledged
		const h = history.get(name);
		const newer = h.find((e) => e.v > got);
		const stale = start - newer.ack;
		staleTimes.push(stale);
		stats.staleMax = Math.max(stats.staleMax, stale);
		if (violations.length < 10)
			violations.push(`${who} read ${name} = ${got} at ${(start - t0).toFixed(1)} ms into the run, ` +
				`but ${want} was acknowledged before (bound ${lag} ms${standby ? ', outside faults and their drain' : ''})`);
	}
}

async function connect(db, port, settings) {
	for (;;) {
		if (now() > end) return null;
		const c = new Client({ host: '127.0.0.1', port, user: 'postgres', database: db,
			connectionTimeoutMillis: 3000, statement_timeout: 10000 });
		c.on('error', () => {});
		try {
			await c.connect();
			for (const s of settings) await c.query(s);
			return c;
		} catch (e) {
			try { c.end().catch(() => {}); } catch (_) { /* closed */ }
			await sleep(100);
		}
	}
}

// a loop over a connection that survives its faults
async function withClient(db, port, settings, body) {
	let c = null;
	while (now() < end) {
		if (!c) {
			c = await connect(db, port, settings);
			if (!c) return;
		}
		try {
			await body(c);
		} catch (e) {
			stats.errors += 1;
			c.end().catch(() => {});
			c = null;
			await sleep(50);
		}
	}
	if (c) await c.end().catch(() => {});
}

const rowName = (db, table, id) => `${db}/${table}/${id}`;
const appName = (db, k) => `${db}/app/${k}`;

function sqlWriter(db, w, nw) {
	return withClient(db, pgPort, [], async (c) => {
		const ids = [];
		for (let i = 1; i <= ROWS; i++) if (i % nw === w) ids.push(i);
		const id = ids[pick(ids.length)];
		const v = ++version;
		let sql;
		let table;
		switch (pick(4)) {
		case 0: table = 'plain'; sql = `UPDATE plain SET v = ${v} WHERE id = ${id}`; break;
		case 1: table = 'parted'; sql = `UPDATE parted SET v = ${v} WHERE id = ${id}`; break;
		case 2: table = 'parted'; sql = `UPDATE parted_${id % 2 ? 'eu' : 'us'} SET v = ${v} WHERE id = ${id}`; break;
		default:	// aimed at the partition, in an explicit transaction
			table = 'parted';
			sql = `BEGIN; UPDATE parted_${id % 2 ? 'eu' : 'us'} SET v = ${v} WHERE id = ${id}; COMMIT`;
		}
		await c.query(sql);
		acked(rowName(db, table, id), v, now());
		await sleep(pick(15));
	});
}

function appWriter(db, prefix) {
	const r = new Redis({ host: '127.0.0.1', port: redisPort, maxRetriesPerRequest: 1,
		retryStrategy: () => 50, connectionName: 'coherence-writer', lazyConnect: false });
	r.on('error', () => {});
	return (async () => {
		while (now() < end) {
			const k = pick(APP_KEYS);
			const v = ++version;
			try {
				await r.set(`${prefix}app:${k}`, String(v));
				acked(appName(db, k), v, now());
			} catch (e) {
				stats.errors += 1;
				await sleep(50);
			}
			await sleep(pick(10));
		}
		r.disconnect();
	})();
}

function reader(db, port, near, who, standby) {
	const settings = ['SET bmfredis.on_error = ignore'];
	if (near) settings.push('SET bmfredis.near_cache = on', `SET bmfredis.near_cache_max_lag = ${maxLag}`);
	const lag = near ? maxLag : 0;
	return withClient(db, port, settings, async (c) => {
		const kind = pick(standby ? 2 : 3);
		const start = now();
		if (kind === 0) {
			const table = pick(2) ? 'plain' : 'parted';
			const id = 1 + pick(ROWS);
			const key = `${table === 'plain' ? 'p' : 'q'}:${id}`;
			let got;
			if (standby) {
				// what the primary's readers cached, read on the standby
				const res = await c.query(`SELECT redis_cache_get($1) AS v`, [key]);
				got = res.rows[0].v === null || res.rows[0].v === '' ? null : Number(res.rows[0].v);
				stats.standbyReads += 1;
			} else {
				const res = await c.query(
					`SELECT redis_cached($1, '1 hour', 'SELECT v FROM ${table} WHERE id = ${id}')::text AS v`, [key]);
				got = Number(res.rows[0].v);
			}
			judge(who, rowName(db, table, id), got, start, lag, standby);
		} else if (kind === 1) {
			const k = pick(APP_KEYS);
			const res = await c.query('SELECT redis_cache_get($1) AS v', [`app:${k}`]);
			judge(who, appName(db, k), res.rows[0].v === null ? null : Number(res.rows[0].v), start, lag, standby);
			if (standby) stats.standbyReads += 1;
		} else {
			const ks = [pick(APP_KEYS), pick(APP_KEYS), pick(APP_KEYS)];
			const res = await c.query('SELECT redis_cache_mget($1) AS v', [ks.map((k) => `app:${k}`)]);
			res.rows[0].v.forEach((x, i) => judge(who, appName(db, ks[i]), x === null ? null : Number(x), start, lag));
		}
	});
}

async function standbyReaders() {
	// a standby appears while the run goes on: its port in standbyFile
	while (now() < end) {
		let port = 0;
		try { port = Number(fs.readFileSync(standbyFile, 'utf8').trim()); } catch (_) { /* not yet */ }
		if (port) {
			await Promise.all(dbs.map((db) => reader(db, port, false, `standby-reader(${db})`, true)));
			return;
		}
		await sleep(200);
	}
}

(async () => {
	const tasks = [];
	dbs.forEach((db, i) => {
		tasks.push(sqlWriter(db, 0, 2), sqlWriter(db, 1, 2));
		tasks.push(appWriter(db, prefixes[i]));
		tasks.push(reader(db, pgPort, false, `reader(${db})`), reader(db, pgPort, false, `reader2(${db})`));
		tasks.push(reader(db, pgPort, true, `near-reader(${db})`), reader(db, pgPort, true, `near-reader2(${db})`));
	});
	if (standbyFile) tasks.push(standbyReaders());
	await Promise.all(tasks);
	console.log(`seed=${seed} reads=${stats.reads} checked=${stats.checked} misses=${stats.misses} ` +
		`violations=${stats.violations} writes=${stats.writes} errors=${stats.errors} standby_reads=${stats.standbyReads}` +
		(staleTimes.length ? ` stale_p50_ms=${staleTimes.sort((a, b) => a - b)[staleTimes.length >> 1].toFixed(1)} stale_max_ms=${stats.staleMax.toFixed(1)}` : ''));
	for (const v of violations) console.log(`violation (replay with seed ${seed}): ${v}`);
	process.exit(0);
})();
