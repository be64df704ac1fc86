SELECT healthy FROM redis_health();
SELECT count(*) >= 0 FROM redis_connections();
SELECT count(*) >= 0 FROM redis_workers();
SELECT count(*) > 0 FROM redis_stats;
SELECT count(*) > 0 FROM redis_stats_values();
SELECT count(*) > 0 FROM redis_metrics();
