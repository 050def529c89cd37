-- Verdicts by rule, severity and day.
-- Parameters: tenant (String, '' = all tenants), from, to (DateTime64(3, 'UTC')).
SELECT
    toDate(message_sent_at)  AS day,
    tenant,
    rule_id,
    severity,
    action,
    count()                  AS verdicts,
    uniqExact(conversation_id) AS conversations
FROM verdicts FINAL
WHERE ({tenant:String} = '' OR tenant = {tenant:String})
  AND message_sent_at >= {from:DateTime64(3, 'UTC')}
  AND message_sent_at <  {to:DateTime64(3, 'UTC')}
GROUP BY day, tenant, rule_id, severity, action
ORDER BY day, tenant, verdicts DESC, rule_id
