-- Retention status: per tenant and channel, the policy class, the oldest
-- archived message and when it expires, and the legal holds in force.
-- Parameters: tenant (String, '' = all), from, to (DateTime64(3, 'UTC')).
SELECT
    m.tenant AS tenant,
    m.channel AS channel,
    if(p.policy_class = '', 'default', p.policy_class) AS policy_class,
    p.keep_days AS keep_days,
    min(m.sent_at) AS oldest_message,
    if(p.keep_days = 0, NULL, min(m.sent_at) + toIntervalDay(p.keep_days)) AS oldest_expires_at,
    count() AS messages,
    h.active_holds AS active_holds
FROM (SELECT tenant, channel, sent_at FROM messages FINAL
      WHERE ({tenant:String} = '' OR tenant = {tenant:String})
        AND sent_at >= {from:DateTime64(3, 'UTC')} AND sent_at < {to:DateTime64(3, 'UTC')}) AS m
LEFT JOIN (SELECT tenant, channel, policy_class, keep_days FROM retention_policies FINAL) AS p
    ON p.tenant = m.tenant AND p.channel = m.channel
LEFT JOIN (SELECT tenant, countIf(released_at IS NULL) AS active_holds FROM legal_holds FINAL GROUP BY tenant) AS h
    ON h.tenant = m.tenant
GROUP BY tenant, channel, policy_class, keep_days, active_holds
ORDER BY tenant, channel
