SELECT redis_command('PING');
SELECT redis_command('GET', 'acl:adm:1');
SELECT count(*) > 0 FROM redis_info('server');
SELECT redis_invalidate_pattern('adm:*');
SELECT redis_flush_namespace();
SELECT redis_run_scheduled();
SELECT redis_stats_reset();
SELECT redis_rule_check('acl_item');
SELECT count(*) >= 0 FROM redis_privileges;
