// test/metrics.js: reads the example exporter configurations with a real
// YAML parser (js-yaml, from npm) and prints, one per line, separated by
// the ASCII unit separator (0x1f):
//   exporter  metric  type  labels  column  query
// where metric is the full Prometheus name the exporter would give, type
// "counter" or "gauge", labels the label columns joined by ",", column the
// one holding the value and query the SQL the exporter runs (newlines as
// spaces).  test/t/metrics.sh runs them.
'use strict';
const fs = require('fs');
const yaml = require('js-yaml');
const [sqlExporterFile, pgExporterFile] = process.argv.slice(2);
const out = [];
const flat = (q) => q.replace(/\s+/g, ' ').trim();

// sql_exporter: metrics with a query of their own or a query_ref
{
	const doc = yaml.load(fs.readFileSync(sqlExporterFile, 'utf8'));
	const queries = Object.fromEntries((doc.queries || []).map((q) => [q.query_name, q.query]));
	for (const m of doc.metrics) {
		const query = m.query || queries[m.query_ref];
		if (!query) throw new Error(`${m.metric_name}: no query`);
		if ((m.values || []).length !== 1) throw new Error(`${m.metric_name}: one value column expected`);
		// the value column is named by "values"; labels by "key_labels"
		out.push(['sql_exporter', m.metric_name, m.type, (m.key_labels || []).join(','), m.values[0], flat(query)]);
	}
}

// pg_exporter: each collector names its metrics <name>_<column>
{
	const doc = yaml.load(fs.readFileSync(pgExporterFile, 'utf8'));
	for (const [branch, c] of Object.entries(doc)) {
		const name = c.name || branch;
		const labels = c.metrics.filter((m) => Object.values(m)[0].usage === 'LABEL').map((m) => Object.keys(m)[0]);
		for (const m of c.metrics) {
			const [column, spec] = Object.entries(m)[0];
			if (spec.usage === 'LABEL') continue;
			if (!['COUNTER', 'GAUGE'].includes(spec.usage)) throw new Error(`${branch}.${column}: usage ${spec.usage}`);
			if (!spec.description) throw new Error(`${branch}.${column}: no description`);
			out.push(['pg_exporter', `${name}_${column}`, spec.usage.toLowerCase(), labels.join(','), column, flat(c.query)]);
		}
	}
}
for (const row of out) console.log(row.join('\x1f'));
