-- The data subject of an erasure request while it is restricted: a scheduled
-- deletion at expiry needs the subject id to shred the vault key and delete
-- the rows. Package retention clears it (mutation) once the subject is erased.
ALTER TABLE erasures {{onCluster}} ADD COLUMN IF NOT EXISTS subject_id String DEFAULT '' AFTER subject_hash;
