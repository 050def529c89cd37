-- Coverage: messages received vs evaluated, per day and ruleset version.
-- A row with ruleset_version = '(none)' counts messages that no ruleset
-- evaluated: every such message is a gap (see coverage_gaps).
-- Parameters: tenant (String, '' = all), from, to (DateTime64(3, 'UTC')).
SELECT
    toDate(m.sent_at)                            AS day,
    m.tenant                                     AS tenant,
    if(e.message_id = '', '(none)', e.ruleset_version) AS ruleset_version,
    count()                                      AS messages
FROM (SELECT id, tenant, sent_at FROM messages FINAL
      WHERE ({tenant:String} = '' OR tenant = {tenant:String})
        AND sent_at >= {from:DateTime64(3, 'UTC')} AND sent_at < {to:DateTime64(3, 'UTC')}) AS m
LEFT JOIN (SELECT message_id, ruleset_version FROM evaluations FINAL
           WHERE ({tenant:String} = '' OR tenant = {tenant:String})) AS e
    ON e.message_id = m.id
GROUP BY day, tenant, ruleset_version
ORDER BY day, tenant, ruleset_version
