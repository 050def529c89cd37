-- Erasure and restriction requests and what was done.
-- Parameters: tenant (String, '' = all), from, to (DateTime64(3, 'UTC')).
SELECT at, tenant, request_ref, subject_hash, outcome, basis, delete_after, found, removed, requested_by
FROM erasures FINAL
WHERE ({tenant:String} = '' OR tenant = {tenant:String})
  AND at >= {from:DateTime64(3, 'UTC')} AND at < {to:DateTime64(3, 'UTC')}
ORDER BY at
