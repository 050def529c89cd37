-- Messages archived but never evaluated by any ruleset: each row is a gap in
-- surveillance coverage that must be explained or re-evaluated.
-- Parameters: tenant (String, '' = all), from, to (DateTime64(3, 'UTC')).
SELECT m.tenant AS tenant, m.conversation_id AS conversation_id, m.id AS message_id,
       m.sent_at AS sent_at, m.received_at AS received_at
FROM messages AS m FINAL
WHERE ({tenant:String} = '' OR m.tenant = {tenant:String})
  AND m.sent_at >= {from:DateTime64(3, 'UTC')} AND m.sent_at < {to:DateTime64(3, 'UTC')}
  AND m.id NOT IN (SELECT message_id FROM evaluations FINAL)
ORDER BY m.sent_at
LIMIT 10000
