-- Review queue and turnaround: per tenant and day, alerts opened, alerts still
-- open, alerts closed, and time from open to close (median, p90), from the
-- review transitions (FINRA 3110 supervision evidence).
-- Parameters: tenant (String, '' = all), from, to (DateTime64(3, 'UTC')).
SELECT
    toDate(opened_at)                                   AS day,
    tenant,
    count()                                             AS alerts_opened,
    countIf(closed_at IS NULL)                          AS still_open,
    countIf(closed_at IS NOT NULL)                      AS closed,
    round(quantileIf(0.5)(dateDiff('second', opened_at, closed_at), closed_at IS NOT NULL) / 3600, 2) AS median_hours_to_close,
    round(quantileIf(0.9)(dateDiff('second', opened_at, closed_at), closed_at IS NOT NULL) / 3600, 2) AS p90_hours_to_close,
    uniqExactIf(closer, closer != '')                   AS reviewers
FROM
(
    SELECT
        tenant,
        alert_id,
        minIf(at, to_state = 'open' AND from_state = '')  AS opened_at,
        -- The alert's last transition decides whether it is closed now.
        if(argMax(to_state, at) = 'closed', maxIf(at, to_state = 'closed'), NULL) AS closed_at,
        argMaxIf(reviewer, at, to_state = 'closed')       AS closer
    FROM review_events FINAL
    WHERE ({tenant:String} = '' OR tenant = {tenant:String})
    GROUP BY tenant, alert_id
)
WHERE opened_at >= {from:DateTime64(3, 'UTC')} AND opened_at < {to:DateTime64(3, 'UTC')}
GROUP BY day, tenant
ORDER BY day, tenant
