-- One conversation for an investigation, tokens kept (no personal data):
-- every message with the verdicts it drew.
-- Parameters: tenant (String), conversation (String), from, to (DateTime64(3, 'UTC')).
SELECT
    m.sent_at        AS sent_at,
    m.id             AS message_id,
    m.sender_id      AS sender_id,
    m.sender_role    AS sender_role,
    m.channel        AS channel,
    m.text           AS text,
    groupArrayIf(v.rule_id, v.rule_id != '') AS rules,
    groupArrayIf(v.action, v.rule_id != '')  AS actions
FROM (SELECT * FROM messages FINAL
      WHERE tenant = {tenant:String} AND conversation_id = {conversation:String}
        AND sent_at >= {from:DateTime64(3, 'UTC')} AND sent_at < {to:DateTime64(3, 'UTC')}) AS m
LEFT JOIN (SELECT message_id, rule_id, action FROM verdicts FINAL
           WHERE tenant = {tenant:String} AND conversation_id = {conversation:String}) AS v
    ON v.message_id = m.id
GROUP BY sent_at, message_id, sender_id, sender_role, channel, text
ORDER BY sent_at, message_id
